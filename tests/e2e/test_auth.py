"""Identity over real HTTP: login, token life, API keys, /user/status, /user/delete."""

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import time

from conftest import assert_422, assert_detail


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def craft_jwt(server, claims, alg="HS256", key=None):
    """A JWT signed by this test (an independent implementation) with the server's key."""
    if key is None:
        with open(os.path.join(server.data, "jwt.key"), "rb") as f:
            key = f.read()
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signing = f"{head}.{body}".encode()
    if alg == "none":
        return f"{head}.{body}."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return f"{head}.{body}.{b64url(hmac.new(key, signing, digest).digest())}"


def jwt_claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_login_gives_tokens_that_work(server, user):
    tok = server.login(user)
    assert set(tok) >= {"access_token", "refresh_token", "expires_in"}
    assert tok["expires_in"] == 86400
    claims = jwt_claims(tok["access_token"])
    assert claims["sub"] == user["user_id"]
    assert claims["exp"] - claims["iat"] == 86400
    r = server.get("/user/status", tok["access_token"])
    assert r.status_code == 200
    assert r.json()["email"] == user["email"]


def test_wrong_password_and_unknown_email_look_the_same(server, user):
    a = server.post("/auth/login", json={"email": user["email"], "password": "wrong-password"})
    b = server.post("/auth/login", json={"email": "nobody@example.com", "password": "x" * 12})
    assert_detail(a, 401)
    assert_detail(b, 401)
    assert a.json() == b.json()


def test_login_throttled_after_repeated_failures(server):
    u = server.new_user()
    for _ in range(5):
        assert_detail(server.post("/auth/login", json={"email": u["email"], "password": "bad!"}),
                      401)
    r = server.post("/auth/login", json={"email": u["email"], "password": "bad!"})
    assert_detail(r, 429)
    assert 0 < int(r.headers["Retry-After"]) <= 300
    # Even the right password waits: the throttle is on the email, not on the guess.
    r = server.post("/auth/login", json={"email": u["email"], "password": u["password"]})
    assert_detail(r, 429)
    # Another account is not affected.
    other = server.new_user()
    server.login(other)


def test_refresh_rotates_and_reuse_revokes_the_family(server, user):
    t1 = server.login(user)
    r = server.post("/auth/refresh", json={"refresh_token": t1["refresh_token"]})
    assert r.status_code == 200, r.text
    t2 = r.json()
    assert t2["refresh_token"] != t1["refresh_token"]
    assert server.get("/user/status", t2["access_token"]).status_code == 200
    # The first refresh token was used: presenting it again is reuse.
    assert_detail(server.post("/auth/refresh", json={"refresh_token": t1["refresh_token"]}),
                  401, "already used")
    # ...which revoked the whole family: the newer refresh token and its access token.
    assert_detail(server.post("/auth/refresh", json={"refresh_token": t2["refresh_token"]}), 401)
    assert_detail(server.get("/user/status", t2["access_token"]), 401)
    # Another login is a new family and works.
    t3 = server.login(user)
    assert server.get("/user/status", t3["access_token"]).status_code == 200


def test_refresh_bad_input(server):
    assert_detail(server.post("/auth/refresh", json={"refresh_token": "rt_nonsense"}), 401)
    assert_422(server.post("/auth/refresh", json={}), ("body", "refresh_token"))
    assert_422(server.post("/auth/refresh", json={"refresh_token": 42}), ("body", "refresh_token"))


def test_expired_tampered_and_foreign_alg_jwts_are_refused(server, user):
    tok = server.login(user)["access_token"]
    claims = jwt_claims(tok)
    now = int(time.time())
    # A token this test signs with the server's key is accepted: the crafting is right...
    good = craft_jwt(server, dict(claims, iat=now, exp=now + 60))
    assert server.get("/user/status", good).status_code == 200
    # ...so each refusal below is for the reason named.
    expired = craft_jwt(server, dict(claims, iat=now - 100, exp=now - 10))
    assert_detail(server.get("/user/status", expired), 401, "expired")
    for bad in (craft_jwt(server, dict(claims, exp=now + 60), alg="none"),
                craft_jwt(server, dict(claims, exp=now + 60), alg="HS512"),
                craft_jwt(server, dict(claims, exp=now + 60), key=b"k" * 32)):
        assert_detail(server.get("/user/status", bad), 401)
    head, body, sig = tok.split(".")
    forged = b64url(json.dumps(dict(claims, sub="someone-else")).encode())
    assert_detail(server.get("/user/status", f"{head}.{forged}.{sig}"), 401)
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert_detail(server.get("/user/status", f"{head}.{body}.{flipped}"), 401)


def test_user_status_has_the_live_shape(server):
    u = server.new_user(credits="12.5", name="Ada Lovelace")
    with open(os.path.join(os.path.dirname(__file__), "..", "fixtures", "lyceum-live",
                           "user_status.json")) as f:
        live = json.load(f)
    r = server.get("/user/status", u["key"])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == set(live)
    for k, v in live.items():
        if v is not None:
            assert type(body[k]) is type(v), (k, body[k], v)
    assert body["user_id"] == u["user_id"] and body["org_id"] == u["org_id"]
    assert body["full_name"] == "Ada Lovelace"
    assert body["credit_balance"] == 12.5
    assert body["active_api_keys_count"] == 1
    assert body["status"] == "authenticated"
    dt.datetime.fromisoformat(body["created_at"])


