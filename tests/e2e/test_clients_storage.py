"""Storage as the real clients use it (issue 14): the `lyceum` CLI's `storage list`, which
iterates the answer of /storage/list-files as a list; the dashboard's folder upload, which
sends folder_prefix to /storage/upload-bulk; and the dashboard's chunked upload of files over
10 MB to /storage/upload-chunk, sent as a browser's FormData would send it (the chunk as a file
part named "file" whose file name is "blob", then upload_id, chunk_index, total_chunks,
filename, folder_prefix and total_size). Chunks come out of order, are sent again and in
parallel; an incomplete upload is never listed; another user or an org key with the same
upload id reaches an upload of its own, never this one; the quota binds mid-upload (413, and
nothing kept); bad fields are 4xx with a detail; abandoned uploads are removed; delete-folder
of a folder with no file is a 404. /openapi.json documents all of it."""

import concurrent.futures
import hashlib
import os
import shutil
import time

import pytest
import requests

from conftest import Server, assert_422, assert_detail
from runs_util import write_config

MB = 1_000_000


def uploads_dir(server, owner):
    return os.path.join(server.data, "buckets", owner, "uploads")


def uploads_of(server, owner):
    d = uploads_dir(server, owner)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def keys(server, token, **params):
    """What `lyceum storage list` does with the answer: iterate it."""
    r = server.get("/storage/list-files", token, params=params)
    assert r.status_code == 200, r.text
    return [f["key"] for f in r.json()]


def send_chunk(server, token, chunk, index, total, upload_id="u1", filename="big.bin",
               folder_prefix="", total_size=None, **extra):
    """One chunk, as the dashboard's FormData sends it: the Blob first (file name "blob"),
    then the fields."""
    fields = {"upload_id": upload_id, "chunk_index": None if index is None else str(index),
              "total_chunks": None if total is None else str(total),
              "filename": filename, "folder_prefix": folder_prefix}
    if total_size is not None:
        fields["total_size"] = str(total_size)
    fields.update(extra)
    fields = {k: v for k, v in fields.items() if v is not None}
    files = [("file", ("blob", chunk, "application/octet-stream"))] + \
        [(k, (None, v)) for k, v in fields.items()]
    return server.post("/storage/upload-chunk", token, files=files)


