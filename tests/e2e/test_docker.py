"""Docker runs against a real dockerd (started by scripts/dockerd.sh, with user namespaces
remapped and no bridge network): an image run with its environment and exit code, abort, a
two-service Compose run, a bad Compose file, and 503 when no engine answers. Images are built
locally (no registry). What containers may not do is test_isolation_docker.py's."""

import os
import shutil
import subprocess
import time

import pytest

from conftest import Server, assert_422, assert_detail
from runs_util import follow, output_of, start, status, wait_end, wait_status, write_config

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "lyceumd-test/busybox:1"
# An image from a registry on a closed loopback port: its pull fails at once, with no traffic
# leaving the machine.
MISSING = "127.0.0.1:1/lyceumd-test/nope:0"


@pytest.fixture(scope="module")
def engine():
    r = subprocess.run(["sh", os.path.join(HERE, "..", "..", "scripts", "dockerd.sh"), "start"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("no Docker engine can run here: " + (r.stdout + r.stderr).strip())
    yield


@pytest.fixture(scope="module")
def ds(engine):
    s = Server()
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


def image_run(s, key, cmd, image=IMAGE, **kw):
    r = s.post("/execution/image/start", key,
               json=dict(docker_image_ref=image, docker_run_cmd=cmd, **kw))
    assert r.status_code == 200, r.text
    return r.json()


def test_an_image_run_sees_its_env_and_fails_with_its_code(ds):
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"],
                    ["sh", "-c", "echo hello $GREETING $LYCEUM_EXECUTION_ID; echo oops >&2; "
                                 "exit 3"],
                    docker_run_env="GREETING=world\nOTHER=1", timeout=60)
    events = follow(run["streaming_url"])
    out = output_of(events)
    assert f"hello world {run['execution_id']}\n" in out and "oops\n" in out
    assert events[-1]["jobFinished"]["job"]["result"] == {"returnCode": 3, "error": None}
    st = status(ds, u["key"], run["execution_id"])
    assert st["status"] == "failed" and st["return_code"] == 3
    rec = ds.get(f"/execution/{run['execution_id']}", u["key"]).json()
    assert rec["execution_type"] == "docker" and rec["docker_image_ref"] == IMAGE
    assert rec["stderr"] == "oops\n"
    # The container is gone.
    left = subprocess.run(["docker", "ps", "-aq", "--filter",
                           f"label=lyceumd.run={run['execution_id']}"],
                          capture_output=True, text=True).stdout.strip()
    assert left == ""


def test_a_container_has_no_network(ds):
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"], ["sh", "-c", "ls /sys/class/net; echo done"])
    out = output_of(follow(run["streaming_url"]))
    assert out.split() == ["lo", "done"]


def test_abort_kills_the_container(ds):
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"], ["sh", "-c", "echo up; sleep 60"])
    wait_status(ds, u["key"], run["execution_id"], "running")
    time.sleep(0.5)
    t0 = time.time()
    assert ds.post(f"/workloads/abort/{run['execution_id']}", u["key"]).status_code == 200
    st = wait_end(ds, u["key"], run["execution_id"], timeout=20)
    assert st["status"] == "aborted" and time.time() - t0 < 5


def test_stop_asks_the_container_to_end(ds):
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"], ["sh", "-c", "trap 'echo term; exit 0' TERM; echo up; "
                                               "while :; do sleep 0.1; done"])
    wait_status(ds, u["key"], run["execution_id"], "running")
    time.sleep(0.5)
    assert ds.post(f"/workloads/stop/{run['execution_id']}", u["key"]).status_code == 200
    st = wait_end(ds, u["key"], run["execution_id"], timeout=20)
    assert st["status"] == "completed", st
    assert output_of(follow(run["streaming_url"])) == "up\nterm\n"


