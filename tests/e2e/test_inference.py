"""Inference end to end (API.md 11, 16.6): a deployment of the tiny model served by a real
llama-server, called with the OpenAI SDK (chat, streamed chat, models), streaming inference by
id, scaling between replicas and to zero, per-org isolation and OpenAI-shaped errors."""

import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
import uuid

import pytest
import requests

import inference_util as iu
import runs_util
from conftest import Server


@pytest.fixture(scope="module")
def inf():
    s = Server(["--config", iu.config(idle_seconds=2)])
    iu.add_model(s)
    u = s.new_user(credits=10)
    dep = iu.create(s, u["key"])
    iu.wait_status(s, u["key"], dep, "running")
    yield s, u, dep
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


def test_chat_with_the_openai_sdk_at_every_prefix(inf):
    s, u, dep = inf
    for prefix in ("/api/v2/external", "/api/v2/external/serverless", "/openai/v1"):
        r = iu.sdk(s, u["key"], "chat", prefix=prefix, model=dep, max_tokens=12)
        assert r.get("object") == "chat.completion", r
        assert r["choices"][0]["message"]["role"] == "assistant"
        assert r["choices"][0]["message"]["content"]
        assert r["usage"]["completion_tokens"] == 12
    # By hf_model_id too.
    r = iu.sdk(s, u["key"], "chat", model="tiny", max_tokens=4)
    assert r["usage"]["completion_tokens"] == 4


def test_streamed_chat_arrives_chunk_by_chunk(inf):
    s, u, dep = inf
    r = iu.sdk(s, u["key"], "stream", model=dep, max_tokens=200)
    assert "error" not in r, r
    assert r["chunks"] >= 100 and r["finish"] == "length" and r["text"]
    # Chunks came spread over the generation, not all at its end.
    assert r["times"][0] < r["times"][-1] - 5, r["times"][:3] + r["times"][-3:]
    # The raw SSE ends with [DONE].
    with requests.post(s.base + "/openai/v1/chat/completions",
                       headers={"Authorization": "Bearer " + u["key"]}, stream=True,
                       json={"model": dep, "stream": True, "max_tokens": 5,
                             "messages": [{"role": "user", "content": "x"}]}) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        body = resp.text
    assert body.rstrip().endswith("data: [DONE]"), body[-200:]


def test_models_list(inf):
    s, u, dep = inf
    r = iu.sdk(s, u["key"], "models")
    ids = [m["id"] for m in r["data"]]
    assert dep in ids


