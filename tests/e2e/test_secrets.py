"""Environment variables and secrets end to end: create one or a batch, list (secret values
masked), upsert, delete one, delete all, name validation; and a run that reads a file from its
owner's bucket at /mnt/s3, writes one back, and sees its variables and secret in its
environment, while the secret's plaintext is in no log line, no API answer after creation and
not in the database files."""

import glob
import hashlib
import os
import shutil

import pytest

from conftest import Server, assert_422, assert_detail
from runs_util import follow, output_of, start, finished, write_config

PATH = "/environment-variables/"


def test_create_list_mask_upsert_delete(server, user):
    k = user["key"]
    r = server.post(PATH, k, json={"key": "API_TOKEN", "value": "tok-123", "is_secret": True})
    assert r.status_code == 200, r.text
    one = r.json()
    assert one["key"] == "API_TOKEN" and one["is_secret"] is True
    assert one["value"] == "********" and "tok-123" not in r.text
    r = server.post(PATH.rstrip("/"), k, json=[{"key": "A", "value": "1"}, {"key": "B", "value": "2"}])
    assert r.status_code == 200 and r.json()["count"] == 2, r.text
    r = server.post(PATH, k, json={"variables": [{"key": "_C9", "value": "x=y z"}]})
    assert r.status_code == 200, r.text
    items = server.get(PATH, k).json()["environment_variables"]
    assert {i["key"]: i["value"] for i in items} == {"A": "1", "B": "2", "_C9": "x=y z",
                                                    "API_TOKEN": "********"}
    assert all(set(i) >= {"id", "key", "value", "is_secret", "created_at", "updated_at"}
               for i in items)
    # upsert keeps the id and can turn a plain variable into a secret
    a_id = next(i["id"] for i in items if i["key"] == "A")
    r = server.post(PATH, k, json={"key": "A", "value": "hidden now", "is_secret": True})
    assert r.json()["id"] == a_id and r.json()["value"] == "********"
    # another user of another org sees nothing
    assert server.get(PATH, server.new_user()["key"]).json()["environment_variables"] == []
    assert_detail(server.delete(PATH + a_id, server.new_user()["key"]), 404)
    assert server.delete(PATH + a_id, k).status_code == 200
    assert_detail(server.delete(PATH + a_id, k), 404)
    r = server.delete(PATH, k)
    assert r.status_code == 200 and r.json()["deleted"] == 3
    assert server.get(PATH.rstrip("/"), k).json()["environment_variables"] == []


def test_names_are_validated(server, user):
    k = user["key"]
    for bad in ["1ABC", "A-B", "", "A B", "É", "x" * 256]:
        assert_422(server.post(PATH, k, json={"key": bad, "value": "v"}), ("body", "key"))
    assert_422(server.post(PATH, k, json={"value": "v"}), ("body", "key"))
    assert_422(server.post(PATH, k, json={"key": "K"}), ("body", "value"))
    assert_422(server.post(PATH, k, json={"key": "K", "value": 3}), ("body", "value"))
    assert_422(server.post(PATH, k, json=[{"key": "D", "value": "1"}, {"key": "D", "value": "2"}]),
               ("body", "key"))
    assert_422(server.post(PATH, k, data="{", headers={"Content-Type": "application/json"}))
    # nothing of a refused batch was kept
    assert server.get(PATH, k).json()["environment_variables"] == []


@pytest.fixture(scope="module")
def rs():
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10",
                         "max_concurrent": 2}], sandbox=True)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


SECRET = "plaintext-secret-9f3c1d7a"


def test_a_run_sees_its_bucket_and_secret_but_the_secret_leaks_nowhere(rs):
    u = rs.new_user(credits=10)
    k = u["key"]
    r = rs.post("/storage/upload", k, params={"key": "inputs/data.txt"},
                files={"file": ("data.txt", b"42 apples\n")})
    assert r.status_code == 200, r.text
    r = rs.post(PATH, k, json=[{"key": "MY_SECRET", "value": SECRET, "is_secret": True},
                               {"key": "PLAIN_VAR", "value": "plain-value"}])
    assert r.status_code == 200 and SECRET not in r.text
    # an org-wide variable (the caller owns the org) that the user's own one overrides
    r = rs.post(PATH, k, json=[{"key": "PLAIN_VAR", "value": "org-value", "scope": "org"},
                               {"key": "ORG_ONLY", "value": "from-org", "scope": "org"}])
    assert r.status_code == 200, r.text
    code = ("import hashlib, os\n"
            "print('file:', open('/mnt/s3/inputs/data.txt').read().strip())\n"
            "s = os.environ['MY_SECRET']\n"
            "print('secret sha256:', hashlib.sha256(s.encode()).hexdigest())\n"
            "print('plain:', os.environ['PLAIN_VAR'], os.environ['ORG_ONLY'])\n"
            "open('/mnt/s3/outputs/result.txt', 'w').write('done') if os.makedirs("
            "'/mnt/s3/outputs', exist_ok=True) is None else None\n")
    run = start(rs, k, code, file_name="job.py")
    events = follow(run["streaming_url"])
    out = output_of(events)
    assert finished(events)["returnCode"] == 0, out
    assert "file: 42 apples" in out
    assert "secret sha256: " + hashlib.sha256(SECRET.encode()).hexdigest() in out
    assert "plain: plain-value from-org" in out
    # results come out through the bucket
    r = rs.get("/storage/download/outputs/result.txt", k)
    assert r.status_code == 200 and r.content == b"done"
    # the plaintext is nowhere: not in answers, logs, run output or the database files
    assert SECRET not in rs.get(PATH, k).text
    assert SECRET not in rs.get(f"/execution/{run['execution_id']}", k).text
    assert SECRET not in rs.read_log()
    dbs = glob.glob(os.path.join(rs.data, "lyceumd.db*"))
    assert dbs
    for path in dbs:
        with open(path, "rb") as f:
            assert SECRET.encode() not in f.read(), path
    with open(os.path.join(rs.data, "master.key"), "rb") as f:
        assert len(f.read()) == 32
    assert os.stat(os.path.join(rs.data, "master.key")).st_mode & 0o777 == 0o600
    for root, _dirs, names in os.walk(rs.data):
        for n in names:
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) < 50 << 20:
                with open(p, "rb") as f:
                    assert SECRET.encode() not in f.read(), p


def test_a_run_cannot_see_another_users_bucket(rs):
    a, b = rs.new_user(credits=10), rs.new_user(credits=10)
    assert rs.post("/storage/upload", a["key"], params={"key": "mine.txt"},
                   files={"file": ("m", b"a's data")}).status_code == 200
    code = "import os\nprint(sorted(os.listdir('/mnt/s3')))\n"
    run = start(rs, b["key"], code)
    events = follow(run["streaming_url"])
    assert finished(events)["returnCode"] == 0
    assert "mine.txt" not in output_of(events)
    assert "[]" in output_of(events)
