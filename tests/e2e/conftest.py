"""Fixtures for the end-to-end tests: they start the real lyceumd binary (the sanitizer build,
LYCEUMD_BIN) on a free loopback port with a fresh data directory, create users through its own
CLI, and talk HTTP to it with requests. When the server stops, its stderr is checked for any
AddressSanitizer or UndefinedBehaviorSanitizer report, which fails the run."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

BIN = os.environ.get("LYCEUMD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "test", "lyceumd")
PREFIX = "/api/v2/external"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running lyceumd and helpers to reach it."""

    def __init__(self, extra_args=(), relative_data=False, env=None):
        self.env = dict(env or {})  # more environment for the server (e.g. a faked clock)
        self.data = tempfile.mkdtemp(prefix="lyceumd-e2e-")
        self.relative_data = relative_data  # --data given relative to the server's cwd
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.data, "server.log")
        self.extra_args = list(extra_args)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        env.update(self.env)
        cwd, data = ((os.path.dirname(self.data), os.path.basename(self.data))
                     if self.relative_data else (None, self.data))
        self.proc = subprocess.Popen(
            [os.path.abspath(BIN), "serve", "--listen", f"127.0.0.1:{self.port}", "--data", data,
             *self.extra_args], stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("lyceumd did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """Stops the server and fails if it crashed or a sanitizer reported anything."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("lyceumd did not stop on SIGTERM")
        self.log.close()
        log = self.read_log()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in log, f"sanitizer report in server log:\n{log[-6000:]}"
        assert self.proc.returncode == 0, f"lyceumd exited {self.proc.returncode}:\n{log[-3000:]}"

    def alive(self):
        return self.proc.poll() is None and \
            requests.get(self.base + "/health", timeout=5).status_code == 200

    # --- the operator's CLI on the same data directory -----------------------------------
    def cli(self, *args, stdin=None, check=True):
        r = subprocess.run([BIN, "--data", self.data, *args], input=stdin,
                           capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"lyceumd {' '.join(args)}: {r.stderr}"
        return r

    def new_user(self, credits=None, email=None, password=None, name=None):
        """Creates a user through the CLI; returns a dict with email, password, user_id,
        org_id, org_slug and a user API key ('key')."""
        email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
        password = password or "pw-" + uuid.uuid4().hex
        args = ["user", "add", email, "--password-stdin"]
        if credits is not None:
            args += ["--credits", str(credits)]
        if name:
            args += ["--name", name]
        out = json.loads(self.cli(*args, stdin=password + "\n").stdout)
        key = self.cli("key", "add", email, "test").stdout.strip()
        return dict(out, email=email, password=password, key=key)

    # --- HTTP -----------------------------------------------------------------------------
    def url(self, path):
        return self.base + (path if path.startswith("/api/") or path in (
            "/health", "/openapi.json") else PREFIX + path)

    def req(self, method, path, token=None, headers=None, **kw):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return requests.request(method, self.url(path), headers=h, timeout=30, **kw)

    def get(self, path, token=None, **kw):
        return self.req("GET", path, token, **kw)

    def post(self, path, token=None, **kw):
        return self.req("POST", path, token, **kw)

    def patch(self, path, token=None, **kw):
        return self.req("PATCH", path, token, **kw)

    def delete(self, path, token=None, **kw):
        return self.req("DELETE", path, token, **kw)

    def login(self, user):
        r = self.post("/auth/login", json={"email": user["email"], "password": user["password"]})
        assert r.status_code == 200, r.text
        return r.json()


# Skips that may happen on a machine CI runs on. Any other skip fails the run (pytest's
# status), so that a green run never hides a whole area that did not run. Today only the test
# of real GPU readings may skip: it needs an NVIDIA driver.
ALLOWED_SKIPS = ("no NVIDIA driver (NVML) on this machine",)
_unexpected_skips = []
_DOCKERD_PIDFILE = "/tmp/lyceumd-dockerd.pid"
_dockerd_ours = not os.path.exists(_DOCKERD_PIDFILE)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(a in reason for a in ALLOWED_SKIPS):
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    for line in _unexpected_skips:
        terminalreporter.write_line(f"UNEXPECTED SKIP (not in ALLOWED_SKIPS): {line}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips and exitstatus == 0:
        session.exitstatus = 1
    # A Docker engine this run started (scripts/dockerd.sh, from test_docker.py) is stopped.
    if _dockerd_ours and os.path.exists(_DOCKERD_PIDFILE):
        subprocess.run(["sh", os.path.join(os.path.dirname(__file__), "..", "..", "scripts",
                                           "dockerd.sh"), "stop"], capture_output=True)


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


@pytest.fixture
def fresh_server():
    """A server of its own, for tests that restart it or need an empty database."""
    s = Server()
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


@pytest.fixture
def user(server):
    return server.new_user(credits=10)


def assert_detail(r, status, contains=None):
    """A {"detail": "..."} error with the given status (and text, when given)."""
    assert r.status_code == status, f"want {status}, got {r.status_code}: {r.text}"
    body = r.json()
    assert isinstance(body.get("detail"), str), body
    if contains:
        assert contains.lower() in body["detail"].lower(), body
    return body


def assert_422(r, *locs):
    """A FastAPI validation error naming each loc given (as tuples)."""
    assert r.status_code == 422, f"want 422, got {r.status_code}: {r.text}"
    errs = r.json()["detail"]
    assert isinstance(errs, list) and errs, errs
    for e in errs:
        assert set(e) >= {"loc", "msg", "type"}, e
    got = [tuple(e["loc"]) for e in errs]
    for loc in locs:
        assert tuple(loc) in got, f"{loc} not in {got}"
    return errs
