"""The HTTP layer seen from outside: error model, limits, hostile requests, headers, health,
and the OpenAPI document. After each hostile request the server must still serve."""

import errno
import json
import socket
import uuid

import requests

from conftest import PREFIX, assert_422, assert_detail


# How long a reply may take before the connection counts as held open. The server answers or
# closes each of these at once; one it held would wait for connection_timeout_seconds (120 s).
WAIT = 20


def send_half_closed(server, data):
    """A fresh socket that sent data and then shut down its sending side, as a client that has
    nothing more to say does. The server may answer (431, 413 ...) and close before it has read
    everything: sending then fails with a reset or a broken pipe, which is not an error here."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except (ConnectionResetError, BrokenPipeError):
        pass
    except OSError as e:
        if e.errno != errno.ENOTCONN:
            s.close()
            raise
    return s


def read_to_end(s):
    """Everything the server sends until it closes; a reset ends it too. A socket still open
    after WAIT seconds fails the test: the server held the connection open."""
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except ConnectionResetError:
        return out
    except socket.timeout:
        raise AssertionError(f"connection held open for {WAIT}s after {out[:100]!r}") from None
    finally:
        s.close()


def raw(server, data):
    """Sends bytes on a fresh socket, half-closes it and returns what comes back before the
    server closes it (which it must do at once)."""
    return read_to_end(send_half_closed(server, data))


def raw_many(server, data, n=32):
    """raw() on n connections at once (each sent before any is read); their replies."""
    socks = [send_half_closed(server, data) for _ in range(n)]
    return [read_to_end(s) for s in socks]


def test_health_and_request_id(server):
    r = server.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert len(r.headers["X-Request-ID"]) >= 16
    r = server.get("/health", headers={"X-Request-ID": "trace-abc.123"})
    assert r.headers["X-Request-ID"] == "trace-abc.123"
    # An unsafe id is not echoed (it could inject into logs); a fresh one is made.
    r = server.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["X-Request-ID"] != "bad id\twith spaces"
    assert server.get(PREFIX + "/health").status_code == 200


def test_unknown_route_and_wrong_method(server, user):
    assert_detail(server.get("/no/such/route", user["key"]), 404, "Not Found")
    assert server.get("/no/such/route").json() == {"detail": "Not Found"}
    assert_detail(requests.get(server.base + "/api/v9/nothing"), 404)
    r = server.req("PUT", "/user/status", user["key"])
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    assert "GET" in r.headers["Allow"]
    r = server.req("POST", "/health")
    assert r.status_code == 405


def test_missing_and_absurd_authorization(server):
    assert_detail(server.get("/user/status"), 401, "Not authenticated")
    for h in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "lk_abc", "Bearer lk_" + "A" * 40,
              "Bearer not.a.jwt", "Bearer " + "x" * 9000, "Bearer \u00e9t\u00e9"):
        r = requests.get(server.url("/user/status"), headers={"Authorization": h.encode()})
        assert_detail(r, 401)
    # Far past any sane size: refused by the HTTP layer, and the server lives on.
    r = raw(server, b"GET " + PREFIX.encode() + b"/user/status HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + b"A" * 200000 + b"\r\n\r\n")
    assert r == b"" or r.split(b" ")[1][:1] == b"4", r[:200]
    assert server.alive()


def test_a_kept_alive_connection_sees_caller_changes_at_once(server):
    """Who a key is (its user, org and role) is cached per server thread, and a connection
    kept alive stays on one thread: each change below must show in its very next request."""
    owner, member = server.new_user(), server.new_user()
    slug = "keep-" + uuid.uuid4().hex[:10]
    org = server.post("/orgs", owner["key"], json={"slug": slug, "name": "Keep"}).json()
    inv = server.post(f"/orgs/{slug}/invites", owner["key"],
                      json={"email": member["email"], "role": "member"})
    assert server.post(f"/invites/{inv.json()['token']}/accept", member["key"]).status_code == 200
    conn = requests.Session()

    def status(key, **headers):
        headers["Authorization"] = "Bearer " + key
        return conn.get(server.url("/user/status"), headers=headers, timeout=30)

    for _ in range(3):
        assert status(member["key"], **{"X-Org-Slug": slug}).json()["org_id"] == org["id"]
    # The member's own key, toggled off and on by another connection.
    key_id = server.get("/auth/api-keys/", member["key"]).json()[0]["id"]
    assert server.patch(f"/auth/api-keys/{key_id}/toggle", member["key"]).status_code == 200
    assert_detail(status(member["key"]), 401, "inactive")
    tok = server.login(member)["access_token"]
    assert server.patch(f"/auth/api-keys/{key_id}/toggle", tok).json()["is_active"] is True
    assert status(member["key"]).status_code == 200
    # A role change: the member may not make org keys, then (as admin) may.
    new_key = {"name": "k"}
    assert_detail(conn.post(server.url(f"/orgs/{slug}/api-keys"), json=new_key, timeout=30,
                            headers={"Authorization": "Bearer " + member["key"]}), 403)
    assert server.patch(f"/orgs/{slug}/members/{member['user_id']}", owner["key"],
                        json={"role": "admin"}).status_code == 200
    r = conn.post(server.url(f"/orgs/{slug}/api-keys"), json=new_key, timeout=30,
                  headers={"Authorization": "Bearer " + member["key"]})
    assert r.status_code == 200, r.text
    org_key = r.json()["plaintext_key"]
    for _ in range(3):
        assert status(org_key).json()["org_id"] == org["id"]
    # Removed from the org: its org key and the org itself are gone for the member.
    assert server.delete(f"/orgs/{slug}/members/{member['user_id']}",
                         owner["key"]).status_code == 200
    assert_detail(status(org_key), 401)
    assert_detail(status(member["key"], **{"X-Org-Slug": slug}), 403)
    assert status(member["key"]).json()["org_id"] == member["org_id"]


def test_malformed_json_wrong_types_missing_fields(server, user):
    url = server.url("/auth/api-keys/")
    auth = {"Authorization": "Bearer " + user["key"], "Content-Type": "application/json"}
    errs = assert_422(requests.post(url, data=b'{"key_name": "x",', headers=auth))
    assert errs[0]["type"] == "json_invalid" and errs[0]["loc"][0] == "body"
    errs = assert_422(requests.post(url, data=b"\xff\xfe garbage", headers=auth))
    assert errs[0]["type"] == "json_invalid"
    errs = assert_422(requests.post(url, data=b"[1, 2]", headers=auth))
    assert errs[0]["type"] == "model_attributes_type"
    errs = assert_422(requests.post(url, data=b"", headers=auth), ("body",))
    assert errs[0]["type"] == "missing"
    errs = assert_422(requests.post(url, json={"key_name": ["a"]}, headers=auth),
                      ("body", "key_name"))
    assert errs[0]["type"] == "string_type"
    # A NUL inside a string is refused while parsing (jansson rejects \u0000).
    errs = assert_422(requests.post(url, json={"key_name": "a\u0000b"}, headers=auth))
    assert errs[0]["type"] == "json_invalid"
    errs = assert_422(requests.post(url, data=b'{"key_name": "a", "key_name": "b"}',
                                    headers=auth))
    assert errs[0]["type"] == "json_invalid"
    # Several problems are all reported, like FastAPI.
    assert_422(server.post("/auth/login", json={"email": 1, "password": None}),
               ("body", "email"), ("body", "password"))
    # Nothing was created by any of these.
    assert len(server.get("/auth/api-keys/", user["key"]).json()) == 1
    assert server.alive()


def test_body_limits(server, user):
    big = b'{"key_name": "' + b"a" * (10 << 20) + b'"}'
    r = requests.post(server.url("/auth/api-keys/"), data=big,
                      headers={"Authorization": "Bearer " + user["key"],
                               "Content-Type": "application/json"})
    assert_detail(r, 413, "too large")
    # Chunked, with no Content-Length: counted as it arrives.
    def gen():
        for _ in range(40):
            yield b"x" * (256 << 10)
    r = requests.post(server.url("/auth/login"), data=gen())
    assert_detail(r, 413)
    assert server.alive()
    assert len(server.get("/auth/api-keys/", user["key"]).json()) == 1


def test_malformed_http(server):
    """Junk, then the client's end of input: each connection is answered with an error or
    closed at once, on every one of many connections (the server used to hold about half of
    them open until the connection timeout)."""
    for junk in (b"\x00\x01\x02\r\n\r\n", b"\r\n\r\n", b"GET\r\n\r\n",
                 b"GET / HTTP/9.9\r\n\r\n",
                 b"POST /api/v2/external/auth/login HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"POST /api/v2/external/auth/login HTTP/1.1\r\nHost: x\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"):
        for out in raw_many(server, junk):
            assert out == b"" or out.split(b" ")[1][:1] in (b"4", b"5"), (junk, out[:100])
    assert server.alive()


def test_half_closed_connections_end_at_once(server):
    """A client that ends its input (shutdown SHUT_WR) part-way through a request, or after a
    whole one: an unfinished request can never finish, so its connection is closed at once;
    a whole request is answered, and then the connection is closed. Each on 32 connections
    at once: the server used to miss the end on some of them and hold them for the timeout,
    and to drop a whole POST whose body came with the end unanswered."""
    login = PREFIX.encode() + b"/auth/login"
    body = json.dumps({"email": "nobody@example.com"}).encode()  # 422: no password
    post = (b"POST " + login + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    unfinished = [b"G", b"GET /health HTTP/1.1\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\n",
                  post, post + body[:5],
                  b"POST " + login + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                  b"\r\n\r\n5\r\n{\"a\":"]
    for data in unfinished:
        assert raw_many(server, data) == [b""] * 32, data
    for data, status in ((b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
                         (b"GET /health HTTP/1.0\r\n\r\n", b"200"),
                         (post + body, b"422")):
        for out in raw_many(server, data):
            assert out.startswith(b"HTTP/1.1 " + status + b" "), (data, out[:100])
    assert server.alive()


def test_trailing_slash_both_ways(server, user):
    a = server.get("/auth/api-keys/", user["key"])
    b = server.get("/auth/api-keys", user["key"])
    c = server.get("/user/status/", user["key"])
    assert a.status_code == b.status_code == c.status_code == 200
    assert a.json() == b.json()
    assert not a.history and not b.history  # answered, not redirected


def test_openapi_lists_every_route_with_fields(server):
    r = server.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    paths = doc["paths"]
    for path, method in [(PREFIX + "/auth/login", "post"), (PREFIX + "/auth/refresh", "post"),
                         (PREFIX + "/auth/api-keys/", "get"), (PREFIX + "/auth/api-keys/", "post"),
                         (PREFIX + "/auth/api-keys/{api_key_id}", "delete"),
                         (PREFIX + "/auth/api-keys/{api_key_id}/toggle", "patch"),
                         (PREFIX + "/auth/api-keys/validate", "post"),
                         (PREFIX + "/user/status", "get"), (PREFIX + "/user/delete", "delete"),
                         (PREFIX + "/mfa/enroll", "post"), (PREFIX + "/mfa/verify", "post"),
                         ("/api/v1/api-keys", "get"), ("/health", "get")]:
        assert method in paths.get(path, {}), (path, method)
    login = paths[PREFIX + "/auth/login"]["post"]
    schema = login["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"email", "password"}
    ok = login["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"access_token", "refresh_token", "expires_in"} <= set(ok["properties"])
    key_del = paths[PREFIX + "/auth/api-keys/{api_key_id}"]["delete"]
    assert key_del["parameters"][0]["name"] == "api_key_id"
    # Every documented operation is really served: none answers 404 or 405.
    for path, ops in paths.items():
        for method in ops:
            concrete = path.replace("{", "").replace("}", "")
            r = requests.request(method.upper(), server.base + concrete, timeout=10,
                                 data=json.dumps({}) if method != "get" else None)
            assert r.status_code not in (404, 405) or "not found" in r.text.lower() and \
                r.json()["detail"] != "Not Found", (method, path, r.status_code, r.text)