def test_user_status_follows_every_change_at_once(server):
    """/user/status is what clients poll: each answer reflects every change made before it,
    whether through the API, through the operator's CLI (another process), or by a key
    expiring with no write at all."""
    u = server.new_user()

    def status():
        r = server.get("/user/status", u["key"])
        assert r.status_code == 200, r.text
        return r.json()

    assert status()["credit_balance"] == 0.0 and status()["active_api_keys_count"] == 1
    server.cli("credits", "grant", u["org_slug"], "7.25")
    assert status()["credit_balance"] == 7.25
    server.cli("key", "add", u["email"], "second")
    assert status()["active_api_keys_count"] == 2
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)).isoformat()
    r = server.post("/auth/api-keys/", u["key"], json={"key_name": "brief", "expires_at": soon})
    assert r.status_code == 200, r.text
    assert status()["active_api_keys_count"] == 3
    time.sleep(2.5)
    assert status()["active_api_keys_count"] == 2
    r = server.delete(f"/auth/api-keys/{r.json()['id']}", u["key"])
    assert r.status_code == 200, r.text
    assert status()["active_api_keys_count"] == 2


def test_api_key_lifecycle(server, user):
    tok = server.login(user)["access_token"]
    r = server.post("/auth/api-keys/", tok, json={"key_name": "ci"})
    assert r.status_code == 200, r.text
    k = r.json()
    assert set(k) >= {"api_key", "id", "key_name", "key_prefix", "created_at", "expires_at"}
    assert k["api_key"].startswith("lk_") and len(k["api_key"]) == 43
    assert k["key_prefix"] == k["api_key"][:8] and k["expires_at"] is None
    assert server.get("/user/status", k["api_key"]).status_code == 200
    # Listed without the secret, with and without the trailing slash.
    for path in ("/auth/api-keys/", "/auth/api-keys", "/api/v1/api-keys"):
        r = server.get(path, tok)
        assert r.status_code == 200, (path, r.text)
        items = {i["id"]: i for i in r.json()}
        assert k["id"] in items and k["api_key"] not in r.text
        assert items[k["id"]]["key_name"] == "ci" and items[k["id"]]["is_active"] is True
    # Validate: the key is valid; a made-up one is not.
    r = server.post("/auth/api-keys/validate", tok, json={"api_key": k["api_key"]})
    assert r.json()["valid"] is True and r.json()["email"] == user["email"]
    r = server.post("/auth/api-keys/validate", tok, json={"api_key": "lk_" + "x" * 40})
    assert r.status_code == 200 and r.json()["valid"] is False
    # Toggle off: 401; toggle on: works again.
    r = server.patch(f"/auth/api-keys/{k['id']}/toggle", tok)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert_detail(server.get("/user/status", k["api_key"]), 401, "inactive")
    assert server.patch(f"/auth/api-keys/{k['id']}/toggle", tok).json()["is_active"] is True
    assert server.get("/user/status", k["api_key"]).status_code == 200
    # Revoke: 401 for good, gone from the list, second delete 404.
    assert server.delete(f"/auth/api-keys/{k['id']}", tok).status_code == 200
    assert_detail(server.get("/user/status", k["api_key"]), 401, "revoked")
    assert k["id"] not in server.get("/auth/api-keys/", tok).text
    assert_detail(server.delete(f"/auth/api-keys/{k['id']}", tok), 404)


def test_expired_api_key_is_refused(server, user):
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)).isoformat()
    r = server.post("/auth/api-keys/", user["key"], json={"key_name": "short", "expires_at": soon})
    assert r.status_code == 200, r.text
    key = r.json()["api_key"]
    assert server.get("/user/status", key).status_code == 200
    time.sleep(2.5)
    assert_detail(server.get("/user/status", key), 401, "expired")


def test_api_key_bad_input(server, user):
    t = user["key"]
    assert_422(server.post("/auth/api-keys/", t, json={}), ("body", "key_name"))
    assert_422(server.post("/auth/api-keys/", t, json={"key_name": ""}), ("body", "key_name"))
    assert_422(server.post("/auth/api-keys/", t, json={"key_name": "x" * 256}),
               ("body", "key_name"))
    assert_422(server.post("/auth/api-keys/", t, json={"key_name": "a", "expires_at": "soon"}),
               ("body", "expires_at"))
    assert_422(server.post("/auth/api-keys/", t,
                           json={"key_name": "a", "expires_at": "2001-01-01T00:00:00Z"}),
               ("body", "expires_at"))


def test_other_users_keys_are_not_found(server, user):
    other = server.new_user()
    mine = server.get("/auth/api-keys/", user["key"]).json()[0]["id"]
    assert_detail(server.delete(f"/auth/api-keys/{mine}", other["key"]), 404)
    assert_detail(server.patch(f"/auth/api-keys/{mine}/toggle", other["key"]), 404)
    r = server.post("/auth/api-keys/validate", other["key"], json={"api_key": user["key"]})
    assert r.json()["valid"] is False
    assert server.get("/user/status", user["key"]).status_code == 200


def test_delete_account(server):
    u = server.new_user(credits=1)
    tok = server.login(u)["access_token"]
    r = server.delete("/user/delete", tok)
    assert r.status_code == 200, r.text
    assert_detail(server.get("/user/status", tok), 401)
    assert_detail(server.get("/user/status", u["key"]), 401)
    assert_detail(server.post("/auth/login", json={"email": u["email"], "password": u["password"]}),
                  401)
    # The email can be used again, and the old default org's slug is free.
    again = server.new_user(email=u["email"])
    assert again["org_slug"] == u["org_slug"]