def cut(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


# ---- the CLI's list ---------------------------------------------------------------------

def test_list_files_is_an_array_the_cli_iterates(server, user):
    k = user["key"]
    for name, body in [("b.txt", b"bb"), ("a.txt", b"a"), ("data/x.bin", b"x" * 10),
                       ("data/y.bin", b"y"), ("data/z.bin", b"zz")]:
        r = server.post("/storage/upload", k, files={"file": (name, body)}, params={"key": name})
        assert r.status_code == 200, r.text
    r = server.get("/storage/list-files", k)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    files = r.json()
    assert isinstance(files, list), files
    # the CLI's loop: for f in r.json(): f["key"], f["size"], f["last_modified"]
    table = [(f["key"], f["size"], f["last_modified"][:4]) for f in files]
    assert [t[:2] for t in table] == [("a.txt", 1), ("b.txt", 2), ("data/x.bin", 10),
                                      ("data/y.bin", 1), ("data/z.bin", 2)]
    assert all(t[2].isdigit() for t in table)
    assert set(files[0]) == {"key", "size", "last_modified"}
    assert r.headers["X-Truncated"] == "false" and r.headers["X-Total-Count"] == "5"
    # prefix and max_files: the array is cut, the headers say so and how many matched
    r = server.get("/storage/list-files", k, params={"prefix": "data/", "max_files": 2})
    assert [f["key"] for f in r.json()] == ["data/x.bin", "data/y.bin"]
    assert r.headers["X-Truncated"] == "true" and r.headers["X-Total-Count"] == "3"
    r = server.get("/storage/list-files", k, params={"prefix": "data/", "max_files": 3})
    assert len(r.json()) == 3 and r.headers["X-Truncated"] == "false"
    assert keys(server, k, prefix="nothing/") == []
    assert_422(server.get("/storage/list-files", k, params={"max_files": 0}),
               ("query", "max_files"))


# ---- the dashboard's folder upload ------------------------------------------------------

def test_folder_upload_with_folder_prefix_lands_under_the_folder(server, user):
    k = user["key"]
    r = server.post("/storage/upload-bulk", k,
                    files=[("files", ("a.jpg", b"AAA")), ("files", ("b.jpg", b"BB")),
                           ("folder_prefix", (None, "photos/2024/"))])
    assert r.status_code == 200, r.text
    assert [f["key"] for f in r.json()["files"]] == ["photos/2024/a.jpg", "photos/2024/b.jpg"]
    # as a query parameter too, and a file name that carries the folder's own path
    r = server.post("/storage/upload-bulk", k, params={"folder_prefix": "docs"},
                    files=[("files", ("album/c.txt", b"C"))])
    assert r.status_code == 200 and r.json()["files"][0]["key"] == "docs/album/c.txt", r.text
    assert keys(server, k) == ["docs/album/c.txt", "photos/2024/a.jpg", "photos/2024/b.jpg"]
    assert server.get("/storage/download/photos/2024/a.jpg", k).content == b"AAA"
    # a folder_prefix that climbs is refused like any bad key
    assert_422(server.post("/storage/upload-bulk", k, params={"folder_prefix": "../up"},
                           files=[("files", ("x", b"x"))]), ("query", "folder_prefix"))


# ---- the dashboard's chunked upload -----------------------------------------------------

def test_chunked_upload_out_of_order_with_a_retry_comes_back_identical(server, user):
    k = user["key"]
    data = os.urandom(12 * MB + 12345)  # over the dashboard's 10 MB
    chunks = cut(data, 2_600_000)
    n = len(chunks)
    assert n == 5
    # chunk 0 first arrives damaged, then again whole: the one sent last wins
    order = [(3, chunks[3]), (0, b"damaged" * 1000), (4, chunks[4]), (1, chunks[1]),
             (0, chunks[0]), (2, chunks[2])]
    received = [1, 2, 3, 4, 4, 5]
    for (i, body), want in zip(order, received):
        assert "models/big.bin" not in keys(server, k)  # never listed before it is whole
        r = send_chunk(server, k, body, i, n, upload_id="dash-1700000000000-x1",
                       folder_prefix="models/", total_size=len(data))
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["upload_id"] == "dash-1700000000000-x1" and a["key"] == "models/big.bin"
        assert a["chunk_index"] == i and a["total_chunks"] == n and a["chunk_size"] == len(body)
        assert a["received"] == want and a["complete"] == (want == n), a
    assert a["size"] == len(data) and a["message"] == "File uploaded" and "last_modified" in a
    r = server.get("/storage/download/models/big.bin", k)
    assert r.status_code == 200 and hashlib.sha256(r.content).digest() == \
        hashlib.sha256(data).digest()
    files = server.get("/storage/list-files", k).json()
    assert {f["key"]: f["size"] for f in files}["models/big.bin"] == len(data)
    assert uploads_of(server, user["user_id"]) == []  # nothing left behind


def test_chunked_upload_camel_case_fields_after_the_chunk_and_raw_chunks(server, user):
    k = user["key"]
    data = os.urandom(11 * MB)
    chunks = cut(data, 4 * MB)
    for i in [2, 0, 1]:
        # camelCase names, and the fields after the file part
        files = [("chunk", ("big.iso", chunks[i])), ("uploadId", (None, "camel")),
                 ("chunkIndex", (None, str(i))), ("totalChunks", (None, "3")),
                 ("fileName", (None, "big.iso")), ("folderPrefix", (None, "isos"))]
        r = server.post("/storage/upload-chunk", k, files=files)
        assert r.status_code == 200, r.text
    assert r.json()["complete"] and r.json()["key"] == "isos/big.iso", r.text
    assert server.get("/storage/download/isos/big.iso", k).content == data
    # raw bytes with the fields in the query: each chunk written in place
    for i in [1, 0, 2]:
        r = server.post("/storage/upload-chunk", k, data=chunks[i],
                        headers={"Content-Type": "application/octet-stream"},
                        params={"upload_id": "raw", "chunk_index": i, "total_chunks": 3,
                                "key": "raw/big.bin", "total_size": len(data)})
        assert r.status_code == 200, r.text
        assert r.json()["complete"] == (i == 2), r.text
    assert server.get("/storage/download/raw/big.bin", k).content == data
    # no upload id: the key names the upload
    for i in [1, 0]:
        r = send_chunk(server, k, b"%d" % i * 10, i, 2, upload_id=None, filename="noid.txt")
        assert r.status_code == 200, r.text
    assert r.json()["complete"] and r.json()["upload_id"] == "noid.txt"
    assert server.get("/storage/download/noid.txt", k).content == b"0" * 10 + b"1" * 10


def test_chunks_sent_in_parallel_make_one_whole_object(server, user):
    k = user["key"]
    data = os.urandom(10 * MB + 777)
    chunks = cut(data, MB)
    with concurrent.futures.ThreadPoolExecutor(len(chunks)) as pool:
        answers = list(pool.map(lambda i: send_chunk(server, k, chunks[i], i, len(chunks),
                                                     upload_id="par", filename="par.bin"),
                                range(len(chunks))))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert any(r.json()["complete"] for r in answers)
    assert server.get("/storage/download/par.bin", k).content == data
    assert keys(server, k).count("par.bin") == 1
    assert uploads_of(server, user["user_id"]) == []


def test_another_bucket_cannot_add_to_or_complete_an_upload(server):
    a = server.new_user()
    b = server.new_user()
    r = server.post(f"/orgs/{a['org_slug']}/api-keys", a["key"], json={"name": "ci"})
    assert r.status_code == 200, r.text
    org_key = r.json()["plaintext_key"]
    data = os.urandom(3 * MB)
    chunks = cut(data, MB)
    for i in (0, 1):
        assert send_chunk(server, a["key"], chunks[i], i, 3, upload_id="shared").status_code == 200
    # the same upload id from another user, and from the org's key (the org's bucket)
    for other in (b["key"], org_key):
        r = send_chunk(server, other, b"intruder" * 1000, 2, 3, upload_id="shared")
        assert r.status_code == 200, r.text
        assert r.json()["received"] == 1 and not r.json()["complete"], r.text
        assert "big.bin" not in keys(server, other)
    # a's upload has its own two chunks still: sending chunk 1 again, it says 2 of 3
    r = send_chunk(server, a["key"], chunks[1], 1, 3, upload_id="shared")
    assert r.json()["received"] == 2 and not r.json()["complete"], r.text
    assert "big.bin" not in keys(server, a["key"])  # incomplete: never listed
    r = send_chunk(server, a["key"], chunks[2], 2, 3, upload_id="shared")
    assert r.json()["complete"], r.text
    assert server.get("/storage/download/big.bin", a["key"]).content == data
    assert_detail(server.get("/storage/download/big.bin", b["key"]), 404)
    assert_detail(server.get("/storage/download/big.bin", org_key), 404)
    # b's own upload of that name is b's alone, and still incomplete
    assert len(uploads_of(server, b["user_id"])) == 1
    assert uploads_of(server, a["user_id"]) == []


@pytest.fixture(scope="module")
def quota_server():
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10"}],
                       storage_quota_bytes=5 * MB)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def test_quota_exceeded_mid_chunks_is_413_and_keeps_nothing(quota_server):
    s = quota_server
    u = s.new_user()
    k = u["key"]
    chunks = cut(os.urandom(6 * MB), 2 * MB)
    for i in (0, 1):
        r = send_chunk(s, k, chunks[i], i, 3, upload_id="q", filename="q.bin")
        assert r.status_code == 200, r.text
    body = assert_detail(send_chunk(s, k, chunks[2], 2, 3, upload_id="q", filename="q.bin"), 413,
                         "quota")
    assert str(5 * MB) in body["detail"] and "discarded" in body["detail"], body
    assert keys(s, k) == [] and uploads_of(s, u["user_id"]) == []
    # the chunks took no room: 4.5 MB fit now
    r = s.post("/storage/upload", k, files={"file": ("fits.bin", b"f" * 4_500_000)})
    assert r.status_code == 200, r.text
    assert s.delete("/storage/delete/fits.bin", k).status_code == 200
    # a total_size bigger than the room is refused at the first chunk
    assert_detail(send_chunk(s, k, chunks[0], 0, 4, upload_id="big", filename="big.bin",
                             total_size=8 * MB), 413, "quota")
    assert keys(s, k) == [] and uploads_of(s, u["user_id"]) == []
    # the same upload id begins afresh
    r = send_chunk(s, k, chunks[0], 0, 3, upload_id="q", filename="q.bin")
    assert r.status_code == 200 and r.json()["received"] == 1, r.text


