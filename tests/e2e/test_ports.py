"""The port proxy: `lyceum notebook launch` starts Jupyter in a Docker run and prints
https://{execution_id}-8888.port.<host>/?token=...; with "port_domain" set, lyceumd serves such
host names by relaying to that port of the run's container (its own loopback, reached from
inside the container's network namespace: containers have no network of the host's).

The app in the container is port_app.py, a Jupyter-like HTTP + WebSocket server, in an image
made here from the host's /usr/bin/python3.11 and its standard library (docker import). It is
driven by a real WebSocket client (python3-websocket) and by requests, with the Host header a
browser would send."""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
import websocket

from conftest import BIN, Server, assert_detail
from runs_util import start, wait_end, wait_status

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAIN = "port.lyceum.test"
with open(os.path.join(HERE, "port_app.py"), "rb") as _f:  # a new app makes a new image
    IMAGE = "lyceumd-test/pyapp:" + hashlib.sha256(_f.read()).hexdigest()[:12]
APP_PORT = 8888
SKIP_STDLIB = {"test", "idlelib", "tkinter", "lib2to3", "ensurepip", "pydoc_data", "distutils",
               "site-packages", "dist-packages", "__pycache__", "unittest", "asyncio",
               "turtledemo", "venv", "lib-dynload", "sqlite3", "curses", "dbm"}


def build_image():
    """An image holding the host's python3.11 (with the libraries ldd names), its standard
    library and port_app.py, imported into the engine once."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return
    root = tempfile.mkdtemp(prefix="lyceumd-pyapp-")
    try:
        py = os.path.realpath("/usr/bin/python3.11")
        libs = [py]
        for line in subprocess.run(["ldd", py], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            parts = line.split()
            path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
            if path.startswith("/"):
                libs.append(path)
        for src in libs:
            dst = root + os.path.realpath(src)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.realpath(src), dst)
            if os.path.realpath(src) != src:  # the name ldd gives (a link) too
                os.makedirs(os.path.dirname(root + src), exist_ok=True)
                if not os.path.exists(root + src):
                    shutil.copy2(os.path.realpath(src), root + src)
        os.makedirs(root + "/usr/bin", exist_ok=True)
        shutil.copy2(py, root + "/usr/bin/python3")
        shutil.copytree("/usr/lib/python3.11", root + "/usr/lib/python3.11",
                        ignore=lambda d, names: [n for n in names if n in SKIP_STDLIB or
                                                 n.startswith("config-")])
        os.makedirs(root + "/app")
        shutil.copy2(os.path.join(HERE, "port_app.py"), root + "/app/port_app.py")
        os.makedirs(root + "/tmp")
        os.chmod(root + "/tmp", 0o1777)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        r = subprocess.run(["docker", "import", "-c", "ENV PATH=/usr/bin", "-", IMAGE],
                           stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_engine():
    return subprocess.run(["sh", os.path.join(HERE, "..", "..", "scripts", "dockerd.sh"), "start"],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def engine():
    r = start_engine()
    if r.returncode != 0 and "pid file found" in r.stdout + r.stderr:
        # An engine another test file stopped is still on its way out: start once it is gone.
        try:
            with open("/var/run/docker.pid") as f:
                pid = int(f.read().strip())
            for _ in range(600):
                os.kill(pid, 0)
                threading.Event().wait(0.05)
        except (OSError, ValueError):
            pass
        r = start_engine()
    if r.returncode != 0:
        pytest.fail("no Docker engine can run here: " + (r.stdout + r.stderr).strip())
    build_image()
    yield


@pytest.fixture(scope="module")
def ps(engine):
    """lyceumd with a port domain, and one HTTP thread: a request waiting for the app must not
    hold up any other."""
    fd, cfg = tempfile.mkstemp(prefix="lyceumd-config-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"port_domain": DOMAIN.upper(), "threads": 1}, f)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    os.unlink(cfg)
    shutil.rmtree(s.data, ignore_errors=True)


def host(run_id, port=APP_PORT):
    return f"{run_id}-{port}.{DOMAIN}"


def via(s, run_id, path, method="GET", port=APP_PORT, headers=None, **kw):
    """A request as a browser sends it to http://<run>-<port>.<domain>:<lyceumd's port>."""
    h = {"Host": f"{host(run_id, port)}:{s.port}"}
    h.update(headers or {})
    return requests.request(method, s.base + path, headers=h, timeout=30, **kw)


