"""The HTTP layer seen from outside: error model, limits, hostile requests, headers, health,
and the OpenAPI document. After each hostile request the server must still serve."""

import errno
import json
import socket
import uuid

import requests

from conftest import PREFIX, assert_422, assert_detail


def raw(server, data, read=65536):
    """Sends bytes on a fresh socket and returns what comes back.

    The server may answer (431, 413 ...) and close before it has read everything: sending
    then fails with a reset or a broken pipe, and what it answered is still read."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError):
            pass
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise
        out = b""
        try:
            while len(out) < read:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


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
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"POST /api/v2/external/auth/login HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"POST /api/v2/external/auth/login HTTP/1.1\r\nHost: x\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"):
        out = raw(server, junk)
        assert out == b"" or out.startswith(b"HTTP/1."), out[:100]
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