def test_an_image_run_without_a_command_runs_the_images_own(ds):
    """`lyceum docker run IMAGE` sends no docker_run_cmd: the image's ENTRYPOINT and CMD run."""
    tag = "lyceumd-test/with-cmd:1"
    cid = subprocess.run(["docker", "create", IMAGE, "true"], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        subprocess.run(["docker", "commit", "--change",
                        'CMD ["sh", "-c", "echo from the image on $LYCEUM_EXECUTION_ID"]', cid,
                        tag], capture_output=True, text=True, check=True)
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    u = ds.new_user(credits=10)
    for extra in ({}, {"docker_run_cmd": None}, {"docker_run_cmd": []}):
        r = ds.post("/execution/image/start", u["key"], json=dict(docker_image_ref=tag, **extra))
        assert r.status_code == 200, r.text
        run = r.json()
        events = follow(run["streaming_url"])
        assert output_of(events) == f"from the image on {run['execution_id']}\n", extra
        assert events[-1]["jobFinished"]["job"]["result"]["returnCode"] == 0
    # An image with no command of its own, and none given, fails with the engine's reason.
    r = ds.post("/execution/image/start", u["key"], json={"docker_image_ref": IMAGE})
    assert r.status_code == 200, r.text
    st = wait_end(ds, u["key"], r.json()["execution_id"], timeout=60)
    assert st["status"] in ("failed", "system_failure") and "command" in st["errors"].lower(), st


def test_an_image_that_is_not_here_fails_clearly(ds):
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"], ["true"], image=MISSING)
    st = wait_end(ds, u["key"], run["execution_id"], timeout=60)
    assert st["status"] == "system_failure" and MISSING in st["errors"]


COMPOSE = f"""
services:
  one:
    image: {IMAGE}
    network_mode: none
    command: sh -c "echo from-one; sleep 1"
  two:
    image: {IMAGE}
    network_mode: none
    command: sh -c "echo from-two; sleep 1"
"""


def test_a_two_service_compose_run(ds):
    u = ds.new_user(credits=10)
    r = ds.post("/execution/compose/start", u["key"],
                json={"compose_file_code": COMPOSE, "timeout": 120})
    assert r.status_code == 200, r.text
    run = r.json()
    out = output_of(follow(run["streaming_url"], timeout=120))
    assert "from-one" in out and "from-two" in out
    assert status(ds, u["key"], run["execution_id"])["status"] == "completed"


def test_abort_ends_a_compose_run_and_removes_its_containers(ds):
    u = ds.new_user(credits=10)
    yml = f"""
services:
  sleeper:
    image: {IMAGE}
    network_mode: none
    command: sh -c "echo up; sleep 120"
"""
    r = ds.post("/execution/compose/start", u["key"],
                json={"compose_file_code": yml, "timeout": 300})
    assert r.status_code == 200, r.text
    rid = r.json()["execution_id"]
    wait_status(ds, u["key"], rid, "running", timeout=60)
    time.sleep(3)
    t0 = time.time()
    assert ds.post(f"/workloads/abort/{rid}", u["key"]).status_code == 200
    st = wait_end(ds, u["key"], rid, timeout=30)
    assert st["status"] == "aborted" and time.time() - t0 < 20, st
    left = subprocess.run(["docker", "ps", "-aq", "--filter",
                           f"label=com.docker.compose.project=lyceumd-{rid[:12].lower()}"],
                          capture_output=True, text=True).stdout.strip()
    assert left == ""


def test_a_bad_compose_file_is_refused(ds):
    u = ds.new_user(credits=10)
    r = ds.post("/execution/compose/start", u["key"],
                json={"compose_file_code": "services:\n  x:\n    imagee: [\n"})
    body = assert_detail(r, 400, "compose")
    assert_422(ds.post("/execution/compose/start", u["key"], json={}),
               ("body", "compose_file_code"))


def test_a_compose_file_cannot_take_the_host(ds):
    u = ds.new_user(credits=10)
    for bad in ["privileged: true", "pid: host", "volumes:\n      - /:/host",
                "cap_add:\n      - SYS_ADMIN", "devices:\n      - /dev/sda:/dev/sda"]:
        yaml = f"services:\n  x:\n    image: {IMAGE}\n    network_mode: none\n    {bad}\n"
        r = ds.post("/execution/compose/start", u["key"], json={"compose_file_code": yaml})
        assert_detail(r, 422, "not allowed")
    assert ds.get("/workloads/list", u["key"]).json() == []


def test_a_compose_start_does_not_hold_up_its_http_thread(engine):
    """The Compose file's check runs the docker-compose CLI (about a second): with one HTTP
    thread, requests that come meanwhile are answered before the Compose start is, and the
    start's own answer (its status, body and headers) is what it would be on the loop."""
    import concurrent.futures
    s = Server(["--threads", "1"])
    try:
        u = s.new_user(credits=10)
        done = []

        def compose():
            r = s.post("/execution/compose/start", u["key"],
                       json={"compose_file_code": COMPOSE, "timeout": 120})
            done.append("compose")
            return r

        def health():
            while not done:  # asked again and again while the start is being checked
                assert s.get("/health").status_code == 200
                if len(done) == 0:
                    done_h.append(1)
                time.sleep(0.02)

        done_h = []
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            fc = ex.submit(compose)
            fh = ex.submit(health)
            r = fc.result(timeout=120)
            fh.result(timeout=120)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/json" and "X-Request-ID" in r.headers
        run = r.json()
        assert run["execution_id"] and run["streaming_url"]
        assert len(done_h) >= 3, done_h  # answered while the start was still being checked
        out = output_of(follow(run["streaming_url"], timeout=120))
        assert "from-one" in out and "from-two" in out
        # A refusal is answered from the worker as well, as it was on the loop.
        r = s.post("/execution/compose/start", u["key"],
                   json={"compose_file_code": "services:\n  x:\n    imagee: [\n"})
        assert_detail(r, 400, "compose")
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def test_no_engine_answers_503(engine):
    cfg = write_config([{"hardware_profile": "cpu"}], docker_socket="/tmp/no-such-docker.sock")
    s = Server(["--config", cfg])
    try:
        u = s.new_user(credits=10)
        r = s.post("/execution/image/start", u["key"],
                   json={"docker_image_ref": IMAGE, "docker_run_cmd": ["true"]})
        assert_detail(r, 503, "docker")
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)


def test_an_image_run_sees_its_owners_bucket(ds):
    u = ds.new_user(credits=10)
    r = ds.post("/storage/upload?key=data/hello.txt", u["key"],
                files={"file": ("hello.txt", b"bucket bytes\n")})
    assert r.status_code == 200, r.text
    run = image_run(ds, u["key"], ["cat", "/mnt/s3/data/hello.txt"])
    assert output_of(follow(run["streaming_url"])) == "bucket bytes\n"
    off = image_run(ds, u["key"], ["ls", "/mnt/s3"], enable_s3_mount=False)
    events = follow(off["streaming_url"])
    assert events[-1]["jobFinished"]["job"]["result"]["returnCode"] != 0
