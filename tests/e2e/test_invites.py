"""Invites over real HTTP (API.md sections 3 and 16.2): an org invites by email; the invitee
previews without logging in, then accepts as a new account (with a password) or with the
existing account, or declines; tokens are single use and revocable."""

import datetime as dt
import uuid

from conftest import assert_422, assert_detail

INVITE_FIELDS = {"id", "org_id", "org_slug", "org_name", "email", "role", "status", "token",
                 "expires_at", "created_at", "invited_by"}


def new_email():
    return f"n{uuid.uuid4().hex[:10]}@example.com"


def create_org(server, user):
    r = server.post("/orgs", user["key"], json={"slug": f"inv-{uuid.uuid4().hex[:10]}",
                                                "name": "Invite Org"})
    assert r.status_code == 200, r.text
    return r.json()


def invite(server, owner, org, email, role=None):
    body = {"email": email}
    if role:
        body["role"] = role
    r = server.post(f"/orgs/{org['slug']}/invites", owner["key"], json=body)
    assert r.status_code == 200, r.text
    return r.json()


def members(server, user, org):
    r = server.get(f"/orgs/{org['slug']}/members", user["key"])
    assert r.status_code == 200, r.text
    return {m["email"]: m for m in r.json()["members"]}


def test_accept_as_a_new_account(server):
    owner = server.new_user()
    org = create_org(server, owner)
    email = new_email()
    inv = invite(server, owner, org, email, "admin")
    assert INVITE_FIELDS <= set(inv)
    assert inv["status"] == "pending" and inv["role"] == "admin" and inv["email"] == email
    assert inv["org_id"] == org["id"] and inv["org_slug"] == org["slug"]
    assert inv["invited_by"] == owner["user_id"] and inv["token"].startswith("inv_")
    created = dt.datetime.fromisoformat(inv["created_at"])
    expires = dt.datetime.fromisoformat(inv["expires_at"])
    assert abs((expires - created) - dt.timedelta(days=7)) < dt.timedelta(seconds=1)

    # The org's list shows it, without the token.
    r = server.get(f"/orgs/{org['slug']}/invites", owner["key"])
    assert r.status_code == 200
    listed = r.json()
    assert listed["total"] == 1 and listed["invites"][0]["id"] == inv["id"]
    assert "token" not in listed["invites"][0] and inv["token"] not in r.text

    # Preview without any credentials.
    r = server.get(f"/invites/{inv['token']}")
    assert r.status_code == 200, r.text
    assert r.json() == {"org_name": org["name"], "org_slug": org["slug"], "role": "admin",
                        "email": email, "invited_by_email": owner["email"],
                        "expires_at": inv["expires_at"], "status": "pending"}

    url = f"/invites/{inv['token']}/accept"
    assert_422(server.post(url), ("body", "password"))
    assert_422(server.post(url, json={"full_name": "New Person"}), ("body", "password"))
    assert_422(server.post(url, json={"password": "short"}), ("body", "password"))
    assert_422(server.post(url, json={"password": 12345678}), ("body", "password"))
    assert_detail(server.post(url, "not-a-valid-token"), 401)

    password = "pw-" + uuid.uuid4().hex
    r = server.post(url, json={"password": password, "full_name": "New Person"})
    assert r.status_code == 200, r.text
    acc = r.json()
    assert acc["org_id"] == org["id"] and acc["org_slug"] == org["slug"]
    assert acc["role"] == "admin" and acc["account_created"] is True
    assert {"access_token", "refresh_token", "expires_in", "user_id"} <= set(acc)

    # The tokens work, in the new org with the invite's role; the default org is their own.
    me = server.get("/user/status", acc["access_token"]).json()
    assert me["email"] == email and me["user_id"] == acc["user_id"]
    assert me["org_id"] != org["id"]
    got = server.get(f"/orgs/{org['slug']}", acc["access_token"]).json()
    assert got["role"] == "admin" and got["is_default"] is False
    # Logging in with the chosen password works.
    tok = server.login({"email": email, "password": password})
    assert server.get(f"/orgs/{org['slug']}/members", tok["access_token"]).status_code == 200
    m = members(server, owner, org)[email]
    assert m["role"] == "admin" and m["full_name"] == "New Person"

    # Single use.
    assert_detail(server.post(url, json={"password": password}), 410, "accepted")
    assert_detail(server.post(url, acc["access_token"]), 410, "accepted")
    assert_detail(server.get(f"/invites/{inv['token']}"), 410, "accepted")
    assert server.get(f"/orgs/{org['slug']}/invites", owner["key"]).json()["total"] == 0
    # The secret never reached the access log.
    assert inv["token"] not in server.read_log()


