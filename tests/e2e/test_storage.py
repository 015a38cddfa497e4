"""Storage end to end: the file API (upload as multipart or raw bytes, bulk upload, list,
download with Range, delete, delete a folder), hostile keys and symlinks that must not reach
outside the bucket, the bucket quota, a 1 GiB upload and download through the file API with
the server's memory watched, and the S3 endpoint driven by Debian's AWS CLI: cp both ways, ls,
rm, a 100 MiB multipart upload, a presigned URL, another user's bucket, a wrong secret and
expired credentials; and each way S3 refuses a request, signed by hand: a clock 20 minutes
off, presigned URLs out of their time (GET and PUT), a body that is not the signed payload,
an unknown access key, a credential scope of another date, region or service, and the
additional checksums of newer SDKs (a header, or an aws-chunked trailer) that do not match.

LYCEUMD_BIG_BYTES sets the size of the big transfer (default 1 GiB)."""

import base64
import hashlib
import json
import http.client
import zlib
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import Server, assert_422, assert_detail
from runs_util import write_config
from s3_util import AWS, Aws, credentials, presign, signed_request

BIG = int(os.environ.get("LYCEUMD_BIG_BYTES", str(1 << 30)))


def objects_dir(server, user):
    return os.path.join(server.data, "buckets", user["user_id"], "objects")


def upload(server, token, data, name="f.bin", **params):
    return server.post("/storage/upload", token, files={"file": (name, data)}, params=params)


