"""The web console (issue 17), served by the real lyceumd and driven in Debian's headless
Chromium by puppeteer-core (tests/e2e/console/drive.mjs): a new user signs in, enrols MFA and
signs in through it, launches a Python run and watches its output arrive live with its CPU
chart drawn, aborts a second run, sees a run's `<script>` and ANSI escapes as text, creates
and revokes an API key, uploads 50 MB with a progress bar and downloads it back identical,
redeems a voucher, and invites a member who accepts. Screenshots of every page go to
<build dir>/console-shots/ (build/ under `make test`). No part of the API is mocked.

The serving itself is checked over plain HTTP too: the Content-Security-Policy, content
types, ETags and 304s, gzip, and index.html for the console's client-side paths."""

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from conftest import BIN, PREFIX, Server
from runs_util import write_config

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "console")
CHROMIUM = "/usr/bin/chromium"
# The build directory of the binary under test (build/test/lyceumd -> build/).
BUILD = os.path.dirname(os.path.dirname(os.path.abspath(BIN)))
SHOTS = os.path.join(BUILD, "console-shots")
MACHINES = [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 4}]

LIVE_CODE = ("import time\nfor i in range(12):\n    print(f'tick {i}', flush=True)\n"
             "    t = time.time()\n    while time.time() - t < 1:\n        pass\n"
             "print('done')\n")
HOSTILE_CODE = ("print('<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>"
                "<b>bold?</b>')\n"
                "print('\\x1b[31mred\\x1b[0m \\x1b[1mstrong\\x1b[0m \\x1b]0;title\\x07\\x1b[2J END')\n")


