"""Files and batches (API.md 12) with the OpenAI SDK against a deployment of the tiny model:
a 100-line batch to completed with one result per custom_id, cancel mid-way, a malformed file
failing with line-numbered errors, kill -9 of lyceumd mid-batch, and per-org isolation. A
batch that already ended (completed, failed, cancelled) cannot be cancelled: 400."""

import json
import os
import shutil
import signal
import time

import pytest

import inference_util as iu
from conftest import Server


@pytest.fixture(scope="module")
def bat():
    s = Server(["--config", iu.config(batch_concurrency=4)])
    iu.add_model(s)
    u = s.new_user(credits=10)
    dep = iu.create(s, u["key"])
    iu.wait_status(s, u["key"], dep, "running")
    yield s, u, dep
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


def upload(s, key, text):
    r = s.post("/files", key, files={"file": ("in.jsonl", text, "application/jsonl")},
               data={"purpose": "batch"})
    assert r.status_code == 200, r.text
    return r.json()


def line(i, model, **kw):
    d = {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}}
    d.update(kw)
    return json.dumps(d)


def wait_batch(s, key, bid, statuses, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = s.get(f"/batches/{bid}", key).json()
        if b["status"] in statuses:
            return b
        time.sleep(0.05)
    raise AssertionError(f"batch never {statuses}: {b}")


def test_100_lines_with_the_sdk(bat):
    s, u, dep = bat
    r = iu.sdk(s, u["key"], "batch", model=dep, n=100)
    b = r["batch"]
    assert b["status"] == "completed", r
    assert b["request_counts"] == {"total": 100, "completed": 100, "failed": 0}
    assert r["seen"][-1] == "completed" and "in_progress" in r["seen"]
    ids = sorted(o["custom_id"] for o in r["output"])
    assert ids == sorted(f"req-{i}" for i in range(100))
    for o in r["output"]:
        assert o["response"]["status_code"] == 200 and o["error"] is None
        assert o["response"]["body"]["usage"]["completion_tokens"] == 8
    # The output file is a file of the org; another org sees none of it.
    other = s.new_user()
    assert s.get(f"/files/{b['output_file_id']}/content", other["key"]).status_code == 404
    assert s.get(f"/batches/{b['id']}", other["key"]).status_code == 404
    assert s.get(f"/files/{b['input_file_id']}", other["key"]).status_code == 404
    lst = s.get("/batches?limit=1", u["key"]).json()
    assert lst["data"][0]["id"] == b["id"] and lst["first_id"] == b["id"]
    # A finished batch cannot be cancelled: 400, as OpenAI answers, and it stays as it was.
    r = iu.sdk(s, u["key"], "cancel", id=b["id"])
    assert r["error"]["status"] == 400, r
    assert "Cannot cancel a batch with status 'completed'" in r["error"]["message"], r
    after = s.get(f"/batches/{b['id']}", u["key"]).json()
    assert after["status"] == "completed" and after["cancelling_at"] is None, after


def test_malformed_file_fails_with_line_numbers(bat):
    s, u, dep = bat
    text = "\n".join([line(0, dep), "{not json", line(0, dep), line(3, dep, method="GET"),
                      line(4, dep, url="/v1/embeddings")]) + "\n"
    f = upload(s, u["key"], text)
    r = s.post("/batches", u["key"], json={"input_file_id": f["id"], "completion_window": "24h",
                                          "endpoint": "/v1/chat/completions"})
    assert r.status_code == 200, r.text
    b = wait_batch(s, u["key"], r.json()["id"], {"failed"})
    errs = {(e["line"], e["code"]) for e in b["errors"]["data"]}
    assert errs == {(2, "invalid_json_line"), (3, "duplicate_custom_id"),
                    (4, "invalid_method"), (5, "invalid_url")}, b["errors"]
    assert b["failed_at"] and b["output_file_id"] is None
    r = s.post(f"/batches/{b['id']}/cancel", u["key"])
    assert r.status_code == 400 and "status 'failed'" in r.json()["detail"], r.text
    assert r.json()["error"]["type"] == "invalid_request_error", r.text  # OpenAI's, beside it
    assert r.json()["error"]["message"] == r.json()["detail"]
    assert s.get(f"/batches/{b['id']}", u["key"]).json()["status"] == "failed"


def test_cancel_mid_way_keeps_partial_results():
    # The replica is fake_model_server.py --gate: it answers the k-th request only once its
    # home's file "release" says more than k, so what is done when the cancel comes does not
    # depend on the machine's speed.
    s = Server(["--config", iu.fake_config(args="--gate", inference={"batch_concurrency": 4})])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        iu.wait_status(s, u["key"], dep, "running")
        home = os.path.join(s.data, "inference", dep, "home")

        def release(n):
            with open(os.path.join(home, "release.tmp"), "w") as f:
                f.write(str(n))
            os.rename(os.path.join(home, "release.tmp"), os.path.join(home, "release"))

        text = "\n".join(line(i, dep) for i in range(60)) + "\n"
        f = upload(s, u["key"], text)
        b = s.post("/batches", u["key"], json={"input_file_id": f["id"],
                                               "completion_window": "24h"}).json()
        release(5)
        deadline = time.time() + 30
        while s.get(f"/batches/{b['id']}", u["key"]).json()["request_counts"]["completed"] < 5:
            assert time.time() < deadline, "the five released requests were not recorded"
            time.sleep(0.02)
        r = iu.sdk(s, u["key"], "cancel", id=b["id"])
        assert r["status"] == "cancelling", r
        # What is in flight (at most batch_concurrency lines) may end; nothing else starts.
        release(1000)
        b = wait_batch(s, u["key"], b["id"], {"cancelled"})
        done = b["request_counts"]["completed"]
        assert 5 <= done <= 5 + 4 and b["request_counts"]["total"] == 60, b
        out = s.get(f"/files/{b['output_file_id']}/content", u["key"])
        assert out.status_code == 200
        ids = [json.loads(x)["custom_id"] for x in out.text.rstrip("\n").split("\n")]
        assert len(ids) == done and len(set(ids)) == done, ids
        # Cancelled once: a second cancel is refused and changes nothing.
        r = s.post(f"/batches/{b['id']}/cancel", u["key"])
        assert r.status_code == 400 and "already been cancelled" in r.json()["detail"], r.text
        assert s.get(f"/batches/{b['id']}", u["key"]).json()["request_counts"] == \
            b["request_counts"]
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_kill_9_mid_batch_then_restart_completes_once(tmp_path):
    s = Server(["--config", iu.config(batch_concurrency=2)])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        iu.wait_status(s, u["key"], dep, "running")
        text = "\n".join(line(i, dep, body={"model": dep, "max_tokens": 60, "messages": [
            {"role": "user", "content": "x"}]}) for i in range(80)) + "\n"
        f = upload(s, u["key"], text)
        b = s.post("/batches", u["key"], json={"input_file_id": f["id"],
                                               "completion_window": "24h"}).json()
        deadline = time.time() + 30
        while s.get(f"/batches/{b['id']}", u["key"]).json()["request_counts"]["completed"] < 10:
            assert time.time() < deadline
            time.sleep(0.02)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        s.start()
        b = wait_batch(s, u["key"], b["id"], {"completed"}, timeout=90)
        assert b["request_counts"] == {"total": 80, "completed": 80, "failed": 0}, b
        out = s.get(f"/files/{b['output_file_id']}/content", u["key"]).text.rstrip("\n")
        out = out.split("\n")  # not splitlines(): the model's text may hold U+2028
        ids = [json.loads(x)["custom_id"] for x in out]
        assert len(ids) == 80 and len(set(ids)) == 80
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
