"""Organizations over real HTTP (API.md section 3): create/list/get/rename/delete, members and
the role rules, org API keys, how a request's org is resolved, tenants kept apart, and the
balance and ledger of an org."""

import datetime as dt
import os
import sqlite3
import uuid

import pytest

from conftest import assert_422, assert_detail

ORG_FIELDS = {"id", "slug", "name", "billing_email", "billing_details", "created_at", "role",
              "is_default", "member_count"}


def new_slug(prefix="org"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_org(server, user, slug=None, **fields):
    body = {"slug": slug or new_slug(), "name": "Team " + uuid.uuid4().hex[:6], **fields}
    r = server.post("/orgs", user["key"], json=body)
    assert r.status_code == 200, r.text
    return r.json()


def join(server, owner, org, role="member", user=None):
    """Invites a (new, by default) user into org with role; they accept with their key."""
    user = user or server.new_user()
    r = server.post(f"/orgs/{org['slug']}/invites", owner["key"],
                    json={"email": user["email"], "role": role})
    assert r.status_code == 200, r.text
    r = server.post(f"/invites/{r.json()['token']}/accept", user["key"])
    assert r.status_code == 200, r.text
    return user


def status_org(server, token, **kw):
    r = server.get("/user/status", token, **kw)
    assert r.status_code == 200, r.text
    return r.json()["org_id"]


# ---- organisations ----------------------------------------------------------------------

def test_create_get_and_list(server):
    u = server.new_user()
    slug = new_slug()
    org = create_org(server, u, slug=slug, billing_email="billing@acme.example",
                     billing_details={"company": "Acme GmbH", "vat_id": "DE123"})
    assert set(org) >= ORG_FIELDS
    assert org["slug"] == slug and org["role"] == "owner" and org["is_default"] is False
    assert org["member_count"] == 1
    assert org["billing_email"] == "billing@acme.example"
    assert org["billing_details"] == {"company": "Acme GmbH", "vat_id": "DE123"}
    assert dt.datetime.fromisoformat(org["created_at"])

    r = server.get(f"/orgs/{slug}", u["key"])
    assert r.status_code == 200
    assert r.json() == org

    r = server.get("/orgs", u["key"])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"organizations", "total"}
    assert body["total"] == 2 == len(body["organizations"])
    default, other = body["organizations"]
    assert default["slug"] == u["org_slug"] and default["is_default"] is True
    assert default["role"] == "owner" and default["billing_details"] is None
    assert other == org
    # A trailing slash is the same route.
    assert server.get("/orgs/", u["key"]).json() == body


def test_create_validation(server, user):
    k = user["key"]
    assert_422(server.post("/orgs", k, json={"slug": "Bad_Slug", "name": "x"}), ("body", "slug"))
    assert_422(server.post("/orgs", k, json={"slug": "-lead", "name": "x"}), ("body", "slug"))
    assert_422(server.post("/orgs", k, json={"slug": "a" * 65, "name": "x"}), ("body", "slug"))
    assert_422(server.post("/orgs", k, json={"slug": "", "name": "x"}), ("body", "slug"))
    assert_422(server.post("/orgs", k, json={"slug": new_slug()}), ("body", "name"))
    assert_422(server.post("/orgs", k, json={"slug": new_slug(), "name": "x" * 101}),
               ("body", "name"))
    assert_422(server.post("/orgs", k, json={"slug": 12, "name": ["x"]}), ("body", "slug"),
               ("body", "name"))
    assert_422(server.post("/orgs", k, json={"slug": new_slug(), "name": "x",
                                             "billing_details": "acme"}),
               ("body", "billing_details"))
    assert_422(server.post("/orgs", k, json={"slug": new_slug(), "name": "x",
                                             "billing_email": "not-an-email"}),
               ("body", "billing_email"))
    assert_422(server.post("/orgs", k, json={"slug": new_slug(), "name": "x",
                                             "billing_details": {"x": "y" * 5000}}),
               ("body", "billing_details"))
    errs = assert_422(server.post("/orgs", k, data="{not json",
                                  headers={"Content-Type": "application/json"}))
    assert errs[0]["type"] == "json_invalid"
    assert_422(server.post("/orgs", k, json=["slug"]), ("body",))
    assert_422(server.post("/orgs", k), ("body",))
    # Nothing was created by any of these.
    assert server.get("/orgs", k).json()["total"] == 1


