"""lyceumd as a service (issue 19): what it tells systemd through sd_notify (READY=1 once it
answers, watchdog pings while it answers, STOPPING=1), read from a notify socket of the test's
own since systemd is not PID 1 here; and the Debian package (make deb): lintian finds no
error, it installs (the system user, the data directory, the unit, the conffile), the unit's
own ExecStart serves, an upgrade from the previous build keeps the data and the operator's
config, remove keeps the data and purge removes it."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

import conftest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Notify:
    """A unix datagram socket that stands where systemd's would."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lyceumd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []  # (time, {key: value})

    def read(self, until, timeout=20):
        """Reads messages until until(messages) is true; returns them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if until(self.messages):
                return self.messages
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
            self.messages.append((time.time(), fields))
        raise AssertionError(f"notify: not seen; got {self.messages}")

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def has(key, count=1):
    return lambda ms: sum(1 for _, m in ms if key in m) >= count


def serve(argv, notify, data, watchdog_usec=None, binary=None):
    env = dict(os.environ, NOTIFY_SOCKET=notify.path,
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    env.pop("WATCHDOG_PID", None)
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    log = open(os.path.join(data, "service.log"), "ab")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_sd_notify_ready_watchdog_stopping():
    notify = Notify()
    data = tempfile.mkdtemp(prefix="lyceumd-svc-")
    port = conftest.free_port()
    p = serve([conftest.BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data", data],
              notify, data, watchdog_usec=400000)
    try:
        ms = notify.read(has("READY"))
        # READY=1 is said once the server answers, and says so.
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        ready = [m for _, m in ms if "READY" in m][0]
        assert ready["READY"] == "1" and f"127.0.0.1:{port}" in ready["STATUS"]
        assert int(ready["MAINPID"]) == p.pid
        # The watchdog is pinged at half its interval while /health answers.
        t0 = time.time()
        ms = notify.read(has("WATCHDOG", 5), timeout=10)
        pings = [t for t, m in ms if m.get("WATCHDOG") == "1"]
        assert len(pings) >= 5 and pings[-1] - pings[-5] < 2.0, pings
        assert time.time() - t0 < 5
        p.terminate()
        ms = notify.read(has("STOPPING"))
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        notify.close()
        with open(os.path.join(data, "service.log"), errors="replace") as f:
            log = f.read()
        shutil.rmtree(data, ignore_errors=True)
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log, log[-4000:]


def test_without_notify_socket_nothing_is_said():
    # Outside systemd the server serves as before (the e2e suite's servers all run so), and a
    # NOTIFY_SOCKET that points nowhere does not stop it from serving.
    data = tempfile.mkdtemp(prefix="lyceumd-svc-")
    port = conftest.free_port()
    env = dict(os.environ, NOTIFY_SOCKET=os.path.join(data, "nobody-listens"))
    p = subprocess.Popen([conftest.BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data", data],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        p.terminate()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(data, ignore_errors=True)


# --- the Debian package ---------------------------------------------------------------------

def release_build_dir():
    """The build directory of the binary under test (make test builds B/lyceumd beside
    B/test/lyceumd); the package is made of the release binary."""
    b = os.path.dirname(os.path.dirname(os.path.abspath(conftest.BIN)))
    assert os.access(os.path.join(b, "lyceumd"), os.X_OK), \
        f"no release binary at {b}/lyceumd to package (make {b}/lyceumd)"
    return b


def build_deb(version):
    b = release_build_dir()
    r = subprocess.run(["sh", "scripts/deb.sh"], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, B=os.path.relpath(b, ROOT), DEB_VERSION=version),
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return os.path.join(ROOT, r.stdout.strip().splitlines()[-1])


def dpkg(*args):
    r = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"dpkg {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "lyceumd"],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def exec_start():
    """The unit's ExecStart, as systemd would run it."""
    with open("/lib/systemd/system/lyceumd.service") as f:
        unit = f.read()
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    return shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))


def run_service(notify):
    p = serve(exec_start(), notify, "/var/lib/lyceumd", watchdog_usec=2000000)
    notify.messages.clear()
    notify.read(has("READY"))
    return p


def stop_service(p, notify):
    p.terminate()
    notify.read(has("STOPPING"))
    assert p.wait(timeout=60) == 0