def test_bad_chunk_fields_are_4xx_with_a_detail(server, user):
    k = user["key"]
    c = b"x" * 100

    def chunk(**fields):
        base = {"upload_id": "bad", "chunk_index": "0", "total_chunks": "2", "filename": "b.bin"}
        base.update(fields)
        return send_chunk(server, k, c, base.pop("chunk_index"), base.pop("total_chunks"),
                          upload_id=base.pop("upload_id"), filename=base.pop("filename"), **base)

    assert_422(chunk(chunk_index=None), ("body", "chunk_index"))
    assert_422(chunk(total_chunks=None), ("body", "total_chunks"))
    for bad in ("abc", "-1", "1.5", "", "99999999999999999999"):
        assert_422(chunk(chunk_index=bad), ("body", "chunk_index"))
    errs = assert_422(chunk(chunk_index="2"), ("body", "chunk_index"))
    assert "at most 1" in errs[0]["msg"], errs
    for bad in ("0", "10001", "x"):
        assert_422(chunk(total_chunks=bad), ("body", "total_chunks"))
    assert_422(chunk(filename="../escape.bin"), ("body", "filename"))
    assert_422(chunk(upload_id="u" * 300), ("body", "upload_id"))
    assert_422(chunk(total_size="-5"), ("body", "total_size"))
    # no chunk at all; two chunks in one request
    r = server.post("/storage/upload-chunk", k,
                    files=[("upload_id", (None, "bad")), ("chunk_index", (None, "0")),
                           ("total_chunks", (None, "2")), ("filename", (None, "b.bin"))])
    assert_422(r, ("body", "file"))
    r = server.post("/storage/upload-chunk", k,
                    files=[("file", ("blob", c)), ("file", ("blob", c)),
                           ("chunk_index", (None, "0")), ("total_chunks", (None, "2")),
                           ("filename", (None, "b.bin"))])
    assert_detail(r, 400, "one chunk")
    # neither multipart nor the fields in the query; raw bytes without a name
    assert_detail(server.post("/storage/upload-chunk", k, data=c), 400, "multipart")
    assert_422(server.post("/storage/upload-chunk", k, data=c,
                           params={"chunk_index": 0, "total_chunks": 2}), ("body", "filename"))
    # a chunk that disagrees with how its upload began
    assert chunk().status_code == 200
    errs = assert_422(chunk(chunk_index="1", total_chunks="3"), ("body", "total_chunks"))
    assert "begun with total_chunks 2" in errs[0]["msg"], errs
    assert_422(chunk(chunk_index="1", filename="other.bin"), ("body", "key"))
    # the chunks do not add up to total_size: refused when the last is in, nothing kept
    assert send_chunk(server, k, c, 0, 2, upload_id="sz", filename="sz.bin",
                      total_size=150).status_code == 200
    assert_detail(send_chunk(server, k, c, 1, 2, upload_id="sz", filename="sz.bin",
                             total_size=150), 422, "total_size")
    assert "sz.bin" not in keys(server, k)
    r = send_chunk(server, k, c, 1, 2, upload_id="sz", filename="sz.bin", total_size=150)
    assert r.status_code == 200 and r.json()["received"] == 1, r.text  # begun afresh
    # a key through an existing file: 409, nothing kept
    assert server.post("/storage/upload", k, params={"key": "afile"}, data=b"f",
                       headers={"Content-Type": "application/octet-stream"}).status_code == 200
    assert_detail(send_chunk(server, k, c, 0, 1, upload_id="thru", key="afile/inside.bin",
                             filename=None), 409)
    assert server.get("/storage/download/afile", k).content == b"f"
    assert_detail(server.post("/storage/upload-chunk", files={"file": ("blob", c)}), 401)
    assert "b.bin" not in keys(server, k)