def test_accept_with_an_existing_account(server):
    owner = server.new_user()
    org = create_org(server, owner)
    invitee = server.new_user()
    wrong = server.new_user()
    inv = invite(server, owner, org, invitee["email"].upper())
    url = f"/invites/{inv['token']}/accept"

    # Without credentials an existing account must log in; nothing is created.
    r = server.post(url, json={"password": "another-password"})
    assert assert_detail(r, 401)["detail"] == \
        f"Log in as {invitee['email'].upper()} to accept this invite"
    assert invitee["email"] not in {e.lower() for e in members(server, owner, org)}
    server.login(invitee)  # the password did not change
    # Another account cannot take it.
    assert_detail(server.post(url, wrong["key"]), 403, "another email")

    # The addressee sees it, by id, without a token.
    r = server.get("/invites/mine", invitee["key"])
    assert r.status_code == 200, r.text
    mine = r.json()["invites"]
    assert len(mine) == 1 and "token" not in mine[0]
    assert mine[0]["id"] == inv["id"] and mine[0]["org_slug"] == org["slug"]
    assert mine[0]["org_name"] == org["name"] and mine[0]["role"] == "member"
    assert mine[0]["invited_by_email"] == owner["email"] and mine[0]["expires_at"]
    assert server.get("/invites/mine", wrong["key"]).json()["invites"] == []
    # Only the addressee may use the id in place of the token.
    assert_detail(server.post(f"/invites/{inv['id']}/accept", wrong["key"]), 404,
                  "Invite not found")
    assert_detail(server.post(f"/invites/{inv['id']}/accept"), 404)
    assert_detail(server.get(f"/invites/{inv['id']}"), 404)

    jwt = server.login(invitee)["access_token"]
    r = server.post(f"/invites/{inv['id']}/accept", jwt)
    assert r.status_code == 200, r.text
    acc = r.json()
    assert acc["user_id"] == invitee["user_id"] and acc["account_created"] is False
    assert acc["role"] == "member" and "access_token" not in acc
    assert members(server, owner, org)[invitee["email"]]["role"] == "member"
    got = server.get(f"/orgs/{org['slug']}", invitee["key"]).json()
    assert got["role"] == "member" and got["is_default"] is False
    assert server.get("/invites/mine", invitee["key"]).json()["invites"] == []
    assert_detail(server.post(url, invitee["key"]), 410)