def test_package_install_upgrade_remove_purge():
    assert not installed().startswith("install ok"), \
        "lyceumd is installed as a package on this machine already: remove it to run this test"
    assert not os.path.exists("/var/lib/lyceumd"), \
        "/var/lib/lyceumd exists and is not the test's: move it away to run this test"
    prev = build_deb("0.0.9~prev")
    cur = build_deb("0.1.0")
    r = subprocess.run(["lintian", "--fail-on", "error", cur], capture_output=True, text=True)
    assert r.returncode == 0 and not re.search(r"^E: ", r.stdout, re.M), r.stdout + r.stderr
    notify = Notify()
    port = conftest.free_port()
    try:
        dpkg("-i", prev)
        assert installed() == "install ok installed 0.0.9~prev"
        assert os.access("/usr/bin/lyceumd", os.X_OK)
        assert subprocess.run(["getent", "passwd", "lyceumd"], capture_output=True).returncode == 0
        assert oct(os.stat("/var/lib/lyceumd").st_mode & 0o777) == "0o700"
        assert os.path.exists("/usr/share/man/man8/lyceumd.8.gz")
        assert os.path.exists("/lib/systemd/system/lyceumd.service")
        # The operator edits the conffile (their port), as they would.
        with open("/etc/lyceumd/config.json") as f:
            cfg = json.load(f)
        cfg["listen"] = f"127.0.0.1:{port}"
        with open("/etc/lyceumd/config.json", "w") as f:
            json.dump(cfg, f)
        p = run_service(notify)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/health", timeout=5).status_code == 200
        add = subprocess.run(["lyceumd", "--data", "/var/lib/lyceumd", "user", "add",
                              "ops@example.com", "--password-stdin", "--credits", "5"],
                             input="operator-pass-1\n", capture_output=True, text=True)
        assert add.returncode == 0, add.stderr
        stop_service(p, notify)

        # Upgrade: the data and the operator's config stay.
        dpkg("-i", cur)
        assert installed() == "install ok installed 0.1.0"
        with open("/etc/lyceumd/config.json") as f:
            assert json.load(f)["listen"] == f"127.0.0.1:{port}"
        p = run_service(notify)
        r = requests.post(base + "/api/v2/external/auth/login", timeout=10,
                          json={"email": "ops@example.com", "password": "operator-pass-1"})
        assert r.status_code == 200, r.text
        stop_service(p, notify)

        # Remove keeps the data; purge removes it and the config.
        dpkg("-r", "lyceumd")
        assert not os.path.exists("/usr/bin/lyceumd")
        assert os.path.exists("/var/lib/lyceumd/lyceumd.db")
        dpkg("--purge", "lyceumd")
        assert installed() == "" or "not-installed" in installed()
        assert not os.path.exists("/var/lib/lyceumd")
        assert not os.path.exists("/etc/lyceumd")
    finally:
        notify.close()
        if installed():
            subprocess.run(["dpkg", "--purge", "lyceumd"], capture_output=True)
        shutil.rmtree("/var/lib/lyceumd", ignore_errors=True)
        for d in (prev, cur):
            os.unlink(d)


# --- lyceumd doctor -------------------------------------------------------------------------

def doctor(*args, config=None):
    data = tempfile.mkdtemp(prefix="lyceumd-doctor-")
    argv = [conftest.BIN, "--data", data]
    if config is not None:
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        argv += ["--config", path]
    r = subprocess.run(argv + ["doctor", *args], capture_output=True, text=True, timeout=120)
    shutil.rmtree(data, ignore_errors=True)
    lines = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^  (ok|warn|FAIL)\s+(\S+)\s+(.*)$", line)
        if m:
            lines[m.group(2)] = (m.group(1), m.group(3))
    return r, lines


def test_doctor_says_what_works_and_what_to_fix():
    r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "dockerd.sh"), "start"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r, lines = doctor()
    assert r.returncode == 0, r.stdout + r.stderr
    for check in ("disk", "listen", "bubblewrap", "slirp4netns", "cgroups", "python", "docker",
                  "nvml", "kvm", "slurm", "clock"):
        assert check in lines, (check, r.stdout)
    # What this machine has, as the tests themselves rely on it.
    for check in ("bubblewrap", "slirp4netns", "cgroups", "python", "docker"):
        assert lines[check][0] == "ok", (check, lines[check])
    # The disk figure is the data directory's filesystem's.
    st = os.statvfs(tempfile.gettempdir())
    free = float(re.search(r"([\d.]+) GiB free", lines["disk"][1]).group(1))
    assert abs(free - st.f_bavail * st.f_frsize / 2**30) < 1.0
    assert ("driver" in lines["nvml"][1]) or lines["nvml"][0] == "ok"

    # What is configured but does not work is a failure, with what to do.
    port = conftest.free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        r, lines = doctor(config={
            "listen": f"127.0.0.1:{port}",
            "docker_socket": "/nonexistent/docker.sock",
            "python": "/nonexistent/python3",
            "slurm": {"rest_url": f"http://127.0.0.1:{conftest.free_port()}",
                      "jwt_key": "/nonexistent/jwt_hs256.key",
                      "shared_dir": tempfile.gettempdir()}})
    assert r.returncode == 1, r.stdout
    assert lines["listen"][0] == "warn" and "in use" in lines["listen"][1]
    assert lines["docker"][0] == "warn" and "docker_socket" in lines["docker"][1]
    assert lines["python"][0] == "FAIL" and "apt install" in lines["python"][1]
    assert lines["slurm"][0] == "FAIL" and "does not answer" in lines["slurm"][1]
    assert re.search(r"\d+ ok, \d+ to look at, [1-9]\d* to fix", r.stdout)