def test_abandoned_uploads_are_removed(fresh_server):
    s = fresh_server
    u = s.new_user()
    k = u["key"]
    assert send_chunk(s, k, b"a" * 1000, 0, 2, upload_id="old").status_code == 200
    [old] = uploads_of(s, u["user_id"])
    day_and_more = time.time() - 25 * 3600
    os.utime(os.path.join(uploads_dir(s, u["user_id"]), old), (day_and_more, day_and_more))
    # the next chunk of the bucket sweeps it away; a recent upload stays
    assert send_chunk(s, k, b"b" * 1000, 0, 2, upload_id="new", filename="n.bin").status_code \
        == 200
    [new] = uploads_of(s, u["user_id"])
    assert new != old
    r = send_chunk(s, k, b"a" * 1000, 1, 2, upload_id="old")
    assert r.status_code == 200 and r.json()["received"] == 1 and not r.json()["complete"]
    # and at the next start
    for name in uploads_of(s, u["user_id"]):
        os.utime(os.path.join(uploads_dir(s, u["user_id"]), name), (day_and_more, day_and_more))
    s.stop()
    s.start()
    assert uploads_of(s, u["user_id"]) == []
    assert keys(s, k) == []


def test_delete_folder_of_no_file_is_404(server, user):
    k = user["key"]
    assert_detail(server.delete("/storage/delete-folder/empty", k), 404, "no files")
    assert server.post("/storage/upload", k, params={"key": "notafolder"}, data=b"x",
                       headers={"Content-Type": "application/octet-stream"}).status_code == 200
    assert_detail(server.delete("/storage/delete-folder/notafolder", k), 404, "notafolder/")
    assert server.get("/storage/download/notafolder", k).content == b"x"
    server.post("/storage/upload-bulk", k, params={"folder_prefix": "full"},
                files=[("files", ("1", b"1")), ("files", ("2", b"2"))])
    r = server.delete("/storage/delete-folder/full", k)
    assert r.status_code == 200 and r.json()["deleted"] == 2, r.text
    assert_detail(server.delete("/storage/delete-folder/full", k), 404)


def test_openapi_lists_the_storage_paths_and_fields(server):
    doc = requests.get(server.url("/openapi.json"), timeout=30).json()
    paths = doc["paths"]
    chunk = paths["/api/v2/external/storage/upload-chunk"]["post"]
    props = chunk["requestBody"]["content"]["application/json"]["schema"]["properties"]
    for name in ("file", "upload_id", "uploadId", "file_id", "chunk_index", "chunkIndex",
                 "total_chunks", "totalChunks", "filename", "fileName", "file_name", "key",
                 "folder_prefix", "folderPrefix", "total_size", "totalSize"):
        assert name in props, name
    answer = chunk["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert {"upload_id", "chunk_index", "total_chunks", "received", "complete", "key",
            "size"} <= set(answer)
    listing = paths["/api/v2/external/storage/list-files"]["get"]
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array"
    assert set(schema["items"]["properties"]) == {"key", "size", "last_modified"}
    assert "X-Truncated" in listing["summary"] and "X-Total-Count" in listing["summary"]
    bulk = paths["/api/v2/external/storage/upload-bulk"]["post"]
    assert "folder_prefix" in bulk["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
