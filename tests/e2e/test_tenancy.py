"""Tenancy: what another org's key can do to an org's deployments, files and batches. Every
destructive call (stop or DELETE a deployment, DELETE a file, cancel a batch) and every read
(a deployment, a file and its content, a batch, the lists, the models, a call routed by model)
answers 404 as if the resource did not exist (API.md 16.2: another org's resource is 404,
never 403), and nothing happens to the resource: its owner finds it as it was, and still uses
it. A batch of one org cannot reach another org's deployment either, nor an org's admin
another org's members. Against the tiny model (scripts/tiny-llm.sh), as test_batches.py."""

import json
import shutil
import time

import pytest
import requests

import inference_util as iu
from conftest import Server, assert_detail


@pytest.fixture(scope="module")
def ten():
    s = Server(["--config", iu.config(batch_concurrency=1)])
    iu.add_model(s)
    a, b = s.new_user(credits=10), s.new_user(credits=10)
    dep = iu.create(s, a["key"])
    iu.wait_status(s, a["key"], dep, "running", timeout=60)
    yield s, a, b, dep
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


MESSAGES = [{"role": "user", "content": "hello"}]


def chat(s, key, model):
    return requests.post(s.url("/chat/completions"), timeout=60,
                         headers={"Authorization": "Bearer " + key},
                         json={"model": model, "max_tokens": 4, "messages": MESSAGES})


def upload(s, key, text):
    r = s.post("/files", key, files={"file": ("in.jsonl", text, "application/jsonl")},
               data={"purpose": "batch"})
    assert r.status_code == 200, r.text
    return r.json()


def line(i, model, max_tokens=4):
    return json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": model, "max_tokens": max_tokens,
                                "messages": MESSAGES}})


