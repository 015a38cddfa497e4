"""Runs end to end: a Python run's life over the real HTTP API, its SSE stream, status,
timeouts, abort and stop, the scheduler's capacity, tenancy, the sandbox and bad input."""

import concurrent.futures
import json
import os
import shutil
import signal
import time

import pytest
import requests

from conftest import Server, assert_422, assert_detail
from runs_util import (finished, follow, output_of, processes_of, start, status, wait_end,
                       wait_processes,
                       wait_status, write_config)

MACHINES = [
    {"hardware_profile": "cpu", "price_per_hour": "0.10", "vcpus": 2, "max_concurrent": 4},
    {"hardware_profile": "gpu.a100", "gpu_model": "NVIDIA A100", "gpu_count": 1,
     "gpu_indices": [0, 1], "price_per_hour": 1.99, "vcpus": 8, "memory_gb": 64},
    {"hardware_profile": "gpu.h100", "gpu_model": "NVIDIA H100", "gpu_count": 1,
     "gpu_indices": [2], "price_per_hour": "2.99"},
    {"hardware_profile": "gpu.b200", "gpu_model": "NVIDIA B200", "gpu_count": 1,
     "price_per_hour": "5.49"},
    {"hardware_profile": "cpu.small", "memory_mb": 256, "pids_max": 16, "max_concurrent": 2,
     "price_per_hour": "0.05"},
]


@pytest.fixture(scope="module")
def rs():
    cfg = write_config(MACHINES)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


@pytest.fixture
def ru(rs):
    return rs.new_user(credits=10)


def test_a_python_run_from_submit_to_completed(rs, ru):
    code = "import os, sys\nprint('hello', os.environ['LYCEUM_EXECUTION_ID'])\n" \
           "print('to stderr', file=sys.stderr)\nprint('\\x1b[31mred\\x1b[0m')\n"
    run = start(rs, ru["key"], code, file_name="hello.py")
    assert set(run) >= {"execution_id", "status", "streaming_url"}
    assert run["status"] == "pending"
    events = follow(run["streaming_url"])
    out = output_of(events)
    assert f"hello {run['execution_id']}\n" in out
    assert "to stderr\n" in out
    assert "\x1b[31mred\x1b[0m" in out  # ANSI codes are kept
    assert finished(events) == {"returnCode": 0, "error": None}
    st = status(rs, ru["key"], run["execution_id"])
    assert st["status"] == "completed" and st["return_code"] == 0
    rec = rs.get(f"/execution/{run['execution_id']}", ru["key"]).json()
    assert rec["stdout"] == f"hello {run['execution_id']}\n\x1b[31mred\x1b[0m\n"
    assert rec["stderr"] == "to stderr\n"
    assert rec["python_code"] == code and rec["file_name"] == "hello.py"
    assert rec["execution_type"] == "python code" and rec["hardware_profile"] == "cpu"
    t = rs.get(f"/execution/{run['execution_id']}/timing", ru["key"]).json()
    assert t["execution_id"] == run["execution_id"]
    assert set(t["timing"]) == {"created_at", "queued_at", "start_time", "end_time",
                                "finish_time", "queue_seconds", "run_seconds", "total_seconds"}
    assert 0 <= t["timing"]["run_seconds"] <= t["timing"]["total_seconds"]


def test_the_stream_also_answers_get_legacy_paths_and_bearer(rs, ru):
    run = start(rs, ru["key"], "print('x' * 3)")
    wait_end(rs, ru["key"], run["execution_id"])
    rid = run["execution_id"]
    for url, method, headers in [
            (run["streaming_url"], "GET", None),
            (rs.url(f"/execution/streaming/{rid}"), "GET", {"Authorization": "Bearer " + ru["key"]}),
            (rs.url(f"/api/v1/stream/{rid}"), "POST", {"Authorization": "Bearer " + ru["key"]})]:
        events = follow(url, method, headers)
        assert output_of(events) == "xxx\n" and finished(events)["returnCode"] == 0