def test_revoke_and_decline(server):
    owner = server.new_user()
    org = create_org(server, owner)
    s = org["slug"]
    inv = invite(server, owner, org, new_email())
    r = server.delete(f"/orgs/{s}/invites/{inv['id']}", owner["key"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked"
    assert_detail(server.get(f"/invites/{inv['token']}"), 410, "revoked")
    assert_detail(server.post(f"/invites/{inv['token']}/accept", json={"password": "x" * 12}),
                  410, "revoked")
    assert_detail(server.delete(f"/orgs/{s}/invites/{inv['id']}", owner["key"]), 409, "revoked")
    assert_detail(server.delete(f"/orgs/{s}/invites/{uuid.uuid4()}", owner["key"]), 404,
                  "Invite not found")

    # Declined by someone without an account, with the token only.
    inv = invite(server, owner, org, new_email())
    r = server.post(f"/invites/{inv['token']}/decline")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "declined"
    assert_detail(server.get(f"/invites/{inv['token']}"), 410, "declined")
    assert_detail(server.post(f"/invites/{inv['token']}/accept", json={"password": "x" * 12}),
                  410, "declined")

    # Declined by an existing account: it must log in, as the addressee.
    u = server.new_user()
    inv = invite(server, owner, org, u["email"])
    assert_detail(server.post(f"/invites/{inv['token']}/decline"), 401, "Log in as")
    assert_detail(server.post(f"/invites/{inv['token']}/decline", owner["key"]), 403)
    assert server.post(f"/invites/{inv['id']}/decline", u["key"]).status_code == 200
    assert server.get("/invites/mine", u["key"]).json()["invites"] == []
    assert u["email"] not in members(server, owner, org)
    assert server.get(f"/orgs/{s}/invites", owner["key"]).json()["total"] == 0

    assert_detail(server.get("/invites/inv_doesnotexist"), 404, "Invite not found")
    assert_detail(server.post("/invites/inv_doesnotexist/accept", json={"password": "x" * 12}),
                  404)


def test_invite_rules_and_validation(server):
    owner = server.new_user()
    org = create_org(server, owner)
    s = org["slug"]
    admin = server.new_user()
    r = server.post(f"/invites/{invite(server, owner, org, admin['email'], 'admin')['token']}"
                    "/accept", admin["key"])
    assert r.status_code == 200, r.text

    # Admins invite members and admins; only owners invite owners.
    assert invite(server, admin, org, new_email(), "admin")["role"] == "admin"
    assert_detail(server.post(f"/orgs/{s}/invites", admin["key"],
                              json={"email": new_email(), "role": "owner"}), 403, "owner")
    assert invite(server, owner, org, new_email(), "owner")["role"] == "owner"
    # Members are not invited again.
    r = server.post(f"/orgs/{s}/invites", owner["key"], json={"email": admin["email"]})
    assert_detail(r, 409, "already a member")

    # A second invite to the same email replaces the pending one.
    email = new_email()
    first = invite(server, owner, org, email)
    second = invite(server, admin, org, email, "admin")
    assert first["token"] != second["token"]
    assert_detail(server.get(f"/invites/{first['token']}"), 410, "revoked")
    assert server.get(f"/invites/{second['token']}").json()["role"] == "admin"
    pending = server.get(f"/orgs/{s}/invites", owner["key"]).json()["invites"]
    assert [i["id"] for i in pending if i["email"] == email] == [second["id"]]

    url = f"/orgs/{s}/invites"
    assert_422(server.post(url, owner["key"], json={}), ("body", "email"))
    assert_422(server.post(url, owner["key"], json={"email": "nobody"}), ("body", "email"))
    assert_422(server.post(url, owner["key"], json={"email": 5}), ("body", "email"))
    assert_422(server.post(url, owner["key"], json={"email": new_email(), "role": "king"}),
               ("body", "role"))
    assert_422(server.post(url, owner["key"], json={"email": new_email(), "role": True}),
               ("body", "role"))
    errs = assert_422(server.post(url, owner["key"], data='{"email": ',
                                  headers={"Content-Type": "application/json"}))
    assert errs[0]["type"] == "json_invalid"
    assert_422(server.post(f"/invites/{second['token']}/accept", json={"full_name": 7}),
               ("body", "full_name"))


def test_invites_between_tenants(server):
    a, b = server.new_user(), server.new_user()
    oa, ob = create_org(server, a), create_org(server, b)
    ia = invite(server, a, oa, new_email())
    assert_detail(server.get(f"/orgs/{oa['slug']}/invites", b["key"]), 404)
    assert_detail(server.delete(f"/orgs/{oa['slug']}/invites/{ia['id']}", b["key"]), 404)
    assert_detail(server.delete(f"/orgs/{ob['slug']}/invites/{ia['id']}", b["key"]), 404,
                  "Invite not found")
    assert server.get(f"/orgs/{ob['slug']}/invites", b["key"]).json() == \
        {"invites": [], "total": 0}
    assert server.get(f"/invites/{ia['token']}").json()["status"] == "pending"


def test_org_keys_and_bad_credentials_cannot_answer(server):
    owner = server.new_user()
    org = create_org(server, owner)
    u = server.new_user()
    key = server.post(f"/orgs/{u['org_slug']}/api-keys", u["key"],
                      json={"name": "k"}).json()["plaintext_key"]
    inv = invite(server, owner, org, u["email"])
    assert_detail(server.post(f"/invites/{inv['token']}/accept", key), 403)
    assert_detail(server.get("/invites/mine", key), 403)
    r = server.post(f"/invites/{inv['token']}/accept", "lk_" + "x" * 40,
                    json={"password": "x" * 12})
    assert_detail(r, 401)
    assert_detail(server.get("/invites/mine"), 401)
    # Still pending, and then accepted by its addressee.
    assert server.get(f"/invites/{inv['token']}").json()["status"] == "pending"
    assert server.post(f"/invites/{inv['token']}/accept", u["key"]).status_code == 200