def start_app(s, key):
    r = s.post("/execution/image/start", key,
               json=dict(docker_image_ref=IMAGE, timeout=600,
                         docker_run_cmd=["python3", "-I", "-S", "/app/port_app.py",
                                         str(APP_PORT)]))
    assert r.status_code == 200, r.text
    run_id = r.json()["execution_id"]
    wait_status(s, key, run_id, "running", timeout=60)
    # The container runs; its app opens its port a moment later (until then: 502).
    for _ in range(600):
        r = via(s, run_id, "/")
        if r.status_code == 200:
            return run_id
        assert r.status_code == 502 and "Nothing listens on port 8888" in r.json()["detail"], \
            r.text
        threading.Event().wait(0.05)
    raise AssertionError("the app never answered: " + r.text)


@pytest.fixture(scope="module")
def app(ps):
    owner = ps.new_user(credits=100)
    run_id = start_app(ps, owner["key"])
    yield dict(owner=owner, run=run_id)
    ps.post(f"/workloads/abort/{run_id}", owner["key"])


def ws_url(s, path):
    return f"ws://127.0.0.1:{s.port}{path}"


def test_http_through_the_proxy_reaches_the_app_without_lyceumd_credentials(ps, app):
    r = via(ps, app["run"], "/")
    assert r.status_code == 200 and r.text == "<html><body>jupyter-like</body></html>"
    assert r.headers["Content-Type"] == "text/html"

    # POST with a JSON body, the owner's key, the org header and a Jupyter token of the app's
    # own: the app gets the body, its own headers and the target as sent, never the key.
    r = via(ps, app["run"], "/api/echo/a%2Fb%20c?token=lyceum&x=a%2Fb", "POST",
            headers={"Authorization": "Bearer " + app["owner"]["key"],
                     "X-Org-Slug": app["owner"]["org_slug"], "X-Notebook": "nb1"},
            json={"cells": [1, 2, 3]})
    assert r.status_code == 200, r.text
    seen = r.json()
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"cells": [1, 2, 3]}
    assert seen["target"] == "/api/echo/a%2Fb%20c?token=lyceum&x=a%2Fb"
    assert headers["x-notebook"] == "nb1" and headers["host"] == f"{host(app['run'])}:{ps.port}"
    assert "authorization" not in headers and "x-org-slug" not in headers
    assert app["owner"]["key"] not in r.text
    # The app's answer comes back with its headers (both cookies).
    assert r.headers["X-App"] == "jupyter-like"
    assert sorted(r.raw.headers.getlist("Set-Cookie")) == ["a=1; Path=/", "b=2; Path=/"]

    # Jupyter's own credentials ("token ...") are the app's: they go through.
    r = via(ps, app["run"], "/api/echo", "PUT", headers={"Authorization": "token lyceum"},
            data=b"x" * 100000)
    seen = r.json()
    assert dict((k.lower(), v) for k, v in seen["headers"])["authorization"] == "token lyceum"
    assert seen["method"] == "PUT" and seen["body"] == "x" * 100000

    # Paths of lyceumd's own API on a port host are the app's too.
    r = via(ps, app["run"], "/api/v2/external/user/status",
            headers={"Authorization": "Bearer " + app["owner"]["key"]})
    assert r.status_code == 200 and r.json()["target"] == "/api/v2/external/user/status"

    # A cached page: 304 with no body, on a connection that serves the next request too.
    with requests.Session() as session:
        h = {"Host": host(app["run"])}
        r = session.get(ps.base + "/cached", headers=h, timeout=30)
        assert r.status_code == 200 and r.text == "cached page" and r.headers["ETag"] == '"v1"'
        r = session.get(ps.base + "/cached", headers=dict(h, **{"If-None-Match": '"v1"'}),
                        timeout=30)
        assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == '"v1"'
        assert session.get(ps.base + "/", headers=h, timeout=30).text.endswith("</html>")

    # The app's 404 is its own, and HEAD has no body.
    r = via(ps, app["run"], "/nope")
    assert r.status_code == 404 and r.json() == {"detail": "no such page in the app"}
    r = via(ps, app["run"], "/", "HEAD")
    assert r.status_code == 200 and r.content == b""


