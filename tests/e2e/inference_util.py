"""Helpers for the inference tests: the tiny model and llama-server (scripts/tiny-llm.sh, built
once per machine and cached outside the repository), a lyceumd configured to serve it, and the
OpenAI SDK client (tests/e2e/openai/client.mjs) run with node."""

import json
import os
import shutil
import subprocess
import time

import runs_util

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CLIENT_DIR = os.path.join(os.path.dirname(__file__), "openai")
_tiny = None


def tiny():
    """(llama-server path, tiny.gguf path), building them on first use on this machine."""
    global _tiny
    if _tiny is None:
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "tiny-llm.sh")],
                           capture_output=True, text=True, timeout=3600)
        assert r.returncode == 0, r.stderr
        d = r.stdout.strip().splitlines()[-1]
        _tiny = (os.path.join(d, "llama-server"), os.path.join(d, "tiny.gguf"))
    if not os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "openai")):
        subprocess.run(["npm", "i", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True,
                       capture_output=True, timeout=300)
    return _tiny


def config(idle_seconds=3600, **extra):
    server_bin, _ = tiny()
    return runs_util.write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 8}],
        meter_window_seconds=1,
        inference={"commands": {"cpu": f"{server_bin} -m {{model_path}} --host 127.0.0.1 "
                                       "--port {port} --api-key {api_key} -t 1 -np 4 -c 4096 "
                                       "--alias {deployment_id}"},
                   "idle_seconds": idle_seconds, "tick_ms": 50, "wake_timeout_seconds": 30,
                   **extra})


def fake_server():
    """fake_model_server.py where a sandboxed replica can read it: beside the cached
    llama-server (a checkout under /tmp is hidden by the sandbox's private /tmp)."""
    dst = os.path.join(os.path.dirname(tiny()[0]), "fake_model_server.py")
    shutil.copyfile(os.path.join(os.path.dirname(__file__), "fake_model_server.py"), dst)
    return dst


def fake_config(machine_type=None, args="", inference=None, **extra):
    """A config whose cpu replicas are fake_model_server.py (given the model's path and args,
    its options); inference adds to the config's inference object."""
    mt = dict(hardware_profile="cpu", price_per_hour="0.36", max_concurrent=8)
    mt.update(machine_type or {})
    fake = fake_server()
    extra.setdefault("sandbox_ro_paths", [os.path.dirname(fake)])
    inf = {"commands": {"cpu": f"/usr/bin/python3 {fake} {{port}} {{model_path}} "
                               f"--api-key {{api_key}} {args}".rstrip()},
           "tick_ms": 50}
    inf.update(inference or {})
    return runs_util.write_config([mt], inference=inf, **extra)


def add_model(server, name="tiny"):
    server.cli("model", "add", name, tiny()[1])


def create(server, key, model="tiny", **kw):
    body = dict(hf_model_id=model, hardware_profile="cpu", target_rps=10,
                target_latency_p95_ms=5000, stabilisation_window=300)
    body.update(kw)
    r = server.post("/inference/create", key, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending"
    return r.json()["deployment_id"]


def wait_status(server, key, dep, want, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = server.get(f"/inference/{dep}", key).json()
        if d["status"] == want:
            return d
        time.sleep(0.05)
    raise AssertionError(f"deployment never {want}: {d}")


def sdk(server, key, cmd, prefix="/api/v2/external", timeout=180, **arg):
    r = subprocess.run(["node", os.path.join(CLIENT_DIR, "client.mjs"), server.base + prefix, key,
                        cmd, json.dumps(arg)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)