def npm_ci():
    if not os.path.isdir(os.path.join(DRIVER, "node_modules", "puppeteer-core")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=DRIVER,
                       check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def cs():
    cfg = write_config(MACHINES, metrics_interval_seconds=1)
    s = Server(["--config", cfg])
    yield s
    s.stop()


def test_the_console_is_served_with_a_strict_policy(cs):
    r = requests.get(cs.base + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-cache"
    page = r.text
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    assets = re.findall(r'(?:src|href)="(/console/app-[0-9a-f]{12}\.(?:js|css))"', page)
    assert len(assets) == 2, page
    for a in assets:
        got = requests.get(cs.base + a, headers={"Accept-Encoding": "identity"}, timeout=10)
        assert got.status_code == 200 and len(got.content) > 1000
        assert "Content-Encoding" not in got.headers
        assert got.headers["Content-Type"] == ("text/javascript; charset=utf-8" if a.endswith(".js")
                                               else "text/css; charset=utf-8")
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        # Revalidation: the ETag answers 304 with no body.
        again = requests.get(cs.base + a, headers={"If-None-Match": got.headers["ETag"],
                                                "Accept-Encoding": "identity"},
                             timeout=10)
        assert again.status_code == 304 and again.content == b""
        # gzip, made at build time, when the client takes it.
        raw = requests.get(cs.base + a, headers={"Accept-Encoding": "gzip"}, stream=True,
                           timeout=10)
        assert raw.headers["Content-Encoding"] == "gzip"
        body = raw.raw.read()
        assert gzip.decompress(body) == got.content and len(body) < len(got.content)
        assert raw.headers["ETag"] != got.headers["ETag"]
    # The console's own paths answer the page, for a reload; others stay the API's 404s.
    for path in ("/runs", "/runs/" + str(uuid.uuid4()), "/storage", "/settings", "/billing",
                 "/inference", "/operators", "/signin", "/invite/sometoken"):
        got = requests.get(cs.base + path, timeout=10)
        assert got.status_code == 200 and got.text == page, path
    assert requests.get(cs.base + "/console/nothing.js", timeout=10).status_code == 404
    assert requests.get(cs.base + "/console/index.html", timeout=10).status_code == 404
    nf = requests.get(cs.base + "/no/such/page", timeout=10)
    assert nf.status_code == 404 and nf.json() == {"detail": "Not Found"}
    assert requests.get(cs.base + "/health", timeout=10).json() == {"status": "ok"}
    # The invite path holds a token: the access log shows the pattern only.
    assert "/invite/sometoken" not in cs.read_log()
    # The console's pages are pages, not the API: /openapi.json describes only the API.
    paths = requests.get(cs.base + "/openapi.json", timeout=10).json()["paths"]
    assert not [p for p in paths if p in ("/", "/runs", "/signin") or p.startswith("/console/")
                or p.startswith("/invite/")], sorted(paths)[:20]
    assert "/api/v2/external/execution/streaming/start" in paths


def test_a_person_uses_the_console(cs, tmp_path):
    assert os.path.exists(CHROMIUM), "chromium is missing: scripts/deps.sh test installs it"
    npm_ci()
    u = cs.new_user(credits=20)
    code = "CONSOLE" + uuid.uuid4().hex[:8].upper()
    cs.cli("voucher", "add", code, "7")
    upload = tmp_path / "fifty.bin"
    with open(upload, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1 << 20))
    downloads = tmp_path / "downloads"
    shutil.rmtree(SHOTS, ignore_errors=True)
    invitee = f"i{uuid.uuid4().hex[:10]}@example.com"
    existing = cs.new_user()
    cfg = dict(base=cs.base, email=u["email"], password=u["password"], voucher=code,
               upload=str(upload), downloads=str(downloads), shots=SHOTS,
               invitee_email=invitee, invitee_password="pw-" + uuid.uuid4().hex,
               existing_email=existing["email"], existing_password=existing["password"],
               live_code=LIVE_CODE, hostile_code=HOSTILE_CODE,
               other_org="other-" + uuid.uuid4().hex[:8], secret_value="s3cr3t-" + uuid.uuid4().hex)
    p = subprocess.run(["node", os.path.join(DRIVER, "drive.mjs"), json.dumps(cfg)],
                       capture_output=True, text=True, timeout=900, cwd=DRIVER)
    lines = p.stdout.strip().splitlines()
    assert lines, f"the driver printed nothing:\n{p.stderr[-4000:]}"
    out = json.loads(lines[-1])
    assert out.get("ok"), f"step {out.get('failed')!r} failed: {out.get('error')}\n{p.stderr[-4000:]}"
    assert out["page_errors"] == [] and out["csp_violations"] == [], out

    # Signed in, and a reload kept it so: only the refresh token is kept (in IndexedDB, which
    # every tab reads alike), localStorage holds no token, and no URL does.
    assert out["path_after_signin"] == "/runs"
    assert out["refresh_kept"]
    assert set(out["local_storage"]) <= {"lyceumd.signed_in", "lyceumd.org"}, out["local_storage"]
    assert "eyJ" not in json.dumps(out["local_storage"])
    assert not out["access_in_url"]
    assert "eyJ" not in cs.read_log()  # no JWT in any path the access log shows
    # MFA: a QR code was drawn, ten backup codes shown, and the second sign-in needed one.
    assert out["qr_drawn"] and len(out["backup_codes"]) == 10
    st = cs.get("/mfa/status", u["key"]).json()
    assert st["enabled"] and st["backup_codes_remaining"] == 9

    # The live run: its first line was on the page while it ran, the CPU chart had data.
    assert out["live_first_seen_running"], out
    assert out["cpu_points_while_running"] >= 2 and out["cpu_canvas_inked"] > 20, out
    assert [f"tick {i}" for i in range(12)] == re.findall(r"tick \d+", out["live_output"])
    r = cs.get(f"/execution/{out['live_run']}", u["key"]).json()
    assert r["status"] == "completed"
    metrics = cs.get(f"/execution/{out['live_run']}/metrics", u["key"]).json()
    assert any(pt["value"] > 20 for pt in metrics["systemCpuUsagePercent"]), metrics
    assert cs.get(f"/execution/{out['abort_run']}", u["key"]).json()["status"] == "aborted"
    # Stop: SIGTERM first (the run saw it and said so), then the run ended.
    stopped = cs.get(f"/execution/{out['stop_run']}", u["key"]).json()
    assert stopped["status"] == out["stop_status"] and "got SIGTERM" in stopped["stdout"], stopped

    # The org switcher: the new org (the user owns it) has no runs; X-Org-Slug did that.
    assert out["home_org"] == u["org_slug"] and out["other_org_rows"] == 0
    orgs = {o["slug"]: o for o in cs.get("/orgs", u["key"]).json()["organizations"]}
    assert orgs[cfg["other_org"]]["role"] == "owner"

    # Hostile output is text: no element but the colour spans, nothing ran.
    h = out["hostile"]
    assert "<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1><b>bold?</b>" \
        in h["text"]
    assert set(h["elements"]) <= {"span"} and not h["pwned"], h
    assert h["red"] == ["red"] and h["bold"] == ["strong"], h
    assert "\x1b" not in h["text"] and "title" not in h["text"], h
    assert len(out["runs_rows"]) >= 4 and any("aborted" in row for row in out["runs_rows"])

    # The API key was real while it lived, and is revoked now.
    assert out["api_key"].startswith("lk_")
    assert cs.get("/user/status", out["api_key"]).status_code == 401
    assert all(k["key_name"] != "console-key" for k in cs.get("/auth/api-keys/", u["key"]).json())

    # A secret is masked once saved (the page holds it nowhere), and runs get it.
    assert "CONSOLE_SECRET" in out["env_row"] and "*" in out["env_row"], out["env_row"]
    assert not out["secret_on_page"]
    run = cs.post("/execution/streaming/start", u["key"], json={
        "code": "import os; print(os.environ['CONSOLE_SECRET'])"}).json()
    deadline = time.time() + 60
    while time.time() < deadline:
        got = cs.get(f"/execution/{run['execution_id']}", u["key"]).json()
        if got["status"] in ("completed", "failed", "system_failure"):
            break
        time.sleep(0.2)
    assert got["status"] == "completed" and cfg["secret_value"] in got["stdout"], got

    # 50 MB up with the bar moving through values between empty and full, and back identical.
    total = os.path.getsize(upload)
    between = {v for v, m in out["progress"] if 0 < v < total and m == total}
    assert len(between) >= 2, out["progress"][:50]
    digest = lambda path: hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert digest(out["downloaded"]) == digest(upload)
    files = cs.get("/storage/list-files", u["key"]).json()
    assert [f["size"] for f in files if f["key"] == "fifty.bin"] == [total]
    dropped = cs.get("/storage/download/dropped.txt", u["key"])
    assert dropped.status_code == 200 and dropped.content == b"dropped in\n"
    assert "aws --endpoint-url" in out["aws_cmd"] and "s3 ls s3://" in out["aws_cmd"]

    # The voucher's 7 credits: the balance shown went up by them.
    before = float(out["balance_before"].lstrip("$"))
    after = float(out["balance_after"].lstrip("$"))
    assert round(after - before, 2) == 7.0, out

    # The invitee has an account and is a member of the user's org.
    members = cs.get(f"/orgs/{u['org_slug']}/members", u["key"]).json()["members"]
    assert invitee in [m["email"] for m in members]
    assert existing["email"] in [m["email"] for m in members]  # the one who had an account
    assert out["invitee_org"] == u["org_slug"]
    assert [row[0] for row in out["capacity"]] == ["cpu"]

    # The console spoke only to the API (and the public /health and /metrics), and put no
    # credential in any URL.
    calls = [q for q in out["requests"] if q["type"] in ("xhr", "fetch")]
    assert calls
    for q in calls:
        path = q["url"].split(cs.base, 1)[1]
        assert path.startswith(PREFIX + "/") or path in ("/health", "/metrics"), q
    for q in out["requests"]:
        assert "eyJ" not in q["url"] and "lk_" not in q["url"], q
        assert "refresh_token" not in q["url"] and "access_token" not in q["url"], q
        assert "token=" not in q["url"], q  # the run's stream too: credentials in the header

    # A picture of each page, for a person to look at.
    shots = sorted(os.listdir(SHOTS))
    for name in ("01-signin", "02-settings-mfa-enrol", "03-signin-mfa", "04-runs-launch",
                 "05-run-live", "06-run-aborted", "07-run-hostile", "08-runs",
                 "09-runs-other-org", "10-settings-key", "12-storage-uploaded",
                 "13-storage-credentials", "14-billing", "16-invite", "17-settings-members",
                 "18-inference", "19-operators"):
        assert name + ".png" in shots, shots
    assert "failure.png" not in shots


def test_the_chat_playground_streams_from_a_deployment():
    """A deployment of the tiny model made on the inference page, a prompt in the playground,
    the reply growing on the page as its tokens stream in, and the deployment stopped."""
    import inference_util as iu
    npm_ci()
    s = Server(["--config", iu.config()])
    try:
        iu.add_model(s)
        u = s.new_user(credits=20)
        os.makedirs(SHOTS, exist_ok=True)
        cfg = dict(base=s.base, email=u["email"], password=u["password"], model="tiny",
                   shots=SHOTS)
        p = subprocess.run(["node", os.path.join(DRIVER, "playground.mjs"), json.dumps(cfg)],
                           capture_output=True, text=True, timeout=600, cwd=DRIVER)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        assert out.get("ok"), (out, p.stderr[-3000:])
        assert out["page_errors"] == [] and out["csp_violations"] == [] and not out["error"]
        assert out["reply"].startswith("assistant:") and len(out["reply"]) > len("assistant: ")
        grown = sorted(set(out["reply_lengths"]))
        assert len(grown) >= 3, out  # it grew token by token, not in one piece
        deps = s.get("/inference/list", u["key"]).json()
        items = deps if isinstance(deps, list) else deps.get("deployments", deps.get("data"))
        assert all(d["status"] != "running" for d in items), deps  # stopped ones leave the list
    finally:
        s.stop()
