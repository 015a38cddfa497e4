"""Storage against tenants' code: runs write their bucket directly (it is bound at /mnt/s3) as
unprivileged uids of their own, so the bucket must be usable by any uid that has it mounted,
closed to every host user that has not, and safe for lyceumd to read whatever a run left in
it (symlinks to the server's keys, FIFOs, sockets, hard links, odd names, trees deeper than
any key).

What a run would do is done here by a forked child that enters the bucket's objects directory
as root (as the bind mount does) and then drops to a uid other than 0, with umask 077."""

import os
import socket
import stat
import subprocess
import tempfile
import traceback

import pytest

from conftest import assert_detail
from runs_util import start, wait_end
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
    keys = [f["key"] for f in server.get("/storage/list-files", k).json()["files"]]
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
    keys = [f["key"] for f in r.json()["files"]]
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
