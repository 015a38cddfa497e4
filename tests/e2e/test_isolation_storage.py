"""Storage against tenants' code: runs write their bucket directly (it is bound at /mnt/s3) as
unprivileged uids of their own, so the bucket must be usable by any uid that has it mounted,
closed to every host user that has not, and safe for lyceumd to read whatever a run left in
it (symlinks to the server's keys, FIFOs, sockets, hard links, odd names, trees deeper than
any key); what runs may put on disk (the storage quota binds their writes to /mnt/s3, their
output and own directory are capped); org API keys reach the org's bucket alone; a deleted
account's S3 credentials and runs end with it.

What a run would do is done here by a forked child that enters the bucket's objects directory
as root (as the bind mount does) and then drops to a uid other than 0, with umask 077."""

import os
import shutil
import socket
import stat
import subprocess
import time
import traceback

import pytest

from conftest import Server, assert_detail
from runs_util import follow, output_of, start, status, wait_end, write_config
from s3_util import Aws, credentials, signed_request

RUN_UID, OTHER_UID = 54321, 54322


def objects_dir(server, owner):
    return os.path.join(server.data, "buckets", owner, "objects")


def upload(server, token, data, key):
    r = server.post("/storage/upload", token, files={"file": ("f", data)}, params={"key": key})
    assert r.status_code == 200, r.text
    return r