def test_openai_errors_and_other_orgs(inf):
    s, u, dep = inf
    other = s.new_user(credits=10)
    r = iu.sdk(s, other["key"], "chat", model=dep)
    assert r["error"]["status"] == 404, r
    assert r["error"]["body"]["code"] == "model_not_found"
    assert s.get(f"/inference/{dep}", other["key"]).status_code == 404
    r = requests.post(s.base + "/openai/v1/chat/completions", json={"model": dep},
                      headers={"Authorization": "Bearer lk_wrong"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = s.post("/chat/completions", u["key"], data=b"{nope")
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = s.post("/chat/completions", u["key"], json={"model": dep, "messages": []})
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]


def descendants(pid, name):
    """The pids of pid's descendants whose command is name (found through /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            comm, rest = st[st.index("(") + 1:st.rindex(")")], st[st.rindex(")") + 2:].split()
            children.setdefault(int(rest[1]), []).append((int(d), comm))
    out, todo = [], [pid]
    while todo:
        for child, comm in children.get(todo.pop(), []):
            todo.append(child)
            if comm == name:
                out.append(child)
    return out


def test_a_plain_call_answers_the_model_servers_status(inf):
    """A call without stream answers with the status the model server gave, or, when it could
    not reach one, 502/503 with OpenAI's error shape: never 200 with an error inside."""
    s, u, dep = inf
    url = s.base + "/openai/v1/chat/completions"
    auth = {"Authorization": "Bearer " + u["key"]}
    ok = {"model": dep, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
    r = requests.post(url, json=ok, headers=auth, timeout=60)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion", r.text
    # The model server refuses this one (content must be a string): its 400 and its error.
    bad = dict(ok, messages=[{"role": "user", "content": 5}])
    r = requests.post(url, json=bad, headers=auth, timeout=60)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"]["type"] == "invalid_request_error", r.text
    # The replica dies just before the next call: a replacement answers it.
    killed = descendants(s.proc.pid, "llama-server")
    assert killed, "no llama-server under lyceumd"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    r = requests.post(url, json=ok, headers=auth, timeout=60)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion", r.text
    assert not set(killed) & set(descendants(s.proc.pid, "llama-server"))


def test_a_replica_dying_mid_stream_ends_the_stream_with_an_error(inf):
    """The model server is killed while it streams a long completion: the client's stream
    ends at once with an error event in OpenAI's shape (no hang, no [DONE]), and the next call
    is answered by a replacement."""
    s, u, dep = inf
    url = s.base + "/openai/v1/chat/completions"
    auth = {"Authorization": "Bearer " + u["key"]}
    body = {"model": dep, "stream": True, "max_tokens": 3000,
            "messages": [{"role": "user", "content": "x"}]}
    data, killed = [], []
    # A read that waits 20 s for a byte fails the test (requests raises): no hang.
    with requests.post(url, json=body, headers=auth, stream=True, timeout=(5, 20)) as resp:
        assert resp.status_code == 200, resp.text
        for line in resp.iter_lines(chunk_size=None, decode_unicode=True):
            if not line.startswith("data: "):
                continue
            data.append(line[6:])
            if len(data) == 5:
                killed = descendants(s.proc.pid, "llama-server")
                assert killed, "no llama-server under lyceumd"
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
    assert len(data) > 5 and "[DONE]" not in data, data[-3:]
    last = json.loads(data[-1])
    assert set(last) == {"error"} and last["error"]["message"], last
    assert len(data) < 2000, "the stream went on after its model server was killed"
    # The next call is answered, by another model server.
    r = requests.post(url, json=dict(body, stream=False, max_tokens=2), headers=auth, timeout=60)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion", r.text
    assert not set(killed) & set(descendants(s.proc.pid, "llama-server"))


def test_a_call_no_replica_can_take_is_503():
    """Replicas that never become ready: after the wake time-out the call answers 503 in
    OpenAI's error shape (the plain call and the streamed one alike)."""
    s = Server(["--config", runs_util.write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 8}],
        inference={"commands": {"cpu": "/usr/bin/env KEY={api_key} /bin/sleep 600 {port}"}, "tick_ms": 50,
                   "wake_timeout_seconds": 1})])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        body = {"model": dep, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
        r = requests.post(s.base + "/openai/v1/chat/completions", json=body, timeout=30,
                          headers={"Authorization": "Bearer " + u["key"]})
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["error"]["type"] == "service_unavailable", r.text
        assert r.headers["Retry-After"] == "5"
        r = iu.sdk(s, u["key"], "chat", model=dep, max_tokens=2)
        assert r["error"]["status"] == 503, r
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_streaming_inference_by_id(inf):
    s, u, dep = inf
    r = s.post("/inference/streaming/submit", u["key"],
               json={"model": dep, "messages": [{"role": "user", "content": "hi"}],
                     "max_tokens": 10})
    assert r.status_code == 200, r.text
    sub = r.json()
    assert sub["status"] == "queued"
    events = []
    with requests.get(s.base + sub["stream_url"], stream=True, timeout=30,
                      headers={"Authorization": "Bearer " + u["key"]}) as resp:
        ev = None
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                events.append((ev, json.loads(line[6:])))
    kinds = [e for e, _ in events]
    assert kinds[0] == "queued" and kinds[-1] == "finished", kinds
    assert kinds.count("token") >= 5
    done = events[-1][1]["completion"]
    assert done["usage"]["completion_tokens"] == 10
    assert done["choices"][0]["message"]["content"] == "".join(
        d["token"] for e, d in events if e == "token")
    other = s.new_user()
    assert s.get(sub["stream_url"], other["key"]).status_code == 404


def read_events(s, key, url):
    events, ev = [], None
    with requests.get(s.base + url, stream=True, timeout=60,
                      headers={"Authorization": "Bearer " + key}) as resp:
        assert resp.status_code == 200, resp.text
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                events.append((ev, json.loads(line[6:])))
    return events


def test_streaming_inference_outlives_a_restart():
    """A finished streaming inference can be read again after lyceumd restarts (queued, then
    finished with the same completion); one a kill -9 cut short reads as failed; another
    org gets 404 for both."""
    s = Server(["--config", iu.config()])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        iu.wait_status(s, u["key"], dep, "running")
        body = {"model": dep, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        done = s.post("/inference/streaming/submit", u["key"], json=body).json()
        before = read_events(s, u["key"], done["stream_url"])
        assert before[-1][0] == "finished", before
        cut = s.post("/inference/streaming/submit", u["key"],
                     json=dict(body, max_tokens=100000)).json()
        time.sleep(0.3)
        s.proc.kill()
        s.proc.wait()
        s.log.close()
        s.start()
        after = read_events(s, u["key"], done["stream_url"])
        assert [e for e, _ in after] == ["queued", "finished"], after
        assert after[-1][1]["completion"] == before[-1][1]["completion"]
        ended = read_events(s, u["key"], cut["stream_url"])
        assert [e for e, _ in ended] == ["queued", "failed"], ended
        assert "restarted" in ended[-1][1]["error"]
        other = s.new_user(credits=1)
        for sub in (done, cut):
            r = s.get(sub["stream_url"], other["key"])
            assert r.status_code == 404, r.text
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_deployment_pauses_when_idle_and_wakes(inf):
    s, u, dep = inf
    d = iu.wait_status(s, u["key"], dep, "paused", timeout=30)
    deadline = time.time() + 10
    while d["replicas"] and time.time() < deadline:
        time.sleep(0.05)
        d = s.get(f"/inference/{dep}", u["key"]).json()
    assert d["replicas"] == [] and d["status"] == "paused", d
    t0 = time.time()
    r = iu.sdk(s, u["key"], "chat", model=dep, max_tokens=3)
    assert r["usage"]["completion_tokens"] == 3, r
    assert time.time() - t0 < 20
    assert s.get(f"/inference/{dep}", u["key"]).json()["status"] == "running"
    # Billed per replica-second, through the ledger.
    assert s.get(f"/inference/{dep}", u["key"]).json()["billed"] > 0


def test_autoscale_to_a_second_replica_then_stop():
    s = Server(["--config", iu.config()])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"], target_rps=2, stabilisation_window=2, min_replicas=1,
                        max_replicas=2)
        iu.wait_status(s, u["key"], dep, "running")
        stop = time.time() + 3
        body = {"model": dep, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}

        def load():
            while time.time() < stop:
                requests.post(s.base + "/openai/v1/chat/completions", json=body, timeout=30,
                              headers={"Authorization": "Bearer " + u["key"]})

        ts = [threading.Thread(target=load) for _ in range(4)]
        for t in ts:
            t.start()
        seen = 0
        while time.time() < stop + 2:
            d = s.get(f"/inference/{dep}", u["key"]).json()
            seen = max(seen, len([r for r in d["replicas"] if r["status"] == "running"]))
            time.sleep(0.1)
        for t in ts:
            t.join()
        assert seen == 2, d
        r = s.post(f"/inference/{dep}/stop", u["key"])
        assert r.status_code == 200
        iu.wait_status(s, u["key"], dep, "stopped")
        lst = s.get("/inference/list", u["key"]).json()
        assert lst["total"] == 0
        assert s.get("/inference/list?include_stopped=true", u["key"]).json()["total"] == 1
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_replicas_and_runs_share_a_profiles_slots():
    """A profile with room for one: the deployment's replica holds it, so a run on that
    profile waits; once the deployment stops, the run starts. Then the run holds it, and a
    new deployment waits for the run to end before its replica starts."""
    server_bin, _ = iu.tiny()
    s = Server(["--config", runs_util.write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 1}],
        inference={"commands": {"cpu": f"{server_bin} -m {{model_path}} --host 127.0.0.1 "
                                       "--port {port} --api-key {api_key} -t 1 -np 1 -c 512"},
                   "tick_ms": 50})])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        iu.wait_status(s, u["key"], dep, "running")
        run = runs_util.start(s, u["key"], "print('after the replica')", execution_type="cpu")
        time.sleep(1.5)
        assert runs_util.status(s, u["key"], run["execution_id"])["status"] == "pending"
        assert s.post(f"/inference/{dep}/stop", u["key"]).status_code == 200
        assert runs_util.wait_end(s, u["key"], run["execution_id"])["status"] == "completed"

        run = runs_util.start(s, u["key"], "import time; time.sleep(3)", execution_type="cpu")
        runs_util.wait_status(s, u["key"], run["execution_id"], "running")
        dep = iu.create(s, u["key"])
        time.sleep(1.5)
        d = s.get(f"/inference/{dep}", u["key"]).json()
        assert d["status"] == "pending" and d["replicas"] == [], d
        assert runs_util.wait_end(s, u["key"], run["execution_id"])["status"] == "completed"
        iu.wait_status(s, u["key"], dep, "running")
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_unknown_model_fails_the_deployment(inf):
    s, u, _ = inf
    dep = iu.create(s, u["key"], model="nobody/nothing")
    d = iu.wait_status(s, u["key"], dep, "failed")
    assert "model directory" in d["errors"]
    r = s.post("/inference/create", u["key"], json={"hf_model_id": "x"})
    assert r.status_code == 422