def test_slug_taken_is_409(server):
    a, b = server.new_user(), server.new_user()
    org = create_org(server, a)
    r = server.post("/orgs", b["key"], json={"slug": org["slug"], "name": "Copycat"})
    body = assert_detail(r, 409)
    assert body["detail"] == f"Organization slug '{org['slug']}' is already taken"
    # Another user's default org slug is taken too.
    assert_detail(server.post("/orgs", b["key"], json={"slug": a["org_slug"], "name": "x"}), 409)


def test_rename_and_reslug(server):
    owner = server.new_user()
    org = create_org(server, owner)
    admin = join(server, owner, org, "admin")
    new = new_slug("renamed")
    r = server.patch(f"/orgs/{org['slug']}", owner["key"],
                     json={"name": "Renamed", "slug": new, "billing_email": "ap@x.example",
                           "billing_details": {"vat": "FR1"}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["slug"] == new and got["name"] == "Renamed" and got["id"] == org["id"]
    assert got["billing_email"] == "ap@x.example" and got["billing_details"] == {"vat": "FR1"}
    assert got["member_count"] == 2
    assert_detail(server.get(f"/orgs/{org['slug']}", owner["key"]), 404)
    assert server.get(f"/orgs/{new}", owner["key"]).json()["name"] == "Renamed"
    # The old slug is free again.
    create_org(server, server.new_user(), slug=org["slug"])
    # An empty PATCH changes nothing.
    assert server.patch(f"/orgs/{new}", owner["key"], json={}).json() == got

    # Taken slug, bad slug, not an owner.
    r = server.patch(f"/orgs/{new}", owner["key"], json={"slug": owner["org_slug"]})
    assert assert_detail(r, 409)["detail"] == \
        f"Organization slug '{owner['org_slug']}' is already taken"
    assert_422(server.patch(f"/orgs/{new}", owner["key"], json={"slug": "UPPER"}),
               ("body", "slug"))
    assert_422(server.patch(f"/orgs/{new}", owner["key"], json={"name": ""}), ("body", "name"))
    assert_detail(server.patch(f"/orgs/{new}", admin["key"], json={"name": "Mine now"}), 403,
                  "owner")
    assert server.get(f"/orgs/{new}", admin["key"]).json()["name"] == "Renamed"


def test_delete_org(server):
    owner = server.new_user()
    org = create_org(server, owner)
    member = join(server, owner, org)
    key = server.post(f"/orgs/{org['slug']}/api-keys", owner["key"],
                      json={"name": "ci"}).json()["plaintext_key"]
    invite = server.post(f"/orgs/{org['slug']}/invites", owner["key"],
                         json={"email": "later@example.com"}).json()
    server.cli("credits", "grant", org["slug"], "5")

    assert_detail(server.delete(f"/orgs/{org['slug']}", member["key"]), 403, "owner")
    assert_detail(server.delete(f"/orgs/{owner['org_slug']}", owner["key"]), 409, "default")
    r = server.delete(f"/orgs/{org['slug']}", owner["key"])
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Organization deleted", "id": org["id"], "slug": org["slug"]}

    for u in (owner, member):
        assert_detail(server.get(f"/orgs/{org['slug']}", u["key"]), 404)
        assert [o["slug"] for o in server.get("/orgs", u["key"]).json()["organizations"]] == \
            [u["org_slug"]]
    assert_detail(server.get("/user/status", key), 401)
    assert_detail(server.get(f"/invites/{invite['token']}"), 410)
    assert_detail(server.delete(f"/orgs/{org['slug']}", owner["key"]), 404)
    # The slug is free; the new org under it starts with an empty ledger.
    again = create_org(server, owner, slug=org["slug"])
    assert server.get(f"/orgs/{again['slug']}/balance", owner["key"]).json()["balance"] == "0.00"
    # The old ledger is still there (append-only).
    db = sqlite3.connect(os.path.join(server.data, "lyceumd.db"))
    try:
        rows = db.execute("SELECT amount FROM ledger WHERE org_id = ?", (org["id"],)).fetchall()
    finally:
        db.close()
    assert rows == [(5000000,)]


def test_another_members_default_org_cannot_be_deleted(server):
    a = server.new_user()
    default = {"slug": a["org_slug"]}
    b = join(server, a, default, "owner")
    assert_detail(server.delete(f"/orgs/{a['org_slug']}", b["key"]), 409, "default")
    # Nor can its owner be removed from it, even by another owner.
    assert_detail(server.delete(f"/orgs/{a['org_slug']}/members/{a['user_id']}", b["key"]), 409,
                  "default")
    assert server.get(f"/orgs/{a['org_slug']}", a["key"]).status_code == 200


# ---- members ----------------------------------------------------------------------------

def test_members_and_role_rules(server):
    owner = server.new_user(name="Olga Owner")
    org = create_org(server, owner)
    s = org["slug"]
    member = join(server, owner, org, "member")
    admin = join(server, owner, org, "admin")

    r = server.get(f"/orgs/{s}/members", member["key"])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"members", "total"} and body["total"] == 3
    roles = {m["user_id"]: m["role"] for m in body["members"]}
    assert roles == {owner["user_id"]: "owner", member["user_id"]: "member",
                     admin["user_id"]: "admin"}
    first = body["members"][0]
    assert set(first) == {"user_id", "email", "full_name", "role", "joined_at"}
    assert first["email"] == owner["email"] and first["full_name"] == "Olga Owner"
    assert server.get(f"/orgs/{s}", member["key"]).json()["member_count"] == 3

    def role(actor, target, new):
        return server.patch(f"/orgs/{s}/members/{target['user_id']}", actor["key"],
                            json={"role": new})

    def remove(actor, target):
        return server.delete(f"/orgs/{s}/members/{target['user_id']}", actor["key"])

    # A member manages nobody.
    assert_detail(role(member, admin, "member"), 403)
    assert_detail(role(member, member, "admin"), 403)
    assert_detail(remove(member, admin), 403)
    assert_detail(server.post(f"/orgs/{s}/api-keys", member["key"], json={"name": "k"}), 403,
                  "admin")
    assert_detail(server.get(f"/orgs/{s}/api-keys", member["key"]), 403)
    assert_detail(server.post(f"/orgs/{s}/invites", member["key"], json={"email": "x@y.example"}),
                  403)
    assert_detail(server.get(f"/orgs/{s}/invites", member["key"]), 403)

    # An admin manages members, not owners or admins, and cannot grant owner.
    r = role(admin, member, "admin")
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "admin" and r.json()["user_id"] == member["user_id"]
    assert_detail(role(admin, member, "member"), 403, "owner")
    assert_detail(role(admin, owner, "member"), 403)
    assert_detail(remove(admin, owner), 403)
    assert_detail(role(admin, admin, "owner"), 403)

    # An owner does anything, but the last owner stays.
    assert role(owner, member, "member").json()["role"] == "member"
    assert_detail(role(owner, owner, "admin"), 409, "owner")
    assert_detail(remove(owner, owner), 409, "owner")
    assert role(owner, admin, "owner").json()["role"] == "owner"
    assert role(admin, admin, "admin").json()["role"] == "admin"  # lowering oneself is allowed
    assert_detail(role(admin, admin, "owner"), 403)
    assert role(owner, admin, "owner").status_code == 200

    # Anyone may leave; an owner may leave once another owner exists.
    r = remove(member, member)
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Member removed", "org_id": org["id"],
                        "user_id": member["user_id"]}
    assert_detail(server.get(f"/orgs/{s}", member["key"]), 404)
    assert remove(owner, owner).status_code == 200
    assert_detail(role(admin, admin, "member"), 409, "owner")
    assert [m["role"] for m in server.get(f"/orgs/{s}/members", admin["key"]).json()["members"]] \
        == ["owner"]

    # Unknown ids and bad roles.
    assert_detail(server.patch(f"/orgs/{s}/members/{uuid.uuid4()}", admin["key"],
                               json={"role": "member"}), 404, "Member not found")
    assert_detail(remove(admin, member), 404, "Member not found")
    assert_422(role(admin, admin, "superuser"), ("body", "role"))
    assert_422(server.patch(f"/orgs/{s}/members/{admin['user_id']}", admin["key"], json={}),
               ("body", "role"))
    assert_422(server.patch(f"/orgs/{s}/members/{admin['user_id']}", admin["key"],
                            json={"role": 3}), ("body", "role"))