def test_a_late_follower_gets_what_was_written_then_the_rest_live(rs, ru):
    # The run writes three lines and waits for a file "go", which the test makes once its late
    # follower has received them (replayed); then it writes "go" and waits for "live", which
    # the test makes only once the follower has received that "go". The run writes the rest
    # only then: the follower's output is whole only if "go" reached it while the run was
    # going, not replayed at its end.
    code = ("import os, time\n"
            "def wait(name):\n    deadline = time.time() + 15\n"
            "    while not os.path.exists(name) and time.time() < deadline:\n"
            "        time.sleep(0.02)\n    return os.path.exists(name)\n"
            "for i in range(3):\n    print('line', i, flush=True)\n"
            "print('go' if wait('go') else 'no go', flush=True)\n"
            "print('live' if wait('live') else 'nothing came live', flush=True)\n"
            "for i in range(3, 6):\n    print('line', i, flush=True)\n")
    run = start(rs, ru["key"], code)
    rid = run["execution_id"]
    deadline = time.time() + 30
    while "line 2\n" not in rs.get(f"/execution/{rid}", ru["key"]).json()["stdout"]:
        assert time.time() < deadline, "the run never wrote its first lines"
        time.sleep(0.05)
    work = os.path.join(rs.data, "runs", rid, "work")

    def on_event(events):
        out = output_of(events)
        for seen, make in (("line 2\n", "go"), ("go\n", "live")):
            if seen in out and not os.path.exists(os.path.join(work, make)):
                open(os.path.join(work, make), "w").close()

    events = follow(run["streaming_url"], on_event=on_event)
    assert output_of(events) == "".join(
        f"{line}\n" for line in ["line 0", "line 1", "line 2", "go", "live", "line 3", "line 4",
                                 "line 5"])
    assert finished(events) == {"returnCode": 0, "error": None}


def test_exit_code_three_is_failed(rs, ru):
    run = start(rs, ru["key"], "import sys\nprint('bye')\nsys.exit(3)")
    events = follow(run["streaming_url"])
    assert finished(events) == {"returnCode": 3, "error": None}
    st = status(rs, ru["key"], run["execution_id"])
    assert st["status"] == "failed" and st["return_code"] == 3 and "3" in st["errors"]


def test_timeout_kills_an_endless_loop(rs, ru):
    t0 = time.time()
    run = start(rs, ru["key"], "while True:\n    pass\n", timeout=1)
    st = wait_end(rs, ru["key"], run["execution_id"], timeout=20)
    assert st["status"] == "failed" and st["reason"] == "timeout"
    assert "timed out" in st["errors"]
    assert time.time() - t0 < 10