def as_uid(uid, cwd, fn):
    """Runs fn() in a child that chdir()s to cwd as root, then becomes uid (umask 077), as a
    run does in its sandbox. Fails the test if fn raised."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.umask(0o077)
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0, f"the step as uid {uid} failed (see stderr)"


def test_what_lyceumd_writes_is_open_to_any_uid_that_has_the_bucket(server, tmp_path):
    u = server.new_user()
    k = u["key"]
    upload(server, k, b"from the file API", "api/one.txt")
    creds = credentials(server, k)
    aws = Aws(creds)
    try:
        src = tmp_path / "two.txt"
        src.write_bytes(b"from S3")
        aws.run("s3", "cp", str(src), f"s3://{creds['bucket_name']}/s3/two.txt")
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(9 << 20))  # past the CLI's 8 MiB: a multipart upload
        aws.run("s3", "cp", str(big), f"s3://{creds['bucket_name']}/s3/mpu/big.bin")
        aws.run("s3", "cp", f"s3://{creds['bucket_name']}/s3/two.txt",
                f"s3://{creds['bucket_name']}/copy/three.txt")
    finally:
        aws.close()
    od = objects_dir(server, u["user_id"])

    def first_run():
        for key in ["api/one.txt", "s3/two.txt", "s3/mpu/big.bin", "copy/three.txt"]:
            with open(key, "r+b") as f:  # readable and writable
                assert f.read(4)
        os.makedirs("run1/deep")
        with open("run1/deep/new.txt", "w") as f:
            f.write("written by the first run")
        with open("api/added-by-run.txt", "w") as f:
            f.write("x")

    def second_run():
        with open("run1/deep/new.txt", "r+") as f:
            assert f.read() == "written by the first run"
            f.write(", and the second")
        with open("run1/deep/second.txt", "w") as f:
            f.write("y")
        os.unlink("api/added-by-run.txt")

    as_uid(RUN_UID, od, first_run)
    as_uid(OTHER_UID, od, second_run)
    r = server.get("/storage/download/run1/deep/new.txt", k)
    assert r.status_code == 200 and r.content == b"written by the first run, and the second"
    keys = [f["key"] for f in server.get("/storage/list-files", k).json()]
    assert "run1/deep/second.txt" in keys and "api/added-by-run.txt" not in keys
    # the boundary: no host user reaches any bucket through the filesystem
    buckets = os.path.join(server.data, "buckets")
    assert stat.S_IMODE(os.stat(buckets).st_mode) == 0o700

    def outsider():
        with pytest.raises(PermissionError):
            os.listdir(buckets)
        with pytest.raises(PermissionError):
            open(os.path.join(od, "api", "one.txt"), "rb")

    as_uid(RUN_UID, "/", outsider)


def test_a_bucket_written_before_is_opened_up_once_when_a_run_mounts_it(fresh_server):
    """Files lyceumd wrote as root (0644, 0600) before buckets were shared with runs' uids are
    opened up when a run first mounts the bucket; a root-owned file with a second link (what a
    link to one of the server's keys would look like) is left closed, and set-uid bits go."""
    s = fresh_server
    u = s.new_user(credits=10)
    k = u["key"]
    upload(s, k, b"old object", "old/a.txt")
    od = objects_dir(s, u["user_id"])
    # as an older lyceumd left it: no ACLs, 0755 folders, 0644 / 0600 files
    subprocess.run(["setfacl", "-R", "-b", od], check=True)
    os.chmod(od, 0o755)
    os.chmod(os.path.join(od, "old"), 0o755)
    os.chmod(os.path.join(od, "old", "a.txt"), 0o600)
    with open(os.path.join(od, "suid.bin"), "wb") as f:
        f.write(b"#!/bin/sh\n")
    os.chmod(os.path.join(od, "suid.bin"), 0o4755)
    secret = os.path.join(s.data, "planted-secret.txt")
    with open(secret, "w") as f:
        f.write("a key of the server")
    os.chmod(secret, 0o600)
    os.link(secret, os.path.join(od, "linked.txt"))

    run = start(s, k, "print('mounted')")
    assert wait_end(s, k, run["execution_id"])["status"] == "completed"

    def run_uid():
        with open("old/a.txt", "r+b") as f:
            assert f.read() == b"old object"
        with open("old/new.txt", "w") as f:
            f.write("z")
        with pytest.raises(PermissionError):
            open("linked.txt", "rb")

    as_uid(RUN_UID, od, run_uid)
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert not os.stat(os.path.join(od, "suid.bin")).st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert_detail(s.get("/storage/download/linked.txt", k), 404)
    assert s.get("/storage/download/old/new.txt", k).content == b"z"


@pytest.fixture
def hostile_bucket(server):
    """A bucket in which a run (another uid) left every kind of entry it can make."""
    u = server.new_user()
    k = u["key"]
    upload(server, k, b"the real one", "real.txt")
    od = objects_dir(server, u["user_id"])
    data = server.data

    def plant():
        os.symlink(os.path.join(data, "jwt.key"), "leak.txt")
        os.symlink(data, "datalink")
        os.mkdir("sub")
        os.symlink("../../../jwt.key", "sub/up.txt")
        os.mkfifo("pipe.bin")
        os.mkfifo("sub/pipe2.bin")
        s = socket.socket(socket.AF_UNIX)
        s.bind("sock.bin")
        s.close()
        with open("mine.txt", "w") as f:
            f.write("written by the run")
        os.link("mine.txt", "hard.txt")
        with open("n" * 255, "w") as f:
            f.write("long name")
        with open(b"\xff\xfe-not-utf8.txt", "w") as f:
            f.write("x")
        with open("line\nbreak.txt", "w") as f:
            f.write("nl")
        with open("ctl\x01.txt", "w") as f:
            f.write("ctl")
        # deeper than any key (and than the walk goes)
        os.mkdir("deep")
        os.chdir("deep")
        for _ in range(700):
            os.mkdir("d")
            os.chdir("d")
        with open("bottom.bin", "wb") as f:
            f.write(b"b" * 1000)

    as_uid(RUN_UID, od, plant)
    return server, u, od


def test_what_a_run_leaves_in_its_bucket_is_never_followed(hostile_bucket):
    s, u, od = hostile_bucket
    k = u["key"]
    key = open(os.path.join(s.data, "jwt.key"), "rb").read()
    for name in ["leak.txt", "datalink/jwt.key", "sub/up.txt", "pipe.bin", "sub/pipe2.bin",
                 "sock.bin", "datalink"]:
        r = s.get(f"/storage/download/{name}", k)
        assert r.status_code == 404, (name, r.status_code)
        assert key not in r.content
    r = s.get("/storage/download/hard.txt", k)
    assert r.status_code == 200 and r.content == b"written by the run"
    assert s.get("/storage/download/" + "n" * 255, k).content == b"long name"
    r = s.get("/storage/list-files", k)
    assert r.status_code == 200, r.text
    keys = [f["key"] for f in r.json()]
    assert sorted(keys) == sorted(["real.txt", "mine.txt", "hard.txt", "n" * 255,
                                   "line\nbreak.txt", "ctl\x01.txt"]), keys
    # copies from them: nothing to copy, and nothing of the server's lands in the bucket
    creds = credentials(s, k)
    for src in ["leak.txt", "pipe.bin", "sock.bin", "sub/up.txt"]:
        status, body = signed_request(s, creds, "PUT", "copied.txt", headers={
            "x-amz-copy-source": f"/{creds['bucket_name']}/{src}"})
        assert status == 404 and b"NoSuchKey" in body, (src, status, body)
    r = s.post("/storage/upload-bulk", k, files=[("files", ("x.txt", b"x"))],
               params={"prefix": "datalink"})
    assert r.status_code == 409, r.text
    assert not os.path.exists(os.path.join(s.data, "x.txt"))
    # S3 reads and listings (the CLI, and the raw XML without url encoding)
    aws = Aws(creds)
    try:
        r = aws.run("s3", "cp", f"s3://{creds['bucket_name']}/leak.txt", "-", check=False,
                    timeout=30)
        assert r.returncode != 0 and key.decode(errors="replace") not in r.stdout
        r = aws.run("s3", "cp", f"s3://{creds['bucket_name']}/pipe.bin", "-", check=False,
                    timeout=30)
        assert r.returncode != 0
        out = aws.run("s3", "ls", "--recursive", f"s3://{creds['bucket_name']}/",
                      timeout=30).stdout
        assert "real.txt" in out and "hard.txt" in out and "leak.txt" not in out
    finally:
        aws.close()
    status, body = signed_request(s, creds, "GET", query={"list-type": "2"})
    assert status == 200 and b"<Key>real.txt</Key>" in body, body
    import xml.etree.ElementTree as ET
    ET.fromstring(body)  # well-formed, whatever the names
    # deletes remove the entries themselves, never what they point to
    for name in ["leak.txt", "pipe.bin", "sub/up.txt"]:
        assert s.delete(f"/storage/delete/{name}", k).status_code == 200, name
    status, _ = signed_request(s, creds, "DELETE", "sock.bin")
    assert status == 204
    assert not os.path.lexists(os.path.join(od, "leak.txt"))
    assert not os.path.exists(os.path.join(od, "sock.bin"))
    r = s.delete("/storage/delete-folder/datalink", k)
    assert r.status_code in (200, 404), r.text
    assert open(os.path.join(s.data, "jwt.key"), "rb").read() == key
    assert os.path.exists(os.path.join(s.data, "lyceumd.db"))
    assert s.delete("/storage/delete/hard.txt", k).status_code == 200
    assert s.get("/storage/download/mine.txt", k).content == b"written by the run"
    assert s.alive()


# ---- what runs may put on disk ---------------------------------------------------------------

QUOTA = 50_000_000
OUTPUT_CAP = 4 << 20
DIR_CAP = 30 << 20


@pytest.fixture(scope="module")
def limited():
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10", "max_concurrent": 4},
                        {"hardware_profile": "cpu.one", "price_per_hour": "0.10",
                         "max_concurrent": 1}],
                       storage_quota_bytes=QUOTA, run_output_max_bytes=OUTPUT_CAP,
                       run_dir_max_bytes=DIR_CAP)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def tree_bytes(path):
    total = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(root, n))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def test_a_run_writing_past_the_storage_quota_is_stopped(limited):
    """120 MiB written to /mnt/s3 at about 10 MiB/s under a 50 MB quota: the run is ended with
    the reason, and the bucket holds no more than the quota and a bounded overshoot (what
    the run writes between two measurements, about a second)."""
    s = limited
    u = s.new_user(credits=10)
    k = u["key"]
    code = ("import os, time\nos.makedirs('/mnt/s3/fill', exist_ok=True)\n"
            "block = os.urandom(1 << 20)\n"
            "for i in range(120):\n"
            "    with open(f'/mnt/s3/fill/{i:03d}.bin', 'wb') as f:\n"
            "        f.write(block)\n"
            "    print('wrote', i + 1, 'MiB', flush=True)\n"
            "    time.sleep(0.1)\n"
            "print('all written', flush=True)\n")
    run = start(s, k, code, timeout=300)
    st = wait_end(s, k, run["execution_id"], timeout=120)
    assert st["status"] == "aborted" and st["reason"] == "limit", st
    assert f"Storage quota of {QUOTA} bytes exceeded at /mnt/s3" in st["errors"], st
    out = output_of(follow(run["streaming_url"]))
    assert f"Storage quota of {QUOTA} bytes exceeded at /mnt/s3" in out
    assert "all written" not in out
    used = tree_bytes(objects_dir(s, u["user_id"]))
    print(f"\nbucket after the run: {used} bytes, {used - QUOTA} over the quota")
    assert QUOTA < used <= QUOTA + (40 << 20), used
    # the bucket is over its quota: uploads are refused, and a run that mounts it is ended
    assert_detail(s.post("/storage/upload", k, params={"key": "more.bin"}, data=b"x" * 1000,
                         headers={"Content-Type": "application/octet-stream"}), 413, "quota")
    run = start(s, k, "import time\ntime.sleep(60)", timeout=120)
    st = wait_end(s, k, run["execution_id"], timeout=30)
    assert st["status"] == "aborted" and "Storage quota" in st["errors"], st
    # emptied, it serves runs again
    assert s.delete("/storage/delete-folder/fill", k).status_code == 200
    run = start(s, k, "print(open('/mnt/s3/x', 'w').write('ok'))")
    assert wait_end(s, k, run["execution_id"])["status"] == "completed"