def test_removed_members_org_keys_stop_working(server):
    owner = server.new_user()
    org = create_org(server, owner)
    admin = join(server, owner, org, "admin")
    key = server.post(f"/orgs/{org['slug']}/api-keys", admin["key"], json={"name": "a"}).json()
    assert status_org(server, key["plaintext_key"]) == org["id"]
    assert server.delete(f"/orgs/{org['slug']}/members/{admin['user_id']}",
                         owner["key"]).status_code == 200
    assert_detail(server.get("/user/status", key["plaintext_key"]), 401)
    assert server.get(f"/orgs/{org['slug']}/api-keys", owner["key"]).json()["total"] == 0


# ---- org API keys and the org a request acts in -----------------------------------------

def test_org_api_keys(server):
    owner = server.new_user()
    org = create_org(server, owner)
    s = org["slug"]
    r = server.post(f"/orgs/{s}/api-keys", owner["key"], json={"name": "ci-runner"})
    assert r.status_code == 200, r.text
    k = r.json()
    assert {"id", "org_id", "name", "prefix", "plaintext_key", "created_at",
            "expires_at"} <= set(k)
    assert k["org_id"] == org["id"] and k["name"] == "ci-runner" and k["expires_at"] is None
    assert k["plaintext_key"].startswith("lk_") and len(k["plaintext_key"]) == 43
    assert k["prefix"] == k["plaintext_key"][:8]

    # The key works as a bearer token and acts in its org.
    key = k["plaintext_key"]
    st = server.get("/user/status", key).json()
    assert st["org_id"] == org["id"] and st["user_id"] == owner["user_id"]
    assert_detail(server.get("/user/status", key, headers={"X-Org-Slug": owner["org_slug"]}), 403)
    assert status_org(server, key, headers={"X-Org-Slug": s}) == org["id"]
    orgs = server.get("/orgs", key).json()
    assert [o["slug"] for o in orgs["organizations"]] == [s] and orgs["total"] == 1
    assert_detail(server.get(f"/orgs/{owner['org_slug']}", key), 404)
    assert server.get(f"/orgs/{s}/balance", key).status_code == 200
    # A key cannot mint keys, nor create orgs.
    assert_detail(server.post(f"/orgs/{s}/api-keys", key, json={"name": "x"}), 403)
    assert_detail(server.post("/orgs", key, json={"slug": new_slug(), "name": "x"}), 403)

    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).isoformat()
    k2 = server.post(f"/orgs/{s}/api-keys", owner["key"],
                     json={"name": "expiring", "expires_at": later}).json()
    assert k2["expires_at"] is not None

    r = server.get(f"/orgs/{s}/api-keys", owner["key"])
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"api_keys", "total"} and body["total"] == 2
    assert [x["id"] for x in body["api_keys"]] == [k2["id"], k["id"]]  # newest first
    for x in body["api_keys"]:
        assert "plaintext_key" not in x and x["org_id"] == org["id"]
        assert {"id", "name", "prefix", "is_active", "created_at", "expires_at"} <= set(x)
    assert key not in r.text
    # The caller's own user keys are not org keys.
    assert owner["key"][:8] not in [x["prefix"] for x in body["api_keys"]]

    r = server.delete(f"/orgs/{s}/api-keys/{k['id']}", owner["key"])
    assert r.status_code == 200 and r.json()["id"] == k["id"]
    assert_detail(server.get("/user/status", key), 401, "revoked")
    assert_detail(server.delete(f"/orgs/{s}/api-keys/{k['id']}", owner["key"]), 404,
                  "API key not found")
    assert server.get(f"/orgs/{s}/api-keys", owner["key"]).json()["total"] == 1

    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).isoformat()
    assert_422(server.post(f"/orgs/{s}/api-keys", owner["key"],
                           json={"name": "old", "expires_at": past}), ("body", "expires_at"))
    assert_422(server.post(f"/orgs/{s}/api-keys", owner["key"],
                           json={"name": "x", "expires_at": "tomorrow"}), ("body", "expires_at"))
    assert_422(server.post(f"/orgs/{s}/api-keys", owner["key"], json={}), ("body", "name"))
    assert_422(server.post(f"/orgs/{s}/api-keys", owner["key"], json={"name": "x" * 256}),
               ("body", "name"))