def test_abort_ends_a_sleeping_run_within_a_second(rs, ru):
    run = start(rs, ru["key"], "import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    wait_status(rs, ru["key"], run["execution_id"], "running")
    t0 = time.time()
    r = rs.post(f"/workloads/abort/{run['execution_id']}", ru["key"])
    assert r.status_code == 200 and r.json()["status"] == "cancelling", r.text
    st = wait_end(rs, ru["key"], run["execution_id"], timeout=5)
    assert time.time() - t0 < 1.0
    assert st["status"] == "aborted"
    # Already over: a second abort is 404, as API.md says.
    assert_detail(rs.post(f"/workloads/abort/{run['execution_id']}", ru["key"]), 404)
    assert_detail(rs.post(f"/execution/streaming/abort/{run['execution_id']}", ru["key"]), 404)


def test_stop_sends_sigterm_first_and_ends_completed(rs, ru):
    code = ("import signal, sys, time\n"
            "def bye(sig, frame):\n    print('got SIGTERM, cleaning up', flush=True)\n"
            "    time.sleep(0.2)\n    print('clean', flush=True)\n    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    run = start(rs, ru["key"], code)
    wait_status(rs, ru["key"], run["execution_id"], "running")
    time.sleep(0.3)  # let it install its handler
    r = rs.post(f"/workloads/stop/{run['execution_id']}", ru["key"])
    assert r.status_code == 200, r.text
    events = follow(run["streaming_url"])
    assert "got SIGTERM, cleaning up\nclean\n" in output_of(events)
    assert status(rs, ru["key"], run["execution_id"])["status"] == "completed"


def test_stop_kills_after_the_grace_period(rs, ru):
    code = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('stubborn', flush=True)\ntime.sleep(60)\n")
    run = start(rs, ru["key"], code, path="/execution/streaming/start")
    wait_status(rs, ru["key"], run["execution_id"], "running")
    time.sleep(0.3)
    t0 = time.time()
    assert rs.post(f"/execution/streaming/complete/{run['execution_id']}", ru["key"]).ok
    st = wait_end(rs, ru["key"], run["execution_id"], timeout=30)
    assert st["status"] == "completed"
    assert 9 <= time.time() - t0 < 20  # the default graceful timeout is 10 s


def test_workloads_list_and_delete(rs, ru):
    run = start(rs, ru["key"], "import time\ntime.sleep(60)", file_name="long.py")
    rid = run["execution_id"]
    wait_status(rs, ru["key"], rid, "running")
    items = rs.get("/workloads/list", ru["key"]).json()
    assert isinstance(items, list)
    mine = [i for i in items if i["execution_id"] == rid]
    assert mine and mine[0]["file_name"] == "long.py" and mine[0]["hardware_profile"] == "cpu"
    assert rs.get("/api/v1/workloads/list", ru["key"]).json() == items
    assert_detail(rs.delete(f"/execution/{rid}", ru["key"]), 409)
    assert rs.post(f"/api/v1/workloads/abort/{rid}", ru["key"]).status_code == 200
    wait_end(rs, ru["key"], rid)
    assert not [i for i in rs.get("/workloads/list", ru["key"]).json()
                if i["execution_id"] == rid]
    assert rs.delete(f"/execution/{rid}", ru["key"]).status_code == 200
    assert_detail(rs.get(f"/execution/{rid}", ru["key"]), 404)
    assert_detail(rs.get(f"/execution/streaming/{rid}/status", ru["key"]), 404)
    r = requests.post(run["streaming_url"], timeout=10)
    assert r.status_code == 404


def test_another_orgs_run_is_404_on_every_route(rs, ru):
    other = rs.new_user(credits=10)
    run = start(rs, ru["key"], "import time\ntime.sleep(30)")
    rid = run["execution_id"]
    wait_status(rs, ru["key"], rid, "running")
    k = other["key"]
    for method, path in [("GET", f"/execution/streaming/{rid}/status"),
                         ("POST", f"/execution/streaming/abort/{rid}"),
                         ("POST", f"/execution/streaming/complete/{rid}"),
                         ("POST", f"/workloads/abort/{rid}"),
                         ("POST", f"/workloads/stop/{rid}"),
                         ("GET", f"/execution/{rid}"),
                         ("GET", f"/execution/{rid}/timing"),
                         ("DELETE", f"/execution/{rid}"),
                         ("GET", f"/execution/streaming/{rid}"),
                         ("POST", f"/api/v1/workloads/abort/{rid}"),
                         ("POST", f"/api/v1/stream/{rid}")]:
        assert_detail(rs.req(method, path, k), 404)
    # The capability URL with a wrong token is 404 too; with no token and no key, 401.
    base = run["streaming_url"].split("?")[0]
    assert requests.post(base + "?token=nope", timeout=10).status_code == 404
    assert requests.post(base, timeout=10).status_code == 401
    assert rid not in [i["execution_id"] for i in rs.get("/workloads/list", k).json()]
    assert status(rs, ru["key"], rid)["status"] == "running"  # nothing happened to it
    rs.post(f"/workloads/abort/{rid}", ru["key"])
    wait_end(rs, ru["key"], rid)


def test_a_run_cannot_read_the_database_or_another_run(rs, ru):
    assert shutil.which("bwrap"), "bubblewrap must be installed (scripts/deps.sh installs it)"
    victim = start(rs, ru["key"], "open('secret.txt', 'w').write('s3cr3t')\nprint('done')")
    wait_end(rs, ru["key"], victim["execution_id"])
    victim_dir = os.path.join(rs.data, "runs", victim["execution_id"])
    assert os.path.exists(os.path.join(victim_dir, "work", "secret.txt"))
    code = f"""
import os
for p in [{os.path.join(rs.data, 'lyceumd.db')!r}, {os.path.join(rs.data, 'jwt.key')!r},
          {os.path.join(victim_dir, 'work', 'secret.txt')!r}]:
    try:
        print(p, 'READ', len(open(p, 'rb').read()))
    except OSError as e:
        print(p, 'DENIED', type(e).__name__)
import stat
sock = '/var/run/docker.sock'
print('docker socket reachable:', os.path.exists(sock) and stat.S_ISSOCK(os.stat(sock).st_mode))
print('data directory visible:', os.path.exists({rs.data!r}))
print('own files:', sorted(os.listdir('.')))
"""
    thief = start(rs, ru["key"], code)
    events = follow(thief["streaming_url"])
    out = output_of(events)
    assert out.count("DENIED") == 3 and "READ" not in out, out
    assert "docker socket reachable: False" in out
    assert "data directory visible: False" in out  # not even its own run's directory there
    assert "own files: ['main.py']" in out, out  # its work directory, at its HOME


def test_import_files_and_prior_imports(rs, ru):
    files = {"helpers/__init__.py": "", "helpers/util.py": "def twice(x):\n    return 2 * x\n"}
    run = start(rs, ru["key"], "from helpers.util import twice\nprint(twice(21), json.dumps(1))",
                import_files=json.dumps(files), prior_imports=["json"])
    events = follow(run["streaming_url"])
    assert output_of(events) == "42 1\n" and finished(events)["returnCode"] == 0


def test_requirements_that_cannot_install_fail_clearly(rs, ru):
    run = start(rs, ru["key"], "print('never')",
                requirements_content="surely-not-a-real-package-lyceumd==9.9.9\n", timeout=60)
    events = follow(run["streaming_url"], timeout=120)
    # pip's own words reach whoever follows the run, not only install_log.
    streamed = "".join(e["output"]["content"] for e in events if "output" in e)
    assert "ERROR" in streamed and "surely-not-a-real-package-lyceumd" in streamed, streamed
    st = wait_end(rs, ru["key"], run["execution_id"], timeout=120)
    assert st["status"] == "failed" and "requirements" in st["errors"].lower()
    rec = rs.get(f"/execution/{run['execution_id']}", ru["key"]).json()
    assert rec["install_return_code"] not in (None, 0)
    assert rec["install_log"] and "surely-not-a-real-package-lyceumd" in rec["install_log"]
    assert "never" not in rec["stdout"]


def test_bad_input_gets_the_contracts_errors(rs, ru):
    k = ru["key"]
    assert_422(rs.post("/execution/streaming/start", k, json={"code": "1", "timeout": 0}),
               ("body", "timeout"))
    assert_422(rs.post("/execution/streaming/start", k, json={"code": "1", "timeout": 601}),
               ("body", "timeout"))
    assert_422(rs.post("/execution/streaming/start", k, json={"timeout": 5}), ("body", "code"))
    assert_422(rs.post("/execution/streaming/start", k, json={"code": 5}), ("body", "code"))
    assert_422(rs.post("/execution/streaming/start", k,
                       json={"code": "1", "execution_type": "no-dashes"}),
               ("body", "execution_type"))
    body = assert_detail(rs.post("/execution/streaming/start", k,
                                 json={"code": "1", "execution_type": "gpu.x999"}), 400)
    assert body["detail"] == ("Unknown hardware_profile 'gpu.x999'. Valid options: cpu, "
                              "gpu.a100, gpu.h100, gpu.b200, cpu.small")
    assert_422(rs.post("/execution/streaming/start", k,
                       json={"code": "1", "import_files": "{not json"}), ("body", "import_files"))
    for bad in ["../x.py", "/etc/x.py", "a/../../x.py", "a\u0000b.py", "x" * 1025]:
        assert_422(rs.post("/execution/streaming/start", k,
                           json={"code": "1", "import_files": json.dumps({bad: "1"})}),
                   ("body", "import_files"))
    assert_422(rs.post("/execution/streaming/start", k,
                       json={"code": "1", "prior_imports": ["os; import sys"]}),
               ("body", "prior_imports"))
    assert_422(rs.post("/execution/streaming/start", k,
                       json={"code": "1", "user_callback_urls": ["ftp://x"]}),
               ("body", "user_callback_urls"))
    r = rs.post("/execution/streaming/start", k, data="{", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    # Found by the fuzzer: a bad escape before bytes that are not UTF-8.
    r = rs.post("/execution/streaming/start", k, data=b'{"code": "\\\xde\x9e"}',
                headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", r.text
    # A profile the machine cannot give: listed, not available.
    assert_detail(rs.post("/execution/streaming/start", k,
                          json={"code": "1", "execution_type": "gpu.b200"}), 503)
    assert rs.alive()


def test_machine_types_and_quotas(rs, ru):
    mt = rs.get("/machine-types", ru["key"]).json()
    assert mt["count"] == 5
    by = {m["hardware_profile"]: m for m in mt["machine_types"]}
    assert by["cpu"]["price_per_hour"] == 0.1 and by["gpu.a100"]["price_per_hour"] == 1.99
    assert by["gpu.b200"]["available"] is False and by["gpu.a100"]["available"] is True
    assert rs.get("/compute/machine-types", ru["key"]).json() == mt
    assert rs.get("/user/quotas", ru["key"]).json() == {
        "cpu": True, "gpu.a100": True, "gpu.h100": True, "gpu.b200": True, "cpu.small": True}
    assert rs.get("/user/quotas/available-hardware", ru["key"]).json() == {
        "available_hardware_profiles": ["cpu", "gpu.a100", "gpu.h100", "cpu.small"]}
    out = json.loads(rs.cli("quota", "set", ru["email"], "cpu").stdout)
    assert out["allowed_profiles"] == ["cpu"]
    assert rs.get("/user/quotas", ru["key"]).json()["gpu.a100"] is False
    assert rs.get("/user/quotas/available-hardware", ru["key"]).json() == {
        "available_hardware_profiles": ["cpu"]}
    assert_detail(rs.post("/execution/streaming/start", ru["key"],
                          json={"code": "1", "execution_type": "gpu.a100"}), 403)
    rs.cli("quota", "set", ru["email"])
    assert rs.get("/user/quotas", ru["key"]).json()["gpu.a100"] is True


def test_gpu_runs_get_their_own_gpus_and_a_third_waits(rs, ru):
    code = "import os, time\nprint(os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\ntime.sleep(1.5)"
    runs = [start(rs, ru["key"], code, execution_type="gpu.a100") for _ in range(3)]
    outs = [output_of(follow(r["streaming_url"])).strip() for r in runs]
    assert sorted(outs[:2]) == ["0", "1"] or sorted(outs) in (["0", "0", "1"], ["0", "1", "1"])
    assert len(set(outs[:2])) == 2
    recs = [rs.get(f"/execution/{r['execution_id']}/timing", ru["key"]).json()["timing"]
            for r in runs]
    # The third waited in the queue for one of the first two to end.
    assert recs[2]["queue_seconds"] >= 1.0
    cpu = start(rs, ru["key"], "import os\nprint(repr(os.environ.get('CUDA_VISIBLE_DEVICES')))")
    assert output_of(follow(cpu["streaming_url"])) == "''\n"


def test_gpu_selection_all_and_first_available(rs, ru):
    code = "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'])"
    r = rs.post("/execution/gpu-selection/start", ru["key"],
                json={"code": code, "execution_types": ["gpu.h100", "gpu.a100"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["execution_type"] for e in body["executions"]] == ["gpu.h100", "gpu.a100"]
    for e in body["executions"]:
        out = output_of(follow(e["streaming_url"])).strip()
        assert (out == "2") if e["execution_type"] == "gpu.h100" else (out in ("0", "1")), out
        st = status(rs, ru["key"], e["execution_id"])
        assert st["parent_execution_id"] == body["parent_execution_id"]
        assert st["hardware_profile"] == e["execution_type"]
    # first_available: the h100 is busy, so the a100 (next in preference) is chosen.
    hold = start(rs, ru["key"], "import time\ntime.sleep(30)", execution_type="gpu.h100")
    wait_status(rs, ru["key"], hold["execution_id"], "running")
    r = rs.post("/execution/gpu-selection/start", ru["key"],
                json={"code": code, "execution_types": ["gpu.h100", "gpu.a100"],
                      "mode": "first_available"})
    assert r.status_code == 200, r.text
    assert [e["execution_type"] for e in r.json()["executions"]] == ["gpu.a100"]
    rs.post(f"/workloads/abort/{hold['execution_id']}", ru["key"])
    assert_422(rs.post("/execution/gpu-selection/start", ru["key"],
                       json={"code": code, "execution_types": []}), ("body", "execution_types"))
    assert_422(rs.post("/execution/gpu-selection/start", ru["key"],
                       json={"code": code, "execution_types": ["cpu"], "mode": "some"}),
               ("body", "mode"))


def test_idempotency_key_starts_one_run(rs, ru):
    h = {"Idempotency-Key": "build-42"}
    a = rs.post("/execution/streaming/start", ru["key"], json={"code": "print(1)"}, headers=h)
    b = rs.post("/execution/streaming/start", ru["key"], json={"code": "print(1)"}, headers=h)
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json() and b.headers.get("Idempotent-Replayed") == "true"
    # Another org may use the same key for its own run.
    other = rs.new_user(credits=1)
    c = rs.post("/execution/streaming/start", other["key"], json={"code": "print(1)"}, headers=h)
    assert c.json()["execution_id"] != a.json()["execution_id"]
    # Sixteen at once with one new key: one run.
    h2 = {"Idempotency-Key": "race-1"}
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        ids = set(ex.map(lambda _: rs.post("/execution/streaming/start", ru["key"],
                                           json={"code": "print(2)"}, headers=h2)
                         .json()["execution_id"], range(16)))
    assert len(ids) == 1


def cgroups_writable():
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return os.access("/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/pids", os.W_OK)


def cgroup_limit(pid, v1_controller, v1_file, v2_file):
    """A limit of the control group pid is in, read on the host (v2, else v1's controller)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        path = [p for _, c, p in lines if c == ""][0]
        full = f"/sys/fs/cgroup{path}/{v2_file}"
    else:
        path = [p for _, c, p in lines if v1_controller in c.split(",")][0]
        full = f"/sys/fs/cgroup/{v1_controller}{path}/{v1_file}"
    with open(full) as f:
        return f.read().strip()


def test_memory_and_process_limits_hold(rs, ru):
    assert cgroups_writable(), (
        "cgroups are not writable on this machine (/sys/fs/cgroup): the profiles' memory and "
        "process limits cannot be enforced. The tests run as root with cgroups writable (CI has "
        "them); in a container, give it a writable cgroup tree")
    # Every process of a run is in a control group with its profile's limits.
    hold = start(rs, ru["key"], "import time\nprint('up', flush=True)\ntime.sleep(60)",
                 execution_type="cpu.small")
    wait_status(rs, ru["key"], hold["execution_id"], "running")
    pids = wait_processes(hold["execution_id"])
    assert pids, "no process of the run found"
    for pid in pids:
        assert cgroup_limit(pid, "memory", "memory.limit_in_bytes", "memory.max") == \
            str(256 << 20), pid
        assert cgroup_limit(pid, "pids", "pids.max", "pids.max") == "16", pid
    rs.post(f"/workloads/abort/{hold['execution_id']}", ru["key"])
    wait_end(rs, ru["key"], hold["execution_id"])
    # And they bind: forks stop short of 16 processes...
    forks = ("import os, time\nmade = 0\nfor i in range(40):\n    try:\n"
             "        if os.fork() == 0:\n            time.sleep(2)\n            os._exit(0)\n"
             "        made += 1\n    except OSError:\n        pass\nprint('forked', made)\n")
    run = start(rs, ru["key"], forks, execution_type="cpu.small")
    out = output_of(follow(run["streaming_url"]))
    made = int(out.split("forked")[1].split()[0])
    assert 0 < made < 16, out
    # ... and a run that takes more than 256 MiB is killed by the kernel (SIGKILL: the control
    # group's OOM killer, where an address-space rlimit would have made a MemoryError, exit 1).
    hog = "b = bytearray(600 * 1024 * 1024)\nprint('allocated', len(b))"
    run = start(rs, ru["key"], hog, execution_type="cpu.small")
    events = follow(run["streaming_url"])
    assert "allocated" not in output_of(events)
    st = status(rs, ru["key"], run["execution_id"])
    assert st["status"] == "failed" and st["return_code"] == 137, st
    # The same program fits on a profile without the limit.
    run = start(rs, ru["key"], hog)
    assert "allocated 629145600" in output_of(follow(run["streaming_url"]))


def test_a_run_in_the_sandbox_of_a_server_given_a_relative_data_directory():
    # `make run` serves ./var: the sandbox binds paths under the data directory, which
    # bubblewrap takes only when absolute.
    cfg = write_config(MACHINES)
    s = Server(["--config", cfg], relative_data=True)
    try:
        u = s.new_user(credits=10)
        run = start(s, u["key"], "print('in the sandbox')\n")
        events = follow(run["streaming_url"])
        assert output_of(events) == "in the sandbox\n"
        assert finished(events) == {"returnCode": 0, "error": None}
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)