def test_a_long_answer_is_streamed_whole(ps, app):
    n = 5 * 1024 * 1024 + 7
    r = via(ps, app["run"], f"/big?n={n}", stream=True)
    assert r.status_code == 200
    got = hashlib.sha256()
    size = 0
    for piece in r.iter_content(65536):
        got.update(piece)
        size += len(piece)
    pattern = bytes(range(256)) * 256
    want = hashlib.sha256()
    left = n
    while left:
        piece = pattern[:min(left, len(pattern) - 7)]
        want.update(piece)
        left -= len(piece)
    assert size == n and got.hexdigest() == want.hexdigest()


def test_a_waiting_request_holds_up_nothing_else(ps, app):
    """lyceumd runs one HTTP thread here: /hold waits in the app until /release is asked,
    which only works if the thread is not stuck with the first."""
    out = {}

    def hold():
        out["r"] = via(ps, app["run"], "/hold")

    t = threading.Thread(target=hold)
    t.start()
    assert ps.get("/health").status_code == 200
    assert via(ps, app["run"], "/release").json() == {"released": True}
    t.join(60)
    assert out["r"].status_code == 200 and out["r"].json() == {"held": "done"}


def test_a_websocket_echoes_through_the_proxy(ps, app):
    ws = websocket.create_connection(
        ws_url(ps, "/api/kernels/k1/channels?token=lyceum"), host=host(app["run"]),
        header=["Authorization: Bearer " + app["owner"]["key"]], timeout=30)
    try:
        ws.send("hello kernel")
        assert ws.recv() == "hello kernel"
        blob = os.urandom(300000)  # past every buffer of the relay
        ws.send_binary(blob)
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and data == blob
        for i in range(20):
            ws.send(json.dumps({"msg_id": i}))
        assert [json.loads(ws.recv())["msg_id"] for _ in range(20)] == list(range(20))
        ws.ping(b"are you there")
        opcode, data = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and data.data == b"are you there"
    finally:
        ws.close()
    # Without credentials (a browser): the execution id is the capability.
    ws = websocket.create_connection(ws_url(ps, "/api/kernels/k2/channels"),
                                     host=host(app["run"]), timeout=30)
    ws.send("again")
    assert ws.recv() == "again"
    ws.close()


def test_a_runs_connections_are_bounded(ps, app):
    """At most 64 exchanges with one run's ports at once; the next is 503 until one ends."""
    socks = [websocket.create_connection(ws_url(ps, f"/api/kernels/k{i}/channels"),
                                         host=host(app["run"]), timeout=30) for i in range(64)]
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(ws_url(ps, "/api/kernels/x/channels"),
                                        host=host(app["run"]), timeout=30)
        assert e.value.status_code == 503
        r = via(ps, app["run"], "/")
        assert_detail(r, 503, f"Run {app['run']} has 64 connections to its ports open already")
        assert r.headers["Retry-After"]
        socks[0].send("still here")
        assert socks[0].recv() == "still here"
        socks.pop().close()
        for _ in range(600):  # the closed one is given back as soon as the relay sees it end
            r = via(ps, app["run"], "/")
            if r.status_code == 200:
                break
            assert r.status_code == 503
            threading.Event().wait(0.05)
        assert r.status_code == 200 and "jupyter-like" in r.text
    finally:
        for ws in socks:
            ws.close()


def test_another_orgs_credentials_are_refused(ps, app):
    other = ps.new_user(credits=10)
    r = via(ps, app["run"], "/api/echo", headers={"Authorization": "Bearer " + other["key"]})
    assert_detail(r, 404, "Execution not found")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(ps, "/api/kernels/k1/channels"),
                                    host=host(app["run"]),
                                    header=["Authorization: Bearer " + other["key"]], timeout=30)
    assert e.value.status_code == 404
    # A JWT of the other user, and the other org's key, likewise; a bad key is 401.
    jwt = ps.login(other)["access_token"]
    assert via(ps, app["run"], "/", headers={"Authorization": "Bearer " + jwt}).status_code == 404
    def org_key(u):
        r = ps.post(f"/orgs/{u['org_slug']}/api-keys", u["key"], json={"name": "k"})
        assert r.status_code == 200, r.text
        return r.json()["plaintext_key"]

    assert via(ps, app["run"], "/",
               headers={"Authorization": "Bearer " + org_key(other)}).status_code == 404
    assert via(ps, app["run"], "/",
               headers={"Authorization": "Bearer " + org_key(app["owner"])}).status_code == 200
    r = via(ps, app["run"], "/", headers={"Authorization": "Bearer lk_not_a_key"})
    assert r.status_code == 401
    # The owner's JWT works as the key does.
    jwt = ps.login(app["owner"])["access_token"]
    assert via(ps, app["run"], "/", headers={"Authorization": "Bearer " + jwt}).status_code == 200