def test_upload_list_download_delete(server, user):
    k = user["key"]
    r = upload(server, k, b"hello world", name="hello.txt")
    assert r.status_code == 200, r.text
    assert r.json()["key"] == "hello.txt" and r.json()["size"] == 11
    # key as a query parameter, as a form field (after the file), and raw bytes with ?key=
    assert upload(server, k, b"A" * 1000, key="data/a.bin").json()["key"] == "data/a.bin"
    r = server.post("/storage/upload", k, files=[("file", ("x", b"BB")), ("key", (None, "data/b.bin"))])
    assert r.status_code == 200 and r.json()["key"] == "data/b.bin", r.text
    r = server.post("/storage/upload", k, params={"key": "data/sub/c.bin"}, data=b"raw bytes",
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["size"] == 9, r.text
    r = server.post("/storage/upload-bulk", k, params={"prefix": "bulk"},
                    files=[("files", ("one.txt", b"1")), ("files", ("two.txt", b"22"))])
    assert r.status_code == 200 and r.json()["count"] == 2, r.text

    files = server.get("/storage/list-files", k).json()
    assert [f["key"] for f in files] == ["bulk/one.txt", "bulk/two.txt", "data/a.bin",
                                         "data/b.bin", "data/sub/c.bin", "hello.txt"]
    assert {f["key"]: f["size"] for f in files}["data/a.bin"] == 1000
    r = server.get("/storage/list-files", k, params={"prefix": "data/", "max_files": 2})
    assert [f["key"] for f in r.json()] == ["data/a.bin", "data/b.bin"]
    assert r.headers["X-Truncated"] == "true" and r.headers["X-Total-Count"] == "3"

    r = server.get("/storage/download/data/sub/c.bin", k)
    assert r.status_code == 200 and r.content == b"raw bytes"
    r = server.get("/storage/download/hello.txt", k, headers={"Range": "bytes=6-"})
    assert r.status_code == 206 and r.content == b"world"
    assert r.headers["Content-Range"] == "bytes 6-10/11"
    r = server.get("/storage/download/hello.txt", k, headers={"Range": "bytes=-3"})
    assert r.status_code == 206 and r.content == b"rld"
    r = server.get("/storage/download/hello.txt", k, headers={"Range": "bytes=50-60"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */11"

    assert server.delete("/storage/delete/data/a.bin", k).status_code == 200
    assert_detail(server.get("/storage/download/data/a.bin", k), 404)
    assert_detail(server.delete("/storage/delete/data/a.bin", k), 404)
    r = server.delete("/storage/delete-folder/data", k)
    assert r.status_code == 200 and r.json()["deleted"] == 2, r.text
    assert_detail(server.delete("/storage/delete-folder/data", k), 404, "no files")
    assert [f["key"] for f in server.get("/storage/list-files", k).json()] == \
        ["bulk/one.txt", "bulk/two.txt", "hello.txt"]
    # another user sees none of it
    other = server.new_user()
    assert server.get("/storage/list-files", other["key"]).json() == []
    assert_detail(server.get("/storage/download/hello.txt", other["key"]), 404)
    assert_detail(server.get("/storage/list-files"), 401)


def raw_request(server, method, path, body=b"", headers=None):
    """A request whose path goes out exactly as written (no client-side normalisation)."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_hostile_keys_are_refused_422(server, user):
    k = user["key"]
    auth = {"Authorization": "Bearer " + k}
    for bad in ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a//b", "./x", "x/.",
                "k" * 1025, "ok/"]:
        assert_422(upload(server, k, b"x", key=bad), ("query", "key"))
        r = server.post("/storage/upload", k, files=[("file", ("f", b"x")), ("key", (None, bad))])
        assert_422(r, ("body", "key"))
    longest = "/".join(["k" * 255] * 3 + ["k" * 254, "k"])  # 1,024 bytes; segments are names
    assert len(longest) == 1024
    assert upload(server, k, b"x", key=longest).status_code == 200
    assert_422(upload(server, k, b"x", key="k" * 256), ("query", "key"))
    # NUL: escaped in a query or path, raw in a form field
    assert_422(upload(server, k, b"x", key="a\x00b"), ("query", "key"))
    r = server.post("/storage/upload", k, files=[("file", ("f", b"x")), ("key", (None, "a\x00b"))])
    assert_422(r, ("body", "key"))
    # file names of a bulk upload are keys too
    r = server.post("/storage/upload-bulk", k, files=[("files", ("../../up.txt", b"x"))])
    assert_422(r, ("body", "files"))
    # paths that climb, written raw and percent-encoded
    for path in ["/storage/download/../../../../etc/passwd", "/storage/download/a/%2e%2e/%2e%2e/x",
                 "/storage/download/a%00b", "/storage/delete/..%2F..%2Flyceumd.db"]:
        method = "DELETE" if "/delete/" in path else "GET"
        status, body = raw_request(server, method, "/api/v2/external" + path, headers=auth)
        assert status in (404, 422), (path, status, body)
        assert b"root:" not in body
    assert os.path.exists(os.path.join(server.data, "lyceumd.db"))
    # nothing was written outside the bucket's objects
    found = []
    for root, _dirs, names in os.walk(server.data):
        found += [os.path.join(root, n) for n in names if "escape" in n or n == "up.txt"]
    assert found == []


def test_symlinks_in_a_bucket_lead_nowhere(server, user):
    """A run can leave symlinks in its bucket (it is bound at /mnt/s3): the API must not follow
    them, for reading or writing."""
    k = user["key"]
    assert upload(server, k, b"x", key="seed.txt").status_code == 200
    od = objects_dir(server, user)
    outside = tempfile.mkdtemp(prefix="lyceumd-outside-")
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write("outside the bucket")
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(od, "link.txt"))
    os.symlink(outside, os.path.join(od, "dirlink"))
    try:
        assert_detail(server.get("/storage/download/link.txt", k), 404)
        assert_detail(server.get("/storage/download/dirlink/secret.txt", k), 404)
        r = upload(server, k, b"planted", key="dirlink/planted.txt")
        assert r.status_code == 409, r.text
        assert os.listdir(outside) == ["secret.txt"]
        assert "dirlink/secret.txt" not in [f["key"] for f in
                                           server.get("/storage/list-files", k).json()]
        assert_detail(server.delete("/storage/delete/dirlink/secret.txt", k), 404)
        assert os.path.exists(os.path.join(outside, "secret.txt"))
    finally:
        os.unlink(os.path.join(od, "link.txt"))
        os.unlink(os.path.join(od, "dirlink"))
        shutil.rmtree(outside)


@pytest.fixture(scope="module")
def small_quota():
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10"}],
                       storage_quota_bytes=1 << 20)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def test_quota_full_is_413_with_a_clear_detail(small_quota):
    s = small_quota
    u = s.new_user()
    assert upload(s, u["key"], b"a" * 600_000, key="one").status_code == 200
    body = assert_detail(upload(s, u["key"], b"b" * 600_000, key="two"), 413, "quota")
    assert "1048576 bytes" in body["detail"]
    assert [f["key"] for f in s.get("/storage/list-files", u["key"]).json()] == ["one"]
    # and through S3
    creds = credentials(s, u["key"])
    aws = Aws(creds)
    try:
        path = tempfile.mktemp()
        with open(path, "wb") as f:
            f.write(b"c" * 600_000)
        r = aws.run("s3", "cp", path, f"s3://{creds['bucket_name']}/three", check=False)
        assert r.returncode != 0 and "EntityTooLarge" in r.stderr, r.stderr
        os.unlink(path)
    finally:
        aws.close()
    assert upload(s, u["key"], b"c" * 400_000, key="three").status_code == 200


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(field)


def test_big_upload_and_download_stream_through_disk(tmp_path):
    """LYCEUMD_BIG_BYTES (1 GiB by default) up and down through the file API with curl: the
    bytes come back identical and the server's resident memory grows by less than 64 MiB."""
    s = Server()
    try:
        u = s.new_user()
        src = tmp_path / "big.bin"
        block = os.urandom(1 << 20)
        with open(src, "wb") as f:
            for i in range(BIG // len(block)):
                f.write(block[:-8] + i.to_bytes(8, "little"))
            f.write(block[: BIG % len(block)])
        s.get("/storage/list-files", u["key"])  # warm up
        base = rss(s.proc.pid, "VmRSS")
        t0 = time.time()
        out = subprocess.run(["curl", "-sS", "-f", "-H", "Authorization: Bearer " + u["key"],
                              "-F", f"file=@{src}", "-F", "key=big/big.bin",
                              s.url("/storage/upload")], capture_output=True, text=True,
                             timeout=600)
        up_s = time.time() - t0
        assert out.returncode == 0, out.stderr
        t0 = time.time()
        dst = tmp_path / "back.bin"
        out = subprocess.run(["curl", "-sS", "-f", "-H", "Authorization: Bearer " + u["key"],
                              "-o", str(dst), s.url("/storage/download/big/big.bin")],
                             capture_output=True, text=True, timeout=600)
        down_s = time.time() - t0
        assert out.returncode == 0, out.stderr
        grew = rss(s.proc.pid, "VmHWM") - base
        print(f"\n{BIG} bytes: upload {up_s:.2f}s, download {down_s:.2f}s, "
              f"server peak RSS grew {grew / 2**20:.1f} MiB")
        assert os.path.getsize(dst) == BIG
        assert subprocess.run(["cmp", str(src), str(dst)]).returncode == 0
        assert grew < 64 << 20, f"server RSS grew {grew / 2**20:.1f} MiB"
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


@pytest.fixture(scope="module")
def s3(server):
    assert os.path.exists(AWS), "Debian's awscli must be installed (scripts/deps.sh)"
    u = server.new_user()
    creds = credentials(server, u["key"])
    aws = Aws(creds)
    yield server, u, creds, aws
    aws.close()


def test_credentials_shape(s3):
    server, u, creds, _ = s3
    assert set(creds) >= {"access_key", "secret_key", "session_token", "endpoint", "bucket_name",
                          "region", "expires_at"}
    assert creds["endpoint"] == server.base and creds["region"] == "us-east-1"
    assert creds["bucket_name"] == "u-" + u["user_id"]


def test_aws_cli_cp_ls_rm(s3, tmp_path):
    server, u, creds, aws = s3
    b = creds["bucket_name"]
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from the aws cli\n")
    aws.run("s3", "cp", str(src), f"s3://{b}/dir/hello.txt")
    aws.run("s3", "cp", str(src), f"s3://{b}/dir/with space+plus.txt")
    # the file API sees what S3 wrote, and S3 sees what the file API wrote
    assert server.get("/storage/download/dir/hello.txt", u["key"]).content == src.read_bytes()
    assert upload(server, u["key"], b"via api", key="api.txt").status_code == 200
    out = aws.run("s3", "ls", f"s3://{b}/").stdout
    assert "PRE dir/" in out and "api.txt" in out
    out = aws.run("s3", "ls", "--recursive", f"s3://{b}/").stdout
    assert "dir/hello.txt" in out and "dir/with space+plus.txt" in out
    dst = tmp_path / "back.txt"
    aws.run("s3", "cp", f"s3://{b}/dir/with space+plus.txt", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    aws.run("s3", "cp", f"s3://{b}/api.txt", str(dst))
    assert dst.read_bytes() == b"via api"
    aws.run("s3", "cp", f"s3://{b}/api.txt", f"s3://{b}/copied.txt")
    assert server.get("/storage/download/copied.txt", u["key"]).content == b"via api"
    r = aws.run("s3api", "get-object", "--bucket", b, "--key", "dir/hello.txt", "--range",
                "bytes=0-4", str(dst))
    assert dst.read_bytes() == b"hello"
    aws.run("s3", "rm", f"s3://{b}/dir/hello.txt")
    assert_detail(server.get("/storage/download/dir/hello.txt", u["key"]), 404)
    aws.run("s3", "rm", "--recursive", f"s3://{b}/dir/")
    out = aws.run("s3", "ls", "--recursive", f"s3://{b}/").stdout
    assert "dir/" not in out and "api.txt" in out
    r = aws.run("s3", "cp", f"s3://{b}/missing.txt", str(dst), check=False)
    assert r.returncode != 0 and "404" in r.stderr


def test_aws_cli_multipart_100_mib(s3, tmp_path):
    server, u, creds, aws = s3
    b = creds["bucket_name"]
    src = tmp_path / "hundred.bin"
    src.write_bytes(os.urandom(100 << 20))
    t0 = time.time()
    aws.run("s3", "cp", str(src), f"s3://{b}/big/hundred.bin")
    up = time.time() - t0
    log = server.read_log()
    assert "POST /" + b + "/big/hundred.bin" in log, "the upload was not multipart"
    dst = tmp_path / "back.bin"
    t0 = time.time()
    aws.run("s3", "cp", f"s3://{b}/big/hundred.bin", str(dst))
    print(f"\n100 MiB multipart: up {up:.2f}s, down {time.time() - t0:.2f}s")
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    files = {f["key"]: f["size"] for f in server.get("/storage/list-files", u["key"]).json()}
    assert files["big/hundred.bin"] == 100 << 20
    # no parts or temporary files are left behind
    bucket = os.path.join(server.data, "buckets", u["user_id"])
    assert os.listdir(os.path.join(bucket, "tmp")) == []
    assert os.listdir(os.path.join(bucket, "uploads")) == []


def multipart_etag(parts):
    """S3's ETag of a multipart object, computed here: MD5 of the parts' MD5s, then -n."""
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'


def test_multipart_parts_in_any_order_size_and_source(s3, tmp_path):
    """Parts arriving out of order, shorter and longer than the first, uploaded twice,
    copied from a range of another object, or left out: the object is exactly the listed
    parts, in order, with S3's ETag, and nothing of the upload is left behind."""
    server, u, creds, aws = s3
    b = creds["bucket_name"]

    def create(key):
        r = aws.run("s3api", "create-multipart-upload", "--bucket", b, "--key", key)
        return json.loads(r.stdout)["UploadId"]

    def part(key, uid, n, data):
        f = tmp_path / f"part-{n}"
        f.write_bytes(data)
        r = aws.run("s3api", "upload-part", "--bucket", b, "--key", key, "--upload-id", uid,
                    "--part-number", str(n), "--body", str(f))
        etag = json.loads(r.stdout)["ETag"]
        assert etag == f'"{hashlib.md5(data).hexdigest()}"'
        return etag

    def complete(key, uid, etags):
        doc = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in sorted(etags.items())]}
        r = aws.run("s3api", "complete-multipart-upload", "--bucket", b, "--key", key,
                    "--upload-id", uid, "--multipart-upload", json.dumps(doc))
        return json.loads(r.stdout)["ETag"]

    def fetch(key):
        dst = tmp_path / "fetched"
        r = aws.run("s3api", "get-object", "--bucket", b, "--key", key, str(dst))
        return dst.read_bytes(), json.loads(r.stdout)["ETag"]

    one, two, three = os.urandom(300_000), os.urandom(300_000), os.urandom(123_457)
    # The usual case, out of order: the last part first, then 2, then 1.
    uid = create("mp/ordered.bin")
    etags = {3: part("mp/ordered.bin", uid, 3, three), 2: part("mp/ordered.bin", uid, 2, two),
             1: part("mp/ordered.bin", uid, 1, one)}
    assert complete("mp/ordered.bin", uid, etags) == multipart_etag([one, two, three])
    assert fetch("mp/ordered.bin") == (one + two + three, multipart_etag([one, two, three]))

    # Everything else: part 2 longer than part 1, part 1 uploaded again, part 3 copied from
    # a range of the object above, part 4 uploaded and left out.
    key = "mp/mixed.bin"
    uid = create(key)
    etags = {1: part(key, uid, 1, one), 2: part(key, uid, 2, two + three)}
    again = os.urandom(300_000)
    etags[1] = part(key, uid, 1, again)
    r = aws.run("s3api", "upload-part-copy", "--bucket", b, "--key", key, "--upload-id", uid,
                "--part-number", "3", "--copy-source", f"{b}/mp/ordered.bin",
                "--copy-source-range", "bytes=299990-300009")
    copied = (one + two)[299_990:300_010]
    etags[3] = json.loads(r.stdout)["CopyPartResult"]["ETag"]
    assert etags[3] == f'"{hashlib.md5(copied).hexdigest()}"'
    part(key, uid, 4, b"left out")
    want = [again, two + three, copied]
    assert complete(key, uid, etags) == multipart_etag(want)
    assert fetch(key) == (b"".join(want), multipart_etag(want))

    files = {f["key"]: f["size"] for f in server.get("/storage/list-files", u["key"]).json()}
    assert files["mp/ordered.bin"] == 723_457 and files[key] == len(b"".join(want))
    bucket = os.path.join(server.data, "buckets", u["user_id"])
    assert os.listdir(os.path.join(bucket, "uploads")) == []
    assert os.listdir(os.path.join(bucket, "tmp")) == []


def test_presigned_url(s3):
    server, u, creds, aws = s3
    b = creds["bucket_name"]
    assert upload(server, u["key"], b"presigned!", key="p.txt").status_code == 200
    url = aws.run("s3", "presign", f"s3://{b}/p.txt", "--expires-in", "60").stdout.strip()
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"presigned!"
    r = requests.get(url.replace("p.txt", "q.txt"), timeout=10)
    assert r.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.content
    # the access log never holds the signature or the token
    assert "X-Amz-Signature" not in server.read_log() and creds["session_token"] not in \
        server.read_log()


def test_another_users_bucket_is_access_denied(s3, tmp_path):
    server, u, creds, aws = s3
    other = server.new_user()
    ob = credentials(server, other["key"])["bucket_name"]
    assert upload(server, other["key"], b"theirs", key="t.txt").status_code == 200
    r = aws.run("s3", "ls", f"s3://{ob}/", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    src = tmp_path / "x"
    src.write_bytes(b"mine")
    r = aws.run("s3", "cp", str(src), f"s3://{ob}/t.txt", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    r = aws.run("s3api", "get-object", "--bucket", ob, "--key", "t.txt", str(src), check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    assert server.get("/storage/download/t.txt", other["key"]).content == b"theirs"


def test_wrong_secret_is_signature_does_not_match(s3):
    server, u, creds, _ = s3
    bad = Aws(creds, secret="x" * 40)
    try:
        r = bad.run("s3", "ls", f"s3://{creds['bucket_name']}/", check=False)
        assert r.returncode != 0 and "SignatureDoesNotMatch" in r.stderr, r.stderr
    finally:
        bad.close()
    # a token that is not the one issued with the key
    forged = dict(creds, session_token="nope")
    bad = Aws(forged)
    try:
        r = bad.run("s3", "ls", f"s3://{creds['bucket_name']}/", check=False)
        assert r.returncode != 0 and "InvalidToken" in r.stderr, r.stderr
    finally:
        bad.close()


def test_expired_credentials_are_access_denied(server, user):
    creds = credentials(server, user["key"], duration_seconds=1)
    aws = Aws(creds)
    try:
        time.sleep(1.5)
        r = aws.run("s3", "ls", f"s3://{creds['bucket_name']}/", check=False)
        assert r.returncode != 0 and "AccessDenied" in r.stderr and "expired" in r.stderr, \
            r.stderr
    finally:
        aws.close()
    assert_422(server.post("/storage/credentials", user["key"], json={"duration_seconds": 0}),
               ("body", "duration_seconds"))


def test_s3_errors_are_xml(server, user):
    creds = credentials(server, user["key"])
    status, body = raw_request(server, "GET", f"/{creds['bucket_name']}/x", headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=garbage"})
    assert status == 400 and b"<Code>AuthorizationHeaderMalformed</Code>" in body
    status, body = raw_request(server, "GET", f"/{creds['bucket_name']}/x?X-Amz-Algorithm=AWS4-HMAC-SHA256")
    assert status == 400 and b"<Error>" in body


def chunked_put(server, creds, key, data, chunk=65536, tamper=False):
    """A PutObject with an aws-chunked body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), signed as in
    AWS's "Transferring Payload in Multiple Chunks"; tamper flips a byte of the second chunk
    after signing."""
    import datetime
    import hmac
    import urllib.parse

    def h(k, m):
        return hmac.new(k, m.encode(), hashlib.sha256).digest()

    amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz[:8]}/us-east-1/s3/aws4_request"
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    total = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    path = f"/{creds['bucket_name']}/{urllib.parse.quote(key)}"
    hdrs = {"host": f"127.0.0.1:{server.port}", "content-encoding": "aws-chunked",
            "content-length": str(total), "x-amz-content-sha256":
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "x-amz-date": amz,
            "x-amz-decoded-content-length": str(len(data)),
            "x-amz-security-token": creds["session_token"]}
    names = sorted(hdrs)
    creq = "\n".join(["PUT", path, "", "".join(f"{n}:{hdrs[n]}\n" for n in names),
                      ";".join(names), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
    key_ = h(h(h(h(("AWS4" + creds["secret_key"]).encode(), amz[:8]), "us-east-1"), "s3"),
             "aws4_request")
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
    prev = seed = hmac.new(key_, sts.encode(), hashlib.sha256).hexdigest()
    body = b""
    empty = hashlib.sha256(b"").hexdigest()
    for i, c in enumerate(chunks):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz, scope, prev, empty,
                         hashlib.sha256(c).hexdigest()])
        prev = hmac.new(key_, sts.encode(), hashlib.sha256).hexdigest()
        if tamper and i == 1:
            c = b"X" + c[1:]
        body += f"{len(c):x};chunk-signature={prev}\r\n".encode() + c + b"\r\n"
    hdrs["authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds['access_key']}/{scope}, "
                             f"SignedHeaders={';'.join(names)}, Signature={seed}")
    del hdrs["host"], hdrs["content-length"]
    return raw_request(server, "PUT", path, body, hdrs)


def test_aws_chunked_upload(server, user):
    creds = credentials(server, user["key"])
    data = os.urandom(200_000)
    status, body = chunked_put(server, creds, "chunked/ok.bin", data)
    assert status == 200, body
    assert server.get("/storage/download/chunked/ok.bin", user["key"]).content == data
    status, body = chunked_put(server, creds, "chunked/bad.bin", data, tamper=True)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body, body
    assert_detail(server.get("/storage/download/chunked/bad.bin", user["key"]), 404)


def test_a_refused_upload_is_answered_before_its_body(small_quota, tmp_path):
    """curl waits for 100 Continue on a large body: a 413 comes back at once, unread body."""
    s = small_quota
    u = s.new_user()
    src = tmp_path / "two-mib.bin"
    src.write_bytes(b"z" * (2 << 20))
    out = subprocess.run(["curl", "-sS", "-H", "Authorization: Bearer " + u["key"],
                          "-F", f"file=@{src}", "-w", "\n%{http_code} %{size_upload}",
                          s.url("/storage/upload") + "?key=big"],
                         capture_output=True, text=True, timeout=60)
    body, _, tail = out.stdout.rpartition("\n")
    code, uploaded = tail.split()
    assert code == "413" and "quota" in body, out.stdout
    assert int(uploaded) < 1 << 20, f"curl sent {uploaded} bytes before the 413"


def start_cut_upload(server, key, sent=1_000_000):
    import socket
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /api/v2/external/storage/upload?key=cut.bin HTTP/1.1\r\n"
                 b"Host: 127.0.0.1\r\nAuthorization: Bearer " + key.encode() + b"\r\n"
                 b"Content-Type: application/octet-stream\r\nContent-Length: 10000000\r\n\r\n" +
                 b"x" * sent)
    return sock


def wait_for(cond, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_cut_uploads_leave_nothing_behind(fresh_server):
    """A client that goes away mid-upload, and a server killed mid-upload: no object appears,
    and the partial file is removed (at once, or at the next start)."""
    s = fresh_server
    u = s.new_user()
    tmp = os.path.join(s.data, "buckets", u["user_id"], "tmp")
    sock = start_cut_upload(s, u["key"])
    assert wait_for(lambda: os.path.isdir(tmp) and any(
        os.path.getsize(os.path.join(tmp, f)) > 0 for f in os.listdir(tmp)))
    sock.close()
    assert wait_for(lambda: os.listdir(tmp) == []), os.listdir(tmp)
    sock = start_cut_upload(s, u["key"])
    assert wait_for(lambda: os.listdir(tmp) != [])
    s.proc.kill()
    s.proc.wait()
    sock.close()
    s.log.close()
    s.start()
    assert os.listdir(tmp) == []
    assert_detail(s.get("/storage/download/cut.bin", u["key"]), 404)


BIG_NUMBERS = ["9223372036854775808", "18446744073709551617", "-1",
               "99999999999999999999999999"]


def test_ranges_and_lengths_that_overflow_are_refused(server, user):
    """Ranges and lengths are checked before any arithmetic (2^63, 2^64 + 1, negative,
    inverted): InvalidRange (416) for ranges, InvalidArgument for lengths and part numbers,
    no sanitizer report, and an inverted copy range never copies the whole object."""
    k = user["key"]
    upload(server, k, b"0123456789", key="ten.txt")
    creds = credentials(server, k)
    for rng in ["bytes=5-3", "bytes=9223372036854775808-", "bytes=18446744073709551617-",
                "bytes=0-18446744073709551617", "bytes=-18446744073709551617", "bytes=1--5",
                "bytes=-0", "bytes=10-"]:
        status, body = signed_request(server, creds, "GET", "ten.txt", headers={"Range": rng})
        assert status == 416 and b"<Code>InvalidRange</Code>" in body, (rng, status, body)
        r = server.get("/storage/download/ten.txt", k, headers={"Range": rng})
        assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10", rng
    status, body = signed_request(server, creds, "GET", "ten.txt", headers={"Range": "bytes=2-4"})
    assert status == 206 and body == b"234"
    status, body = signed_request(server, creds, "GET", "ten.txt",
                                  headers={"Range": "bytes=7-18446744073709551615"})
    assert status == 206 and body == b"789"

    # UploadPartCopy: the range is the source's bytes first..last, within it
    status, body = signed_request(server, creds, "POST", "joined.txt", query={"uploads": ""})
    assert status == 200, body
    upload_id = body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    src = {"x-amz-copy-source": f"/{creds['bucket_name']}/ten.txt"}
    for rng in ["bytes=5-3", "bytes=0-9223372036854775807", "bytes=0-18446744073709551617",
                "bytes=9223372036854775807-9223372036854775807", "bytes=-5", "bytes=5-",
                "bytes=0-10", "bytes=10-10", "bytes=-1-3"]:
        status, body = signed_request(server, creds, "PUT", "joined.txt",
                                      query={"partNumber": "1", "uploadId": upload_id},
                                      headers=dict(src, **{"x-amz-copy-source-range": rng}))
        assert status == 416 and b"<Code>InvalidRange</Code>" in body, (rng, status, body)
    for pn in BIG_NUMBERS + ["0", "10001", "1.5", ""]:
        status, body = signed_request(server, creds, "PUT", "joined.txt",
                                      query={"partNumber": pn, "uploadId": upload_id},
                                      headers=dict(src, **{"x-amz-copy-source-range": "bytes=0-1"}))
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (pn, status, body)
        status, body = signed_request(server, creds, "PUT", "joined.txt", body=b"x",
                                      query={"partNumber": pn, "uploadId": upload_id})
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (pn, status, body)
    # a declared part length of 2^63 - 1 is more than the quota: refused, and nothing wraps
    status, body = signed_request(server, creds, "PUT", "joined.txt", body=b"0\r\n\r\n",
                                  query={"partNumber": "2", "uploadId": upload_id},
                                  payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                  headers={"x-amz-decoded-content-length": "9223372036854775807",
                                           "content-encoding": "aws-chunked"})
    assert status == 400 and b"<Code>EntityTooLarge</Code>" in body, (status, body)
    status, body = signed_request(server, creds, "PUT", "joined.txt",
                                  query={"partNumber": "1", "uploadId": upload_id},
                                  headers=dict(src, **{"x-amz-copy-source-range": "bytes=2-4"}))
    assert status == 200, body
    for pn in BIG_NUMBERS:
        xml = (f"<CompleteMultipartUpload><Part><PartNumber>{pn}</PartNumber></Part>"
               "</CompleteMultipartUpload>").encode()
        status, body = signed_request(server, creds, "POST", "joined.txt", body=xml,
                                      query={"uploadId": upload_id})
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (pn, status, body)
    xml = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"
    status, body = signed_request(server, creds, "POST", "joined.txt", body=xml,
                                  query={"uploadId": upload_id})
    assert status == 200, body
    assert server.get("/storage/download/joined.txt", k).content == b"234"

    # aws-chunked bodies: the decoded length is a length, and the body must match it
    chunked = {"content-encoding": "aws-chunked"}
    for dl in BIG_NUMBERS + ["", "1e3", "0x10"]:
        status, body = signed_request(server, creds, "PUT", "c.txt", body=b"5\r\nhello\r\n0\r\n\r\n",
                                      payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                      headers=dict(chunked, **{"x-amz-decoded-content-length": dl}))
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (dl, status, body)
    for dl, chunks in [("3", b"5\r\nhello\r\n0\r\n\r\n"), ("9", b"5\r\nhello\r\n0\r\n\r\n"),
                       ("5", b"8000000000000000\r\nhello\r\n0\r\n\r\n"),
                       ("5", b"-5\r\nhello\r\n0\r\n\r\n")]:
        status, body = signed_request(server, creds, "PUT", "c.txt", body=chunks,
                                      payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                      headers=dict(chunked, **{"x-amz-decoded-content-length": dl}))
        assert status == 400 and b"<Code>IncompleteBody</Code>" in body, (dl, chunks, body)
    assert_detail(server.get("/storage/download/c.txt", k), 404)
    status, body = signed_request(server, creds, "PUT", "c.txt", body=b"5\r\nhello\r\n0\r\n\r\n",
                                  payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                  headers=dict(chunked, **{"x-amz-decoded-content-length": "5"}))
    assert status == 200, body
    assert server.get("/storage/download/c.txt", k).content == b"hello"
    for mk in BIG_NUMBERS[1:] + ["x"]:
        status, body = signed_request(server, creds, "GET", query={"list-type": "2",
                                                                   "max-keys": mk})
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body, (mk, status, body)
    assert server.alive()


# ---- S3's refusals, signed by hand ------------------------------------------------------

def s3_error(status_body, status, code):
    """The S3 error's XML: the status and <Code> wanted; returns the body as text."""
    got, body = status_body
    assert got == status and f"<Code>{code}</Code>".encode() in body, (got, body[:400])
    return body.decode()


def s3_get(server, creds, key):
    """The object's bytes through S3, or None when there is none."""
    status, body = signed_request(server, creds, "GET", key)
    assert status in (200, 404), (status, body)
    return body if status == 200 else None


def test_a_request_dated_20_minutes_off_is_request_time_too_skewed(s3):
    server, u, creds, _ = s3
    assert signed_request(server, creds, "PUT", "skew/k.txt", body=b"mine")[0] == 200
    for skew in (-1200, 1200):
        s3_error(signed_request(server, creds, "GET", "skew/k.txt", skew=skew), 403,
                 "RequestTimeTooSkewed")
        s3_error(signed_request(server, creds, "PUT", "skew/k.txt", body=b"late", skew=skew),
                 403, "RequestTimeTooSkewed")
        s3_error(signed_request(server, creds, "PUT", "skew/new.txt", body=b"late", skew=skew),
                 403, "RequestTimeTooSkewed")
    # Within the 15 minutes S3 allows, a clock off by 10 is fine.
    assert signed_request(server, creds, "GET", "skew/k.txt", skew=-600) == (200, b"mine")
    assert signed_request(server, creds, "GET", "skew/k.txt", skew=600) == (200, b"mine")
    assert s3_get(server, creds, "skew/k.txt") == b"mine"
    assert s3_get(server, creds, "skew/new.txt") is None


def test_a_presigned_url_is_refused_outside_its_time(s3):
    server, u, creds, aws = s3
    assert signed_request(server, creds, "PUT", "pre/k.txt", body=b"presigned")[0] == 200
    # Made two minutes ago: for 60 seconds it has expired, for 600 it still works.
    r = requests.get(presign(server, creds, "GET", "pre/k.txt", 60, skew=-120), timeout=10)
    assert "expired" in s3_error((r.status_code, r.content), 403, "AccessDenied")
    r = requests.get(presign(server, creds, "GET", "pre/k.txt", 600, skew=-120), timeout=10)
    assert r.status_code == 200 and r.content == b"presigned"
    # Dated an hour ahead it is not valid yet (else it would outlive its X-Amz-Expires).
    r = requests.get(presign(server, creds, "GET", "pre/k.txt", 60, skew=3600), timeout=10)
    assert "not valid yet" in s3_error((r.status_code, r.content), 403, "AccessDenied")
    # At most a week, as S3.
    r = requests.get(presign(server, creds, "GET", "pre/k.txt", 604801), timeout=10)
    s3_error((r.status_code, r.content), 400, "AuthorizationQueryParametersError")
    # The AWS CLI's own presigned URL, for one second, is refused once the second is over.
    url = aws.run("s3", "presign", f"s3://{creds['bucket_name']}/pre/k.txt",
                  "--expires-in", "1").stdout.strip()
    time.sleep(2.5)
    r = requests.get(url, timeout=10)
    s3_error((r.status_code, r.content), 403, "AccessDenied")


def test_a_presigned_put_works_within_its_time_and_not_after(s3):
    server, u, creds, _ = s3
    r = requests.put(presign(server, creds, "PUT", "pre/put.txt", 600), data=b"put in time",
                     timeout=10)
    assert r.status_code == 200, r.content
    assert s3_get(server, creds, "pre/put.txt") == b"put in time"
    assert server.get("/storage/download/pre/put.txt", u["key"]).content == b"put in time"
    r = requests.put(presign(server, creds, "PUT", "pre/put.txt", 60, skew=-120),
                     data=b"too late", timeout=10)
    s3_error((r.status_code, r.content), 403, "AccessDenied")
    r = requests.put(presign(server, creds, "PUT", "pre/late.txt", 60, skew=-120),
                     data=b"too late", timeout=10)
    s3_error((r.status_code, r.content), 403, "AccessDenied")
    # The signature binds the key: the URL for one key does not write another.
    url = presign(server, creds, "PUT", "pre/one.txt", 600)
    r = requests.put(url.replace("pre/one.txt", "pre/other.txt"), data=b"x", timeout=10)
    s3_error((r.status_code, r.content), 403, "SignatureDoesNotMatch")
    assert s3_get(server, creds, "pre/put.txt") == b"put in time"
    assert s3_get(server, creds, "pre/late.txt") is None
    assert s3_get(server, creds, "pre/other.txt") is None


def test_a_body_that_is_not_the_signed_payload_is_refused(s3):
    """x-amz-content-sha256 is signed; a body that does not hash to it (a small one, and a
    large one changed in its last byte, after the server has written most of it) is refused
    and stores nothing: an existing object keeps its bytes."""
    server, u, creds, _ = s3
    assert signed_request(server, creds, "PUT", "sha/k.bin", body=b"good")[0] == 200
    good = hashlib.sha256(b"good").hexdigest()
    s3_error(signed_request(server, creds, "PUT", "sha/k.bin", body=b"evil", payload=good),
             400, "XAmzContentSHA256Mismatch")
    big = os.urandom(3 << 20)
    bad = big[:-1] + bytes([big[-1] ^ 1])
    s3_error(signed_request(server, creds, "PUT", "sha/k.bin", body=bad,
                            payload=hashlib.sha256(big).hexdigest()),
             400, "XAmzContentSHA256Mismatch")
    s3_error(signed_request(server, creds, "PUT", "sha/new.bin", body=bad,
                            payload=hashlib.sha256(big).hexdigest()),
             400, "XAmzContentSHA256Mismatch")
    assert s3_get(server, creds, "sha/k.bin") == b"good"
    assert s3_get(server, creds, "sha/new.bin") is None
    assert signed_request(server, creds, "PUT", "sha/new.bin", body=big)[0] == 200
    assert s3_get(server, creds, "sha/new.bin") == big


def test_an_unknown_access_key_is_invalid_access_key_id(s3):
    server, u, creds, _ = s3
    for method, key, body in (("GET", "k.txt", b""), ("PUT", "ak/new.txt", b"x"),
                              ("GET", None, b"")):
        s3_error(signed_request(server, creds, method, key, body=body,
                                access_key="AKIA" + "Z" * 16), 403, "InvalidAccessKeyId")
    assert s3_get(server, creds, "ak/new.txt") is None


def test_a_credential_scope_of_another_date_region_or_service_is_refused(s3):
    """The scope is signed with the rest, so a client could sign any: each part must be the
    request's date, this endpoint's region (us-east-1, named in the error as S3 does) and s3."""
    server, u, creds, _ = s3
    assert signed_request(server, creds, "PUT", "scope/k.txt", body=b"mine")[0] == 200
    for scope, says in (("20200101/us-east-1/s3/aws4_request", "date"),
                        ("{date}/eu-west-1/s3/aws4_request", "region 'eu-west-1' is wrong"),
                        ("{date}/us-east-1/ec2/aws4_request", "service 'ec2'")):
        body = s3_error(signed_request(server, creds, "GET", "scope/k.txt", scope=scope), 400,
                        "AuthorizationHeaderMalformed")
        assert says in body.replace("&apos;", "'"), body
        s3_error(signed_request(server, creds, "PUT", "scope/k.txt", body=b"evil", scope=scope),
                 400, "AuthorizationHeaderMalformed")
        r = requests.get(presign(server, creds, "GET", "scope/k.txt", 600, scope=scope),
                         timeout=10)
        s3_error((r.status_code, r.content), 400, "AuthorizationQueryParametersError")
    body = s3_error(signed_request(server, creds, "GET", "scope/k.txt",
                                   scope="{date}/eu-west-1/s3/aws4_request"),
                    400, "AuthorizationHeaderMalformed")
    assert "<Region>us-east-1</Region>" in body
    assert s3_get(server, creds, "scope/k.txt") == b"mine"


def crc(data, poly, width):
    """A reflected CRC (init and xorout all ones), bit by bit: CRC-32C and CRC-64/NVME."""
    mask = (1 << width) - 1
    c = mask
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
    return c ^ mask


def checksum(alg, data):
    """S3's x-amz-checksum-<alg> value of data (base64)."""
    raw = {"crc32": lambda: zlib.crc32(data).to_bytes(4, "big"),
           "crc32c": lambda: crc(data, 0x82F63B78, 32).to_bytes(4, "big"),
           "crc64nvme": lambda: crc(data, 0x9A6C9329AC4BC9B5, 64).to_bytes(8, "big"),
           "sha1": lambda: hashlib.sha1(data).digest(),
           "sha256": lambda: hashlib.sha256(data).digest()}[alg]()
    return base64.b64encode(raw).decode()


def trailer_put(server, creds, key, data, alg="crc32", value=None, trailer=True, chunk=65536):
    """PutObject as newer AWS SDKs send it: STREAMING-UNSIGNED-PAYLOAD-TRAILER, aws-chunked
    (unsigned chunks of chunk bytes), x-amz-trailer naming the checksum that follows the last
    chunk (value: its value, the right one by default; trailer False leaves it out)."""
    name = f"x-amz-checksum-{alg}"
    value = value if value is not None else checksum(alg, data)
    body = b"".join(b"%x\r\n" % len(data[i:i + chunk]) + data[i:i + chunk] + b"\r\n"
                    for i in range(0, len(data), chunk))
    body += b"0\r\n" + (f"{name}:{value}\r\n".encode() if trailer else b"") + b"\r\n"
    return signed_request(server, creds, "PUT", key, body=body,
                          payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                          headers={"content-encoding": "aws-chunked",
                                   "x-amz-decoded-content-length": str(len(data)),
                                   "x-amz-trailer": name,
                                   "x-amz-sdk-checksum-algorithm": alg.upper(),
                                   "content-length": str(len(body))})


def test_streaming_unsigned_payload_trailer_is_stored_and_its_checksum_checked(s3):
    """aws-chunked with a trailing checksum, as newer AWS SDKs send every upload: stored as
    sent when the checksum matches, with every algorithm S3 offers; refused with BadDigest
    (nothing stored, an existing object intact) when it does not; a declared trailer that
    never comes, or one S3 does not know, is refused too."""
    server, u, creds, _ = s3
    data = os.urandom(150_000)
    for alg in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"):
        status, body = trailer_put(server, creds, f"trailer/{alg}.bin", data, alg)
        assert status == 200, (alg, body)
        assert s3_get(server, creds, f"trailer/{alg}.bin") == data, alg
    r = server.get("/storage/download/trailer/crc32.bin", u["key"])
    assert r.status_code == 200 and r.content == data
    other = os.urandom(150_000)
    for alg in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"):
        body = s3_error(trailer_put(server, creds, f"trailer/{alg}.bin", other, alg,
                                    value=checksum(alg, data)), 400, "BadDigest")
        assert alg.upper() in body, body
        assert s3_get(server, creds, f"trailer/{alg}.bin") == data, alg
    s3_error(trailer_put(server, creds, "trailer/new.bin", other, value=checksum("crc32", data)),
             400, "BadDigest")
    s3_error(trailer_put(server, creds, "trailer/new.bin", data, trailer=False), 400,
             "MalformedTrailerError")
    s3_error(trailer_put(server, creds, "trailer/new.bin", data, alg="md5", value="x" * 24),
             400, "InvalidRequest")
    assert s3_get(server, creds, "trailer/new.bin") is None


def test_a_checksum_header_is_checked(s3):
    """x-amz-checksum-<alg> as a header (what newer SDKs send over plain HTTP): checked against
    the bytes; a malformed value, or two checksums, are refused."""
    server, u, creds, _ = s3
    data = os.urandom(100_000)
    status, _ = signed_request(server, creds, "PUT", "sumhdr/k.bin", body=data,
                               headers={"x-amz-checksum-crc32c": checksum("crc32c", data)})
    assert status == 200
    s3_error(signed_request(server, creds, "PUT", "sumhdr/k.bin", body=b"other",
                            headers={"x-amz-checksum-crc32c": checksum("crc32c", data)}),
             400, "BadDigest")
    s3_error(signed_request(server, creds, "PUT", "sumhdr/k.bin", body=b"other",
                            headers={"x-amz-checksum-sha256": "short"}), 400, "InvalidRequest")
    s3_error(signed_request(server, creds, "PUT", "sumhdr/k.bin", body=b"other",
                            headers={"x-amz-checksum-crc32": checksum("crc32", b"other"),
                                     "x-amz-checksum-sha1": checksum("sha1", b"other")}),
             400, "InvalidRequest")
    assert s3_get(server, creds, "sumhdr/k.bin") == data
