"""The operator's command line, and what `make run` prints (serve --demo)."""

import json
import os
import shutil
import subprocess
import tempfile
import time

from conftest import BIN, Server, assert_detail


def test_help_everywhere():
    for args in (["--help"], ["serve", "--help"], ["user", "add", "--help"],
                 ["key", "add", "--help"], ["credits", "grant", "--help"]):
        r = subprocess.run([BIN, *args], capture_output=True, text=True)
        assert r.returncode == 0 and "usage: lyceumd" in r.stdout, (args, r.stderr)
    r = subprocess.run([BIN, "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_user_add_key_add_credits_grant(server):
    u = server.new_user(credits="3.25")
    assert u["org_slug"] and u["user_id"] and u["key"].startswith("lk_")
    r = server.cli("credits", "grant", u["org_slug"], "0.000001", "--note", "top-up")
    assert json.loads(r.stdout) == {"org_slug": u["org_slug"], "balance": "3.250001"}
    assert server.get("/user/status", u["key"]).json()["credit_balance"] == 3.250001
    # Errors are clear and change nothing.
    r = server.cli("credits", "grant", u["org_slug"], "1.0000001", check=False)
    assert r.returncode == 2 and "6 places" in r.stderr
    r = server.cli("credits", "grant", "no-such-org", "1", check=False)
    assert r.returncode == 1 and "no such organization" in r.stderr
    r = server.cli("user", "add", u["email"], "--password-stdin", stdin="long-enough\n",
                   check=False)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = server.cli("user", "add", "not-an-email", "--password-stdin", stdin="long-enough\n",
                   check=False)
    assert r.returncode == 1 and "email" in r.stderr
    r = server.cli("key", "add", "nobody@example.com", "k", check=False)
    assert r.returncode == 1 and "no such user" in r.stderr
    assert server.get("/user/status", u["key"]).json()["credit_balance"] == 3.250001


def test_generated_password_is_printed_and_works(server):
    r = server.cli("user", "add", "gen-pw@example.com")
    out = json.loads(r.stdout)
    tok = server.login({"email": "gen-pw@example.com", "password": out["password"]})
    assert tok["access_token"]


def test_demo_prints_what_works():
    s = Server(extra_args=["--demo"])
    try:
        deadline = time.time() + 10
        while "Try it:" not in s.read_log() and time.time() < deadline:
            time.sleep(0.05)
        log = s.read_log()
        lines = log.splitlines()
        email = next(l.split()[-1] for l in lines if "email:" in l)
        password = next(l.split()[-1] for l in lines if "password:" in l)
        curl = lines[lines.index("Try it:") + 1].strip()
        assert curl.startswith("curl ")
        r = subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30)
        status = json.loads(r.stdout)
        assert status["email"] == email == "demo@lyceumd.local"
        assert status["credit_balance"] == 100.0
        assert s.login({"email": email, "password": password})["access_token"]
        # A restart prints the same working credentials and creates nothing new.
        s.stop()
        s.start()
        time.sleep(0.5)
        assert s.read_log().count(password) >= 2
        assert s.login({"email": email, "password": password})
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_bad_listen_address_fails_clearly():
    d = tempfile.mkdtemp()
    try:
        r = subprocess.run([BIN, "serve", "--listen", "nonsense", "--data", d],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "listen" in r.stderr
    finally:
        shutil.rmtree(d)