def test_the_hosts_loopback_is_not_reachable(ps, app):
    """A service only the host listens on, on 127.0.0.1: the proxy connects to the container's
    loopback, where nothing listens on that port."""

    class Secret(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host secret")

        def log_message(self, *a):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Secret)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text == "host secret"
        r = via(ps, app["run"], "/", port=port)
        assert_detail(r, 502, f"Nothing listens on port {port} in run {app['run']}'s container")
        # lyceumd's own port is the host's too.
        r = via(ps, app["run"], "/health", port=ps.port)
        assert r.status_code == 502 and "host secret" not in r.text
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(ws_url(ps, "/api/kernels/k/channels"),
                                        host=host(app["run"], port), timeout=30)
        assert e.value.status_code == 502
    finally:
        srv.shutdown()


def test_unknown_runs_and_bad_host_names(ps, app):
    r = via(ps, str(uuid.uuid4()), "/")
    assert_detail(r, 404, "Execution not found")
    for name in (f"{app['run']}-0.{DOMAIN}", f"{app['run']}-65536.{DOMAIN}",
                 f"{app['run']}.{DOMAIN}", f"x{app['run']}-8888.{DOMAIN}",
                 f"{app['run']}-88a.{DOMAIN}", f"www.{app['run']}-8888.{DOMAIN}", f"a.{DOMAIN}"):
        r = requests.get(ps.base + "/", headers={"Host": name}, timeout=30)
        assert_detail(r, 404, "No run port at this host name")
    # Upper case is the same name; other names are lyceumd's API as before.
    r = requests.get(ps.base + "/", headers={"Host": host(app["run"]).upper()}, timeout=30)
    assert r.status_code == 200 and "jupyter-like" in r.text
    for name in ("127.0.0.1", DOMAIN, f"{app['run']}-8888.port.other.test", "x" + DOMAIN):
        r = requests.get(ps.base + "/health", headers={"Host": name}, timeout=30)
        assert r.status_code == 200 and r.json() == {"status": "ok"}, (name, r.text)


def test_a_python_run_has_no_ports(ps):
    u = ps.new_user(credits=10)
    run = start(ps, u["key"], "import time\ntime.sleep(60)\n")
    wait_status(ps, u["key"], run["execution_id"], "running")
    r = via(ps, run["execution_id"], "/")
    assert_detail(r, 404, "is not a Docker image run")
    ps.post(f"/workloads/abort/{run['execution_id']}", u["key"])


def test_a_stopped_runs_ports_are_closed(ps):
    u = ps.new_user(credits=10)
    run_id = start_app(ps, u["key"])
    ws = websocket.create_connection(ws_url(ps, "/api/kernels/k/channels"), host=host(run_id),
                                     timeout=30)
    ws.send("before")
    assert ws.recv() == "before"
    assert ps.post(f"/workloads/abort/{run_id}", u["key"]).status_code == 200
    wait_end(ps, u["key"], run_id, timeout=30)
    # The open WebSocket ends with its container.
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        for _ in range(100):
            ws.send("after")
            ws.recv()
    ws.close()
    r = via(ps, run_id, "/")
    assert_detail(r, 404, f"Run {run_id} has ended (aborted)")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(ps, "/api/kernels/k/channels"), host=host(run_id),
                                    timeout=30)
    assert e.value.status_code == 404


def test_without_a_port_domain_port_hosts_are_the_api():
    s = Server()
    try:
        r = requests.get(s.base + "/health",
                         headers={"Host": f"{uuid.uuid4()}-8888.{DOMAIN}"}, timeout=30)
        assert r.status_code == 200
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_a_bad_port_domain_is_refused_at_start(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"port_domain": "https://port.example.com"}))
    r = subprocess.run([os.path.abspath(BIN), "serve",
                        "--config", str(cfg), "--data", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "port_domain must be a host name" in r.stderr