fake_server = iu.fake_server
fake_config = iu.fake_config


def replica_of(s, key, dep):
    """The id of the deployment's one running replica, once there is one."""
    d = iu.wait_status(s, key, dep, "running")
    deadline = time.time() + 10
    while not [r for r in d["replicas"] if r["status"] == "running"] and time.time() < deadline:
        time.sleep(0.05)
        d = s.get(f"/inference/{dep}", key).json()
    running = [r for r in d["replicas"] if r["status"] == "running"]
    assert len(running) == 1, d
    return running[0]["replica_id"]


def probe(s, dep, rep):
    """What the fake model server of replica rep reported (the first line of its log)."""
    path = os.path.join(s.data, "inference", dep, rep + ".log")
    deadline = time.time() + 10
    while time.time() < deadline:
        with open(path) as f:
            for line in f:
                if line.startswith("probe: "):
                    return json.loads(line[7:])
        time.sleep(0.05)
    raise AssertionError(f"no probe in {path}")


def test_hf_token_is_sealed_and_reaches_replicas_after_a_restart():
    """The hf_token given at create reaches the replica's environment (never its command line),
    is stored sealed, so that a replica started after lyceumd was killed (-9) and restarted gets
    it too, and appears in no API answer, the database's files or lyceumd's log. The restart
    removes the control groups of the replica the kill ended."""
    token = "hf_" + uuid.uuid4().hex
    s = Server(["--config", fake_config()])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"], hf_token=token)
        first = replica_of(s, u["key"], dep)
        p = probe(s, dep, first)
        assert p["hf_token"] == token, p
        assert token not in " ".join(p["argv"]), p
        assert token not in s.get(f"/inference/{dep}", u["key"]).text
        s.proc.kill()
        s.proc.wait()
        s.log.close()
        s.start()
        second = replica_of(s, u["key"], dep)
        assert second != first
        assert cgroup_dirs(first) == [], "the killed replica's control groups were left"
        assert probe(s, dep, second)["hf_token"] == token
        for path in ("/inference/list", f"/inference/{dep}", "/inference/list?include_stopped=true"):
            r = s.get(path, u["key"])
            assert r.status_code == 200 and dep in r.text and token not in r.text, r.text
        db = sqlite3.connect(f"file:{s.data}/lyceumd.db?mode=ro", uri=True)
        sealed, spec = db.execute("SELECT hf_token_sealed, spec FROM deployments WHERE id = ?",
                                  (dep,)).fetchone()
        db.close()
        assert sealed and len(sealed) > 2 * len(token) and "hf_token" not in spec
        for name in os.listdir(s.data):
            if name.startswith("lyceumd.db") or name == "server.log":
                with open(os.path.join(s.data, name), "rb") as f:
                    assert token.encode() not in f.read(), name
        # A deployment without a token gives its replicas none.
        bare = iu.create(s, u["key"])
        assert probe(s, bare, replica_of(s, u["key"], bare))["hf_token"] is None
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def cgroup_dirs(rep):
    """The directories of replica rep's control groups that exist now."""
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    roots = ["/sys/fs/cgroup"] if v2 else [f"/sys/fs/cgroup/{c}" for c in ("memory", "pids", "cpu")]
    return [d for d in (os.path.join(r, "lyceumd", rep) for r in roots) if os.path.isdir(d)]


