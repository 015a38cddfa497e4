"""MFA with codes made by an independent TOTP implementation: Debian's oathtool."""

import subprocess
import time

from conftest import assert_422, assert_detail


def totp(secret, offset=0):
    """The current code (offset in 30 s steps) from oathtool, not from lyceumd's liboath."""
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + 30 * offset))
    return subprocess.run(["oathtool", "--totp", "-b", "--now", now, secret],
                          capture_output=True, text=True, check=True).stdout.strip()


def fresh_code(secret, used):
    """A code for a time step after every step used so far: the server accepts each step once
    and never an older one (RFC 6238's replay rule), within one step of clock drift. used is
    this test's record of the last step it spent."""
    while True:
        now = int(time.time()) // 30
        for step in (now - 1, now, now + 1):
            if step > used.get("last", -1):
                used["last"] = step
                return totp_at(secret, step)
        time.sleep(30 - time.time() % 30 + 0.1)


def totp_at(secret, step):
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(step * 30 + 1))
    return subprocess.run(["oathtool", "--totp", "-b", "--now", when, secret],
                          capture_output=True, text=True, check=True).stdout.strip()


def enroll(server, user):
    tok = server.login(user)["access_token"]
    r = server.post("/mfa/enroll", tok)
    assert r.status_code == 200, r.text
    e = r.json()
    assert len(e["backup_codes"]) == 10 and len(set(e["backup_codes"])) == 10
    assert e["qr_code_url"].startswith("otpauth://totp/") and e["secret"] in e["qr_code_url"]
    return tok, e


def test_enroll_and_login_with_totp(server):
    u = server.new_user()
    used = {}
    tok, e = enroll(server, u)
    assert server.get("/mfa/status", tok).json()["enabled"] is False
    # Before verification MFA is off: login still gives tokens directly.
    assert "access_token" in server.login(u)
    assert_detail(server.post("/mfa/verify-enrollment", tok, json={"code": "000000"}), 400)
    r = server.post("/mfa/verify-enrollment", tok, json={"code": fresh_code(e["secret"], used)})
    assert r.status_code == 200 and r.json()["enabled"] is True, r.text
    st = server.get("/mfa/status", tok).json()
    assert st == {"enabled": True, "enrollment_pending": False, "backup_codes_remaining": 10}

    # Login now stops at the second factor.
    r = server.post("/auth/login", json={"email": u["email"], "password": u["password"]})
    assert r.status_code == 200
    body = r.json()
    assert body["mfa_required"] is True and "access_token" not in body
    assert_detail(server.post("/mfa/verify", json={"mfa_token": body["mfa_token"],
                                                   "code": "123456" if totp(e["secret"]) != "123456"
                                                   else "654321"}), 401)
    code = fresh_code(e["secret"], used)
    r = server.post("/mfa/verify", json={"mfa_token": body["mfa_token"], "code": code})
    assert r.status_code == 200, r.text
    assert server.get("/user/status", r.json()["access_token"]).status_code == 200
    # The challenge is spent, and the same code cannot be replayed in a new login.
    assert_detail(server.post("/mfa/verify", json={"mfa_token": body["mfa_token"], "code": code}),
                  401)
    r = server.post("/auth/login", json={"email": u["email"], "password": u["password"],
                                         "mfa_code": code})
    assert_detail(r, 401)
    # A code in the login request itself works (one step).
    r = server.post("/auth/login", json={"email": u["email"], "password": u["password"],
                                         "mfa_code": fresh_code(e["secret"], used)})
    assert r.status_code == 200 and "access_token" in r.json(), r.text


def test_backup_code_works_exactly_once(server):
    u = server.new_user()
    used = {}
    tok, e = enroll(server, u)
    server.post("/mfa/verify-enrollment", tok, json={"code": fresh_code(e["secret"], used)})
    backup = e["backup_codes"][3]
    t = server.post("/auth/login", json={"email": u["email"], "password": u["password"]}).json()
    r = server.post("/mfa/verify", json={"mfa_token": t["mfa_token"], "code": backup})
    assert r.status_code == 200, r.text
    t = server.post("/auth/login", json={"email": u["email"], "password": u["password"]}).json()
    assert_detail(server.post("/mfa/verify", json={"mfa_token": t["mfa_token"], "code": backup}),
                  401)
    assert server.get("/mfa/status", tok).json()["backup_codes_remaining"] == 9
    # Regenerating replaces every code: an old unused one stops working.
    old = e["backup_codes"][4]
    r = server.post("/mfa/regenerate-backup-codes", tok, json={"code": fresh_code(e["secret"], used)})
    assert r.status_code == 200, r.text
    new = r.json()["backup_codes"]
    assert len(new) == 10 and old not in new
    t = server.post("/auth/login", json={"email": u["email"], "password": u["password"]}).json()
    assert_detail(server.post("/mfa/verify", json={"mfa_token": t["mfa_token"], "code": old}), 401)
    r = server.post("/mfa/verify", json={"mfa_token": t["mfa_token"], "code": new[0].upper()})
    assert r.status_code == 200, r.text


def test_mfa_token_attempts_are_limited(server):
    u = server.new_user()
    used = {}
    tok, e = enroll(server, u)
    server.post("/mfa/verify-enrollment", tok, json={"code": fresh_code(e["secret"], used)})
    t = server.post("/auth/login", json={"email": u["email"], "password": u["password"]}).json()
    for _ in range(5):
        assert_detail(server.post("/mfa/verify", json={"mfa_token": t["mfa_token"],
                                                       "code": "zzzzz-zzzzz"}), 401)
    # Out of attempts: even a right code needs a new login.
    r = server.post("/mfa/verify", json={"mfa_token": t["mfa_token"],
                                         "code": fresh_code(e["secret"], used)})
    assert_detail(r, 401)


def test_disable_needs_a_code(server):
    u = server.new_user()
    used = {}
    tok, e = enroll(server, u)
    server.post("/mfa/verify-enrollment", tok, json={"code": fresh_code(e["secret"], used)})
    assert_detail(server.post("/mfa/enroll", tok), 409)
    assert_422(server.post("/mfa/disable", tok, json={}), ("body", "code"))
    assert_detail(server.post("/mfa/disable", tok, json={"code": "999999"
                                                         if totp(e["secret"]) != "999999"
                                                         else "888888"}), 400)
    r = server.post("/mfa/disable", tok, json={"code": e["backup_codes"][0]})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert "access_token" in server.login(u)
    assert server.get("/mfa/status", tok).json()["enabled"] is False


def test_mfa_bad_input(server, user):
    assert_422(server.post("/mfa/verify", json={"mfa_token": 5}), ("body", "mfa_token"),
               ("body", "code"))
    assert_detail(server.post("/mfa/verify", json={"mfa_token": "nope", "code": "123456"}), 401)
    assert_detail(server.post("/mfa/verify-enrollment", user["key"], json={"code": "123456"}),
                  400, "enroll")