def test_endless_output_is_cut_at_the_cap_and_the_run_goes_on(limited):
    s = limited
    u = s.new_user(credits=10)
    k = u["key"]
    run = start(s, k, "import sys\nline = 'x' * 999 + '\\n'\nwhile True:\n"
                      "    sys.stdout.write(line)\n", timeout=300)
    rid = run["execution_id"]
    log = os.path.join(s.data, "runs", rid, "output.log")
    deadline = time.time() + 60
    while time.time() < deadline and not (os.path.exists(log) and
                                          os.path.getsize(log) >= OUTPUT_CAP):
        time.sleep(0.1)
    time.sleep(2)  # it goes on printing meanwhile
    assert status(s, k, rid)["status"] == "running"
    size = os.path.getsize(log)
    assert OUTPUT_CAP <= size <= OUTPUT_CAP + (256 << 10), size
    assert os.path.getsize(os.path.join(s.data, "runs", rid, "lines.idx")) < 24 * (size // 1000 + 10)
    assert s.post(f"/workloads/abort/{rid}", k).status_code == 200
    assert wait_end(s, k, rid)["status"] == "aborted"
    assert os.path.getsize(log) <= OUTPUT_CAP + (256 << 10)
    out = output_of(follow(run["streaming_url"]))
    assert f"The output reached run_output_max_bytes ({OUTPUT_CAP} bytes)" in out


def test_a_run_filling_its_own_directory_is_stopped(limited):
    s = limited
    u = s.new_user(credits=10)
    k = u["key"]
    code = ("import os, time\nblock = os.urandom(1 << 20)\n"
            "with open('big.bin', 'wb') as f:\n"
            "    for i in range(200):\n"
            "        f.write(block)\n        f.flush()\n        time.sleep(0.05)\n"
            "print('all written', flush=True)\n")
    run = start(s, k, code, timeout=300)
    st = wait_end(s, k, run["execution_id"], timeout=120)
    assert st["status"] == "aborted" and st["reason"] == "limit", st
    assert f"run_dir_max_bytes of {DIR_CAP} bytes" in st["errors"], st
    assert "all written" not in output_of(follow(run["streaming_url"]))


# ---- whose bucket ---------------------------------------------------------------------------

def test_an_org_key_reaches_the_orgs_bucket_alone(limited, tmp_path):
    s = limited
    u = s.new_user(credits=10)
    uk = u["key"]
    r = s.post(f"/orgs/{u['org_slug']}/api-keys", uk, json={"name": "ci"})
    assert r.status_code == 200, r.text
    ok = r.json()["plaintext_key"]
    upload(s, uk, b"mine alone", "personal.txt")
    upload(s, ok, b"the org's", "org.txt")
    # the file API
    assert_detail(s.get("/storage/download/personal.txt", ok), 404)
    assert_detail(s.get("/storage/download/org.txt", uk), 404)
    assert [f["key"] for f in s.get("/storage/list-files", ok).json()] == ["org.txt"]
    assert [f["key"] for f in s.get("/storage/list-files", uk).json()] == \
        ["personal.txt"]
    assert s.delete("/storage/delete/personal.txt", ok).status_code == 404
    assert os.path.exists(os.path.join(s.data, "buckets", "o-" + u["org_id"], "objects",
                                       "org.txt"))
    # S3: credentials an org key asks for open the org's bucket, and only it
    oc, uc = credentials(s, ok), credentials(s, uk)
    assert oc["bucket_name"] == "o-" + u["org_id"] and uc["bucket_name"] == "u-" + u["user_id"]
    oa, ua = Aws(oc), Aws(uc)
    try:
        assert "org.txt" in oa.run("s3", "ls", f"s3://{oc['bucket_name']}/").stdout
        for aws, bucket, key in [(oa, uc["bucket_name"], "personal.txt"),
                                 (ua, oc["bucket_name"], "org.txt")]:
            r = aws.run("s3api", "get-object", "--bucket", bucket, "--key", key,
                        str(tmp_path / "x"), check=False)
            assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
            r = aws.run("s3", "ls", f"s3://{bucket}/", check=False)
            assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
        status_, body = signed_request(s, oc, "PUT", "copied.txt", headers={
            "x-amz-copy-source": f"/{uc['bucket_name']}/personal.txt"})
        assert status_ == 403 and b"AccessDenied" in body, body
    finally:
        oa.close()
        ua.close()
    # runs see the bucket of the key that started them
    listing = "import os\nprint(sorted(os.listdir('/mnt/s3')))\n"
    for key, want in [(ok, "['org.txt']"), (uk, "['personal.txt']")]:
        run = start(s, key, listing)
        assert wait_end(s, key, run["execution_id"])["status"] == "completed"
        assert want in output_of(follow(run["streaming_url"]))


# ---- the end of an account ------------------------------------------------------------------

def run_row(server, run_id):
    import sqlite3
    db = sqlite3.connect(f"file:{os.path.join(server.data, 'lyceumd.db')}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
    finally:
        db.close()


def test_deleting_an_account_revokes_its_s3_credentials_and_ends_its_runs(limited):
    s = limited
    u = s.new_user(credits=10)
    k = u["key"]
    creds = credentials(s, k)
    upload(s, k, b"x", "x.txt")
    status_, body = signed_request(s, creds, "GET", "x.txt")
    assert status_ == 200 and body == b"x"
    going = start(s, k, "import time\nprint('going', flush=True)\ntime.sleep(120)",
                  execution_type="cpu.one", timeout=300)
    from runs_util import wait_status
    wait_status(s, k, going["execution_id"], "running")
    queued = start(s, k, "print('never')", execution_type="cpu.one")
    assert status(s, k, queued["execution_id"])["status"] == "pending"
    pid = run_row(s, going["execution_id"])["pid"]
    assert pid and os.path.exists(f"/proc/{pid}")

    r = s.delete("/user/delete", k)
    assert r.status_code == 200, r.text
    # the S3 credentials are gone at once
    for method, key in [("GET", "x.txt"), ("GET", None), ("PUT", "y.txt")]:
        status_, body = signed_request(s, creds, method, key, body=b"y" if method == "PUT" else b"")
        assert status_ == 403 and b"<Code>InvalidAccessKeyId</Code>" in body, (method, body)
    # the running run ends, and the queued one never starts
    deadline = time.time() + 10
    while time.time() < deadline and run_row(s, going["execution_id"])["status"] == "running":
        time.sleep(0.05)
    row = run_row(s, going["execution_id"])
    assert row["status"] == "aborted" and row["reason"] == "deleted", row
    assert "deleted" in row["errors"]
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    row = run_row(s, queued["execution_id"])
    assert row["status"] == "aborted" and row["started_at"] is None, row
    assert "never" not in output_of(follow(queued["streaming_url"]))
    assert s.alive()