def wait_batch(s, key, bid, statuses, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        b = s.get(f"/batches/{bid}", key).json()
        if b["status"] in statuses:
            return b
        time.sleep(0.05)
    raise AssertionError(f"batch never {statuses}: {b}")


def test_another_orgs_deployment_cannot_be_stopped_seen_or_called(ten):
    s, a, b, dep = ten
    before = s.get(f"/inference/{dep}", a["key"]).json()
    assert before["status"] == "running" and before["replicas"], before
    for method, path in (("POST", f"/inference/{dep}/stop"), ("DELETE", f"/inference/{dep}"),
                         ("GET", f"/inference/{dep}")):
        assert_detail(s.req(method, path, b["key"]), 404, "Deployment not found")
    for q in ("", "?include_stopped=true"):
        r = s.get("/inference/list" + q, b["key"])
        assert r.status_code == 200 and dep not in r.text, r.text
    r = s.get("/models", b["key"])
    assert r.status_code == 200 and dep not in r.text and "tiny" not in r.text, r.text
    # Routed by its id or by its model's name, a call of the other org finds nothing.
    for model in (dep, "tiny"):
        r = chat(s, b["key"], model)
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", r.text
        assert_detail(s.post("/inference/streaming/submit", b["key"],
                             json={"model": model, "messages": MESSAGES}), 404)
    # For its owner it is as it was, and answers.
    after = s.get(f"/inference/{dep}", a["key"]).json()
    assert after["status"] == "running" and after["stopped_at"] is None, after
    assert [r["replica_id"] for r in after["replicas"]] == \
        [r["replica_id"] for r in before["replicas"]]
    assert dep in s.get("/inference/list", a["key"]).text
    r = chat(s, a["key"], dep)
    assert r.status_code == 200 and r.json()["choices"], r.text


def test_another_orgs_file_cannot_be_deleted_or_read(ten):
    s, a, b, dep = ten
    text = line(0, dep) + "\n" + line(1, dep) + "\n"
    fid = upload(s, a["key"], text)["id"]
    for method, path in (("DELETE", f"/files/{fid}"), ("GET", f"/files/{fid}"),
                         ("GET", f"/files/{fid}/content")):
        assert_detail(s.req(method, path, b["key"]), 404, "File not found")
    for q in ("", "?purpose=batch"):
        r = s.get("/files" + q, b["key"])
        assert r.status_code == 200 and fid not in r.text, r.text
    # Nor can the other org run a batch of it.
    assert_detail(s.post("/batches", b["key"], json={"input_file_id": fid,
                                                    "completion_window": "24h"}), 404)
    assert fid not in s.get("/batches", b["key"]).text
    # For its owner it is as it was.
    f = s.get(f"/files/{fid}", a["key"]).json()
    assert f["id"] == fid and f["bytes"] == len(text)
    assert s.get(f"/files/{fid}/content", a["key"]).text == text
    assert fid in [x["id"] for x in s.get("/files", a["key"]).json()["data"]]


def test_another_orgs_batch_cannot_be_cancelled_or_read(ten):
    """A batch long enough to be in progress while the other org tries (1000 lines, one at a
    time): its cancel changes nothing, and then the owner's own cancel does."""
    s, a, b, dep = ten
    text = "\n".join(line(i, dep, max_tokens=16) for i in range(1000)) + "\n"
    fid = upload(s, a["key"], text)["id"]
    r = s.post("/batches", a["key"], json={"input_file_id": fid, "completion_window": "24h"})
    assert r.status_code == 200, r.text
    bid = r.json()["id"]
    for method, path in (("POST", f"/batches/{bid}/cancel"), ("GET", f"/batches/{bid}")):
        assert_detail(s.req(method, path, b["key"]), 404, "Batch not found")
    for q in ("", "?limit=100", f"?after={bid}"):
        r = s.get("/batches" + q, b["key"])
        assert r.status_code == 200 and bid not in r.text, r.text
    got = s.get(f"/batches/{bid}", a["key"]).json()
    assert got["status"] in ("validating", "in_progress"), got
    assert got["cancelling_at"] is None and got["cancelled_at"] is None, got
    assert bid in [x["id"] for x in s.get("/batches", a["key"]).json()["data"]]
    r = s.post(f"/batches/{bid}/cancel", a["key"])
    assert r.status_code == 200 and r.json()["status"] in ("cancelling", "cancelled"), r.text
    done = wait_batch(s, a["key"], bid, {"cancelled"})
    assert done["request_counts"]["completed"] < 1000, done


def test_a_batch_cannot_reach_another_orgs_deployment(ten):
    """A batch's lines are routed in the batch's org: another org's deployment, by id or by
    its model's name, is no model of theirs."""
    s, a, b, dep = ten
    fid = upload(s, b["key"], line(0, dep) + "\n" + line(1, "tiny") + "\n")["id"]
    r = s.post("/batches", b["key"], json={"input_file_id": fid, "completion_window": "24h"})
    assert r.status_code == 200, r.text
    done = wait_batch(s, b["key"], r.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed" and \
        done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}, done
    assert done["output_file_id"] is None
    errs = [json.loads(x) for x in
            s.get(f"/files/{done['error_file_id']}/content", b["key"]).text.splitlines()]
    assert sorted(e["custom_id"] for e in errs) == ["req-0", "req-1"]
    assert all(e["error"]["code"] == "model_not_found" for e in errs), errs
    # The error file is the batch org's, not the deployment's.
    assert_detail(s.get(f"/files/{done['error_file_id']}", a["key"]), 404)


def test_another_orgs_member_cannot_be_managed_through_ones_own_org(ten):
    """An owner of one org names, in that org's paths, a user of another org: no such member
    (404), and that user's role in their own org is untouched."""
    s, a, b, dep = ten
    ob, oa = b["org_slug"], a["org_slug"]
    assert_detail(s.patch(f"/orgs/{ob}/members/{a['user_id']}", b["key"],
                          json={"role": "member"}), 404, "Member not found")
    assert_detail(s.delete(f"/orgs/{ob}/members/{a['user_id']}", b["key"]), 404,
                  "Member not found")
    members = s.get(f"/orgs/{oa}/members", a["key"]).json()["members"]
    assert [(m["user_id"], m["role"]) for m in members] == [(a["user_id"], "owner")]
    assert [m["user_id"] for m in s.get(f"/orgs/{ob}/members", b["key"]).json()["members"]] \
        == [b["user_id"]]