def test_replicas_run_in_the_sandbox_with_the_profiles_limits():
    """A replica sees neither the database nor anything else of the data directory but its
    home (writable) and its model file (read-only, though the file lies in the data
    directory), runs in its own pid namespace and in control groups of its own with the
    profile's limits, as an unprivileged uid, reached by lyceumd in its own network, and is
    ended with its
    control groups and home when the deployment stops. The limits bind: its forks stop short
    of pids_max and a child that takes more than memory_gb is killed. With "sandbox": false it
    sees all."""
    assert shutil.which("bwrap"), "bubblewrap must be installed (scripts/deps.sh installs it)"
    assert runs_cgroups_writable(), (
        "cgroups are not writable on this machine (/sys/fs/cgroup): a replica's limits cannot "
        "be enforced. The tests run as root with cgroups writable (CI has them)")
    s = Server(["--config", fake_config({"pids_max": 300, "memory_gb": 1, "vcpus": 1},
                                        args="--forks 400 --alloc 1536")])
    try:
        models = os.path.join(s.data, "own-models")
        os.mkdir(models)
        with open(os.path.join(models, "m.gguf"), "w") as f:
            f.write("GGUF fake weights")
        s.cli("model", "add", "m", os.path.join(models, "m.gguf"))
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"], model="m")
        rep = replica_of(s, u["key"], dep)
        p = probe(s, dep, rep)
        assert not p["db_visible"], p
        assert "lyceumd.db" not in p["data_entries"] and "master.key" not in p["data_entries"], p
        home = os.path.join(s.data, "inference", dep, "home")
        assert p["home"] == "/home/lyceum" and p["home_writable"], p  # its home, seen there
        assert os.path.exists(os.path.join(home, "probe"))  # what it wrote is in the real one
        assert 1800000000 <= p["uid"] < 1800000000 + 65536, p  # an unprivileged uid
        assert p["model_head"] == "GGUF fake weights" and not p["model_writable"], p
        assert p["cuda_visible_devices"] == "", p
        fakes = descendants(s.proc.pid, "python3")
        assert len(fakes) == 1 and p["pid"] != fakes[0], (fakes, p)
        with open(f"/proc/{fakes[0]}/cgroup") as f:
            assert f"/lyceumd/{rep}\n" in f.read()
        dirs = cgroup_dirs(rep)
        limits = {}
        for d in dirs:
            for name in ("pids.max", "memory.max", "memory.limit_in_bytes"):
                if os.path.exists(os.path.join(d, name)):
                    with open(os.path.join(d, name)) as f:
                        limits[name] = f.read().strip()
        assert limits.get("pids.max") == "300", limits
        assert str(1 << 30) in (limits.get("memory.max"), limits.get("memory.limit_in_bytes")), \
            limits
        # 400 forks at once: the kernel stops them at the group's 300 processes (less the
        # sandbox's own); 1.5 GiB in a child: killed (an address-space rlimit would have made
        # a MemoryError instead).
        assert 250 < p["forks"] < 300, p
        assert p["alloc"] == "signal 9", p
        assert s.post(f"/inference/{dep}/stop", u["key"]).status_code == 200
        iu.wait_status(s, u["key"], dep, "stopped")
        assert descendants(s.proc.pid, "python3") == []
        assert cgroup_dirs(rep) == []
        deadline = time.time() + 5
        while os.path.exists(home) and time.time() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(home)
        assert os.path.exists(os.path.join(s.data, "inference", dep, rep + ".log"))
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
    s = Server(["--config", fake_config(sandbox=False)])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        p = probe(s, dep, replica_of(s, u["key"], dep))
        assert p["db_visible"] and "lyceumd.db" in p["data_entries"], p
        assert p["pid"] == descendants(s.proc.pid, "python3")[0]
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def runs_cgroups_writable():
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return os.access("/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/pids", os.W_OK)


def test_a_model_server_that_is_not_installed_fails_the_deployment_at_once():
    s = Server(["--config", runs_util.write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 8}],
        inference={"commands": {"cpu": "no-such-model-server --port {port} --api-key {api_key}"},
                   "tick_ms": 50})])
    try:
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"], model="anything")
        d = iu.wait_status(s, u["key"], dep, "failed", timeout=10)
        assert "'no-such-model-server' was not found" in d["errors"], d
        assert d["replicas"] == []
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