def test_org_resolution_order(server):
    owner = server.new_user()
    org = create_org(server, owner)
    u = join(server, owner, org, "member")
    outsider = server.new_user()
    # (3) no header: the default org; works the same with a JWT.
    assert status_org(server, u["key"]) == u["org_id"]
    jwt = server.login(u)["access_token"]
    assert status_org(server, jwt) == u["org_id"]
    # (2) X-Org-Slug with membership.
    assert status_org(server, jwt, headers={"X-Org-Slug": org["slug"]}) == org["id"]
    assert status_org(server, u["key"], headers={"X-Org-Slug": org["slug"]}) == org["id"]
    assert_detail(server.get("/user/status", jwt, headers={"X-Org-Slug": outsider["org_slug"]}),
                  403, "not a member")
    assert_detail(server.get("/user/status", jwt, headers={"X-Org-Slug": "no-such-org-x"}), 403)
    # (1) the org key's org, whatever the default.
    key = server.post(f"/orgs/{org['slug']}/api-keys", owner["key"],
                      json={"name": "k"}).json()["plaintext_key"]
    assert status_org(server, key) == org["id"]
    assert status_org(server, owner["key"]) == owner["org_id"]


# ---- tenants apart ----------------------------------------------------------------------

def test_tenants_are_apart(server):
    a, b = server.new_user(), server.new_user()
    oa, ob = create_org(server, a), create_org(server, b)
    ka = server.post(f"/orgs/{oa['slug']}/api-keys", a["key"], json={"name": "a"}).json()
    ia = server.post(f"/orgs/{oa['slug']}/invites", a["key"], json={"email": "ia@x.example"}).json()
    missing = server.get("/orgs/no-such-org-zz", b["key"])
    assert_detail(missing, 404, "Organization not found")

    s = oa["slug"]
    calls = [
        ("GET", f"/orgs/{s}", None), ("PATCH", f"/orgs/{s}", {"name": "pwned"}),
        ("DELETE", f"/orgs/{s}", None), ("GET", f"/orgs/{s}/members", None),
        ("PATCH", f"/orgs/{s}/members/{a['user_id']}", {"role": "member"}),
        ("DELETE", f"/orgs/{s}/members/{a['user_id']}", None),
        ("GET", f"/orgs/{s}/api-keys", None), ("POST", f"/orgs/{s}/api-keys", {"name": "x"}),
        ("DELETE", f"/orgs/{s}/api-keys/{ka['id']}", None),
        ("GET", f"/orgs/{s}/balance", None), ("GET", f"/orgs/{s}/transactions", None),
        ("GET", f"/orgs/{s}/invites", None),
        ("POST", f"/orgs/{s}/invites", {"email": "evil@x.example"}),
        ("DELETE", f"/orgs/{s}/invites/{ia['id']}", None),
    ]
    for method, path, body in calls:
        r = server.req(method, path, b["key"], json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == missing.json(), (method, path)
    # B's own org does not reach A's key or invite by id either.
    assert_detail(server.delete(f"/orgs/{ob['slug']}/api-keys/{ka['id']}", b["key"]), 404)
    assert_detail(server.delete(f"/orgs/{ob['slug']}/invites/{ia['id']}", b["key"]), 404)
    # Nor act in it.
    assert_detail(server.get("/user/status", b["key"], headers={"X-Org-Slug": s}), 403)
    # A's key and invite are intact; A's org unchanged.
    assert status_org(server, ka["plaintext_key"]) == oa["id"]
    assert server.get(f"/invites/{ia['token']}").status_code == 200
    assert server.get(f"/orgs/{s}", a["key"]).json()["name"] == oa["name"]


# ---- balance and ledger -----------------------------------------------------------------

def test_balance_and_transactions(server):
    owner = server.new_user()
    org = create_org(server, owner)
    s = org["slug"]
    member = join(server, owner, org)
    r = server.get(f"/orgs/{s}/balance", member["key"])
    assert r.status_code == 200
    assert r.json() == {"org_id": org["id"], "balance": "0.00", "account_suspended": False}

    server.cli("credits", "grant", s, "12.345678")
    server.cli("credits", "grant", s, "0.5", "--note", "top-up")
    assert server.get(f"/orgs/{s}/balance", member["key"]).json()["balance"] == "12.845678"
    # Another org is untouched.
    assert server.get(f"/orgs/{owner['org_slug']}/balance", owner["key"]).json()["balance"] \
        == "0.00"

    r = server.get(f"/orgs/{s}/transactions", member["key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2 and body["limit"] == 50 and body["offset"] == 0
    newest, oldest = body["transactions"]
    assert newest["amount"] == "0.50" and newest["balance_after"] == "12.845678"
    assert newest["description"] == "top-up" and newest["type"] == "grant"
    assert oldest["amount"] == "12.345678" and oldest["balance_after"] == "12.345678"
    assert {"id", "type", "amount", "description", "created_at", "balance_after"} <= set(oldest)

    page = server.get(f"/orgs/{s}/transactions?limit=1&offset=1", member["key"]).json()
    assert page["total"] == 2 and page["limit"] == 1 and page["offset"] == 1
    assert [t["id"] for t in page["transactions"]] == [oldest["id"]]

    assert_422(server.get(f"/orgs/{s}/transactions?limit=0", member["key"]), ("query", "limit"))
    assert_422(server.get(f"/orgs/{s}/transactions?limit=1001", member["key"]),
               ("query", "limit"))
    assert_422(server.get(f"/orgs/{s}/transactions?limit=abc&offset=-1", member["key"]),
               ("query", "limit"), ("query", "offset"))

    # The ledger cannot be edited: not over HTTP, and not in the database either.
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        assert_detail(server.req(method, f"/orgs/{s}/transactions", owner["key"], json={}), 405)
    db = sqlite3.connect(os.path.join(server.data, "lyceumd.db"))
    try:
        for sql in ("UPDATE ledger SET amount = 1 WHERE org_id = ?",
                    "DELETE FROM ledger WHERE org_id = ?"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql, (org["id"],))
    finally:
        db.close()
    assert server.get(f"/orgs/{s}/balance", owner["key"]).json()["balance"] == "12.845678"


def test_routes_are_documented(server):
    paths = server.get("/openapi.json").json()["paths"]
    for p in ("/orgs", "/orgs/{slug}", "/orgs/{slug}/members/{user_id}",
              "/orgs/{slug}/api-keys/{key_id}", "/orgs/{slug}/balance",
              "/orgs/{slug}/transactions", "/orgs/{slug}/invites/{invite_id}"):
        assert "/api/v2/external" + p in paths, p
    listed = paths["/api/v2/external/orgs"]["get"]["responses"]["200"]
    props = listed["content"]["application/json"]["schema"]["properties"]
    assert set(props) == {"organizations", "total"}
