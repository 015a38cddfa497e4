"""Docker and Compose runs confined (issue 13): each test performs an attack a tenant could try
through the API against the real binary and the real Docker engine (user namespaces remapped by
scripts/dockerd.sh), and asserts that it fails, while the normal runs beside it still work.

- containers: root inside is not root on the host, no capabilities, no-new-privileges, the
  default seccomp profile, the profile's limits, created from an image id;
- Compose: the keys that reach the host are refused (422 naming the key): top-level secrets
  reading the server's keys, host networking, host paths, ...; a tenant's PYTHONPATH never
  reaches docker-compose itself; the project's network cannot reach the host; each service gets
  the profile's limits;
- images per org: an image pulled with org A's registry credentials (a real registry on
  127.0.0.1 with htpasswd auth) does not run for org B without B's own;
- kill -9 of lyceumd: the containers and Compose projects of the runs it ends go at restart;
- registry passwords and AWS secret keys never reach the database file in clear."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import Server, assert_detail, free_port
from runs_util import follow, output_of, status, wait_end, wait_status, write_config

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "lyceumd-test/busybox:1"
GIB = 1 << 30
PIDS = 256


def docker(*args, check=True, env=None, **kw):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})), **kw)
    if check:
        assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr}"
    return r


@pytest.fixture(scope="module")
def engine():
    r = subprocess.run(["sh", os.path.join(HERE, "..", "..", "scripts", "dockerd.sh"), "start"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("no Docker engine can run here: " + (r.stdout + r.stderr).strip())
    yield docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip()


@pytest.fixture(scope="module")
def ds(engine):
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10", "vcpus": 1,
                         "memory_gb": 1, "pids_max": PIDS, "max_concurrent": 8}])
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def image_run(s, key, cmd, image=IMAGE, **kw):
    kw.setdefault("timeout", 120)
    r = s.post("/execution/image/start", key,
               json=dict(docker_image_ref=image, docker_run_cmd=cmd, **kw))
    assert r.status_code == 200, r.text
    return r.json()


def compose_run(s, key, yaml, **kw):
    kw.setdefault("timeout", 120)
    r = s.post("/execution/compose/start", key, json=dict(compose_file_code=yaml, **kw))
    assert r.status_code == 200, r.text
    return r.json()


def containers(label):
    return docker("ps", "-aq", "--filter", f"label={label}").stdout.split()


def inspect_running(label, timeout=60):
    """docker inspect of the first container with label, once there is one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ids = containers(label)
        if ids:
            return json.loads(docker("inspect", ids[0]).stdout)[0]
        time.sleep(0.1)
    raise AssertionError(f"no container with {label}")


def status_lines(out):
    """KEY: value lines (less docker-compose's "service_1  | " prefix) as a dict."""
    lines = (re.sub(r"^\S+_1\s+\| ", "", ln) for ln in out.splitlines())
    return {k: v.strip() for k, _, v in (ln.partition(":") for ln in lines) if v}


# ---- the engine and what a container is ----------------------------------------------------

def test_the_engine_remaps_user_namespaces(engine):
    opts = docker("info", "--format", "{{json .SecurityOptions}}").stdout
    assert "name=userns" in opts and "name=seccomp" in opts, opts


CONFINED = ("cat /proc/self/uid_map; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
            "/proc/self/status; echo uid=$(id -u); touch /mnt/s3/made-in-container; "
            "sleep 2; echo done")


def test_an_image_run_is_not_root_on_the_host(ds):
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"], ["sh", "-c", CONFINED])
    c = inspect_running(f"lyceumd.run={run['execution_id']}")
    out = output_of(follow(run["streaming_url"]))
    st = status(ds, u["key"], run["execution_id"])
    assert st["status"] == "completed", (st, out)
    # uid 0 inside is a uid of dockremap's range outside (/etc/subuid), not 0.
    inside, outside, count = out.splitlines()[0].split()
    assert inside == "0" and int(outside) >= 1000 and int(count) <= 65536 * 16, out
    s = status_lines(out)
    assert s["CapEff"] == "0000000000000000" and s["CapBnd"] == "0000000000000000", out
    assert s["NoNewPrivs"] == "1" and s["Seccomp"] == "2", out
    assert "uid=0" in out and "done" in out
    # What it wrote in its bucket is not root's on the host.
    made = os.path.join(ds.data, "buckets", u["user_id"], "objects", "made-in-container")
    assert os.stat(made).st_uid == int(outside)
    # As the engine was asked: no capability, no privilege, no device, the profile's limits,
    # and an image id, not a tag.
    h = c["HostConfig"]
    assert h["CapDrop"] == ["ALL"] and not h["CapAdd"] and not h["Privileged"], h
    assert "no-new-privileges" in h["SecurityOpt"] and not h["Devices"], h
    assert not any("seccomp" in o for o in h["SecurityOpt"]), h
    assert h["Memory"] == GIB and h["MemorySwap"] == GIB, h
    assert h["PidsLimit"] == PIDS and h["NanoCpus"] == 1_000_000_000, h
    assert h["NetworkMode"] == "none" and h["UsernsMode"] == "", h
    assert c["Config"]["Image"].startswith("sha256:"), c["Config"]["Image"]


def test_a_container_cannot_gain_privileges(ds):
    """Mounting, chown, mknod: no capability is there to use."""
    u = ds.new_user(credits=10)
    run = image_run(ds, u["key"], [
        "sh", "-c", "mount -t tmpfs none /mnt && echo MOUNTED; "
                    "chown 1:1 /bin/busybox 2>/dev/null && echo CHOWNED; "
                    "mknod /tmp/sda b 8 0 2>/dev/null && echo MKNOD; echo end"])
    out = output_of(follow(run["streaming_url"]))
    assert "end" in out.split(), out  # stdout and stderr may interleave either way
    for bad in ("MOUNTED", "CHOWNED", "MKNOD"):
        assert bad not in out, out


# ---- Compose: what the file may ask for -----------------------------------------------------

def compose_file(extra, top="", image=IMAGE):
    return (f"services:\n  x:\n    image: {image}\n    command: echo hi\n"
            + "".join(f"    {line}\n" for line in extra.splitlines()) + top)


REFUSED = [
    ("build", "build: .\n", ""),
    ("env_file", "env_file: ../../jwt.key\n", ""),
    ("extends", "extends:\n  file: ../../other.yml\n  service: y\n", ""),
    ("privileged", "privileged: true\n", ""),
    ("cap_add", "cap_add: [SYS_ADMIN]\n", ""),
    ("devices", "devices: ['/dev/sda:/dev/sda']\n", ""),
    ("security_opt", "security_opt: ['seccomp:unconfined']\n", ""),
    ("network_mode", "network_mode: host\n", ""),
    ("network_mode", "network_mode: bridge\n", ""),
    ("network_mode", "network_mode: 'container:lyceumd-other'\n", ""),
    ("pid", "pid: host\n", ""),
    ("ipc", "ipc: host\n", ""),
    ("userns_mode", "userns_mode: host\n", ""),
    ("sysctls", "sysctls:\n  net.ipv4.ip_forward: 1\n", ""),
    ("volumes", "volumes: ['/:/host']\n", ""),
    ("volumes", "volumes: ['./data:/data']\n", ""),
    ("volumes", "volumes:\n  - type: bind\n    source: /etc\n    target: /h\n", ""),
    ("ports", "ports: ['127.0.0.1:8000:80']\n", ""),
    ("container_name", "container_name: lyceumd-squat\n", ""),
    ("logging", "logging:\n  driver: syslog\n  options:\n    syslog-address: tcp://127.0.0.1:1\n",
     ""),
    ("deploy", "deploy:\n  resources:\n    reservations:\n      devices:\n"
               "        - capabilities: [gpu]\n", ""),
    ("volumes_from", "volumes_from: ['container:other']\n", ""),
    ("cgroup_parent", "cgroup_parent: /\n", ""),
    ("secrets", "secrets: [k]\n", "secrets:\n  k:\n    file: ../../jwt.key\n"),
    ("configs", "configs: [k]\n", "configs:\n  k:\n    file: ../../master.key\n"),
    ("volumes.v.driver_opts", "volumes: ['v:/v']\n",
     "volumes:\n  v:\n    driver_opts: {type: none, o: bind, device: /}\n"),
    ("volumes.v.external", "volumes: ['v:/v']\n", "volumes:\n  v:\n    external: true\n"),
    ("networks.n.driver_opts", "networks: [n]\n",
     "networks:\n  n:\n    driver_opts: {com.docker.network.bridge.name: docker0}\n"),
    ("labels", "labels: {lyceumd.run: someone-else}\n", ""),
    ("scale", "scale: 500\n", ""),
    ("runtime", "runtime: nvidia\n", ""),
    ("external_links", "external_links: ['lyceumd-other']\n", ""),
    ("services", "",
     "".join(f"  s{i}:\n    image: {IMAGE}\n" for i in range(40))),
]


@pytest.mark.parametrize("key,service,top", REFUSED, ids=[f"{k}-{i}" for i, (k, _, _) in
                                                         enumerate(REFUSED)])
def test_a_compose_key_that_reaches_the_host_is_refused(ds, key, service, top):
    u = ds.new_user(credits=10)
    r = ds.post("/execution/compose/start", u["key"],
                json={"compose_file_code": compose_file(service, top)})
    body = assert_detail(r, 422, key)
    assert "not allowed" in body["detail"] or "may" in body["detail"], body
    assert ds.get("/workloads/list", u["key"]).json() == []


def test_a_refused_key_cannot_hide_in_a_merge_or_an_anchor(ds):
    u = ds.new_user(credits=10)
    merged = ("x-common: &common\n  env_file: /etc/shadow\n"
              f"services:\n  x:\n    <<: *common\n    image: {IMAGE}\n")
    assert_detail(ds.post("/execution/compose/start", u["key"],
                          json={"compose_file_code": merged}), 422, "env_file")
    quoted = f'services:\n  x:\n    image: {IMAGE}\n    "privil\\x65ged": true\n'
    assert_detail(ds.post("/execution/compose/start", u["key"],
                          json={"compose_file_code": quoted}), 422, "privileged")
    interpolated = (f"services:\n  x:\n    image: {IMAGE}\n"
                    "    network_mode: ${NOT_SET_ANYWHERE:-host}\n")
    assert_detail(ds.post("/execution/compose/start", u["key"],
                          json={"compose_file_code": interpolated}), 422, "network_mode")


def test_an_alias_bomb_is_refused_at_once(ds):
    u = ds.new_user(credits=10)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]\n"
    bomb += f"services:\n  x:\n    image: {IMAGE}\n    command: *i\n"
    t0 = time.time()
    assert_detail(ds.post("/execution/compose/start", u["key"],
                          json={"compose_file_code": bomb}), 422, "aliases")
    assert time.time() - t0 < 10
    assert ds.alive()


def test_compose_secrets_do_not_print_the_servers_keys(ds):
    """The finding: top-level secrets with file: ../../jwt.key printed the server's key."""
    u = ds.new_user(credits=10)
    with open(os.path.join(ds.data, "jwt.key"), "rb") as f:
        key = f.read()
    yml = (f"services:\n  x:\n    image: {IMAGE}\n    network_mode: none\n"
           "    command: cat /run/secrets/k\n    secrets: [k]\n"
           "secrets:\n  k:\n    file: ../../jwt.key\n")
    r = ds.post("/execution/compose/start", u["key"], json={"compose_file_code": yml})
    if r.status_code == 200:
        out = output_of(follow(r.json()["streaming_url"], timeout=120))
        assert key.strip().decode(errors="replace")[:16] not in out, "the server's key leaked"
    assert_detail(r, 422, "secrets")


def test_a_tenants_pythonpath_never_reaches_docker_compose(ds):
    """The finding: PYTHONPATH pointing into the bucket ran the tenant's sitecustomize.py in
    the host-side docker-compose process, as root. Tenant variables reach containers only."""
    u = ds.new_user(credits=10)
    marker = f"/tmp/lyceumd-pwned-{uuid.uuid4().hex}"
    code = f"open({marker!r}, 'w').write('pwned')\n".encode()
    r = ds.post("/storage/upload?key=sitecustomize.py", u["key"],
                files={"file": ("sitecustomize.py", code)})
    assert r.status_code == 200, r.text
    bucket = os.path.join(ds.data, "buckets", u["user_id"], "objects")
    assert os.path.exists(os.path.join(bucket, "sitecustomize.py"))
    for name, value in (("PYTHONPATH", bucket), ("PYTHONSTARTUP", bucket + "/sitecustomize.py"),
                        ("DOCKER_HOST", "tcp://127.0.0.1:1"), ("GREETING", "a$b")):
        r = ds.post("/environment-variables/", u["key"], json={"key": name, "value": value})
        assert r.status_code in (200, 201), r.text
    yml = (f"services:\n  x:\n    image: {IMAGE}\n    network_mode: none\n"
           "    environment: [GREETING]\n"
           "    command: sh -c 'echo PP=$$PYTHONPATH G=$$GREETING'\n")
    run = compose_run(ds, u["key"], yml)
    out = output_of(follow(run["streaming_url"], timeout=120))
    st = wait_end(ds, u["key"], run["execution_id"], timeout=120)
    try:
        assert not os.path.exists(marker), "the tenant's code ran in docker-compose"
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    assert st["status"] == "completed", (st, out)
    assert f"PP={bucket} G=a$b" in out, out


class Listener:
    """A TCP listener on the host that records every connection made to it."""

    def __init__(self, host):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = []
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            try:
                c, addr = self.sock.accept()
            except OSError:
                continue
            self.hits.append(addr)
            c.sendall(b"HOST-SECRET\n")
            c.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def test_compose_host_networking_is_refused(ds):
    """The finding: network_mode: host reached the host's loopback."""
    u = ds.new_user(credits=10)
    lo = Listener("127.0.0.1")
    try:
        yml = (f"services:\n  x:\n    image: {IMAGE}\n    network_mode: host\n"
               f"    command: sh -c 'nc -w 2 127.0.0.1 {lo.port} </dev/null'\n")
        r = ds.post("/execution/compose/start", u["key"], json={"compose_file_code": yml})
        if r.status_code == 200:
            wait_end(ds, u["key"], r.json()["execution_id"], timeout=120)
        assert_detail(r, 422, "network_mode")
        assert lo.hits == []
    finally:
        lo.close()


def test_compose_services_reach_each_other_but_not_the_host(ds):
    u = ds.new_user(credits=10)
    lo = Listener("0.0.0.0")
    try:
        probe = ("gw=$$(ip route | awk '/default/ {print $$3}'); "
                 "for a in 127.0.0.1 $$gw 172.17.0.1 172.18.0.1; do "
                 f"nc -w 2 $$a {lo.port} </dev/null && echo REACHED $$a; done; "
                 "echo hi | nc -w 2 web 7000 && echo SERVICE-OK; echo probed")
        yml = (f"services:\n"
               f"  web:\n    image: {IMAGE}\n"
               f"    command: sh -c 'nc -l -p 7000 -e echo pong; sleep 5'\n"
               f"  probe:\n    image: {IMAGE}\n    depends_on: [web]\n"
               f"    command: sh -c \"sleep 1; {probe}\"\n")
        run = compose_run(ds, u["key"], yml)
        out = output_of(follow(run["streaming_url"], timeout=120))
        assert "probed" in out, out
        assert "REACHED" not in out and lo.hits == [], (out, lo.hits)
        assert "pong" in out, out
    finally:
        lo.close()


def test_compose_services_get_the_profiles_limits_and_no_privileges(ds):
    """The finding: compose containers had no memory, pids or CPU limits."""
    u = ds.new_user(credits=10)
    yml = (f"services:\n  x:\n    image: {IMAGE}\n    network_mode: none\n"
           "    mem_limit: 64g\n    pids_limit: -1\n"
           "    command: sh -c \"grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
           "head -1 /proc/self/uid_map; sleep 3\"\n")
    run = compose_run(ds, u["key"], yml)
    c = inspect_running(f"lyceumd.run={run['execution_id']}")
    out = output_of(follow(run["streaming_url"], timeout=120))
    h = c["HostConfig"]
    assert h["Memory"] == GIB and h["MemorySwap"] == GIB, h
    assert h["PidsLimit"] == PIDS and h["NanoCpus"] == 1_000_000_000, h
    assert h["CapDrop"] == ["ALL"] and not h["Privileged"] and not h["Devices"], h
    assert any(o.startswith("no-new-privileges") for o in h["SecurityOpt"]), h
    assert c["Config"]["Image"].startswith("sha256:"), c["Config"]["Image"]
    s = status_lines(out)
    assert s.get("CapEff") == "0000000000000000" and s.get("NoNewPrivs") == "1", out
    uid_map = re.search(r"^(?:\S+_1\s+\| )?\s*0\s+(\d+)\s+(\d+)\s*$", out, re.M)
    assert uid_map and int(uid_map.group(1)) >= 1000, out


def test_a_compose_stack_with_what_users_need_runs(ds, engine):
    u = ds.new_user(credits=10)
    yml = f"""
x-common: &common
  image: {IMAGE}
  environment:
    MODE: test
services:
  db:
    <<: *common
    command: sh -c 'echo stored > /data/v; sleep 2'
    volumes: ['data:/data', {{type: tmpfs, target: /scratch}}]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  app:
    <<: *common
    depends_on: [db]
    working_dir: /tmp
    user: "0"
    tmpfs: /run
    shm_size: 8m
    stop_grace_period: 2s
    labels: {{team: ml}}
    command: sh -c 'sleep 1; cat /data/v; echo mode=$$MODE'
    volumes: ['data:/data:ro']
volumes:
  data: {{}}
"""
    run = compose_run(ds, u["key"], yml)
    out = output_of(follow(run["streaming_url"], timeout=120))
    st = wait_end(ds, u["key"], run["execution_id"], timeout=60)
    assert st["status"] == "completed", (st, out)
    assert "stored" in out and "mode=test" in out, out
    # Nothing of it is left, and the public tag was not touched.
    project = f"lyceumd-{run['execution_id'][:12].lower()}"
    assert containers(f"com.docker.compose.project={project}") == []
    assert docker("image", "inspect", "-f", "{{.Id}}", IMAGE).stdout.strip() == engine


# ---- images per org ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(engine):
    """A Distribution registry on 127.0.0.1 with htpasswd users orga and orgb, holding
    orga/private:1 (the test image plus /secret.txt), which is not on the engine."""
    if not shutil.which("docker-registry") or not shutil.which("htpasswd"):
        pytest.fail("docker-registry and htpasswd are needed (scripts/deps.sh installs them)")
    root = tempfile.mkdtemp(prefix="lyceumd-registry-")
    port = free_port()
    users = {"orga": "pa-" + uuid.uuid4().hex, "orgb": "pb-" + uuid.uuid4().hex}
    with open(os.path.join(root, "htpasswd"), "w") as f:
        for name, pw in users.items():
            f.write(subprocess.run(["htpasswd", "-Bbn", name, pw], capture_output=True,
                                   text=True, check=True).stdout.strip() + "\n")
    with open(os.path.join(root, "config.yml"), "w") as f:
        f.write(f"""version: 0.1
log: {{level: error}}
storage: {{filesystem: {{rootdirectory: {root}/data}}, delete: {{enabled: true}}}}
http: {{addr: "127.0.0.1:{port}", secret: {uuid.uuid4().hex}}}
auth: {{htpasswd: {{realm: lyceumd-test, path: {root}/htpasswd}}}}
""")
    proc = subprocess.Popen(["docker-registry", "serve", os.path.join(root, "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=open(root + "/log", "w"))
    host = f"127.0.0.1:{port}"
    ref = f"{host}/orga/private:1"
    cfgdir = tempfile.mkdtemp(prefix="lyceumd-docker-cfg-")
    env = {"DOCKER_CONFIG": cfgdir}
    try:
        deadline = time.time() + 20
        while True:
            try:
                if requests.get(f"http://{host}/v2/", timeout=1).status_code == 401:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline and proc.poll() is None, open(root + "/log").read()
            time.sleep(0.1)
        secret = f"org-a-only-{uuid.uuid4().hex}"
        with open(os.path.join(root, "secret.txt"), "w") as f:
            f.write(secret + "\n")
        cid = docker("create", IMAGE, "true").stdout.strip()
        docker("cp", os.path.join(root, "secret.txt"), f"{cid}:/secret.txt")
        docker("commit", cid, ref)
        docker("rm", cid)
        docker("login", "-u", "orga", "--password-stdin", host, input=users["orga"], env=env)
        docker("push", ref, env=env)
        docker("logout", host, env=env)
        digest = next(d for d in json.loads(docker("inspect", ref).stdout)[0]["RepoDigests"]
                      if d.startswith(host))
        docker("rmi", ref)
        yield dict(host=host, ref=ref, digest=digest, secret=secret, users=users)
    finally:
        proc.terminate()
        proc.wait()
        for r in (ref, f"{host}/orga/private"):
            docker("rmi", "-f", r, check=False)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cfgdir, ignore_errors=True)


def creds(name, pw):
    return dict(docker_registry_credential_type="basic",
                docker_registry_credentials=json.dumps({"username": name, "password": pw}))


def run_to_end(s, key, ref, **kw):
    run = image_run(s, key, ["cat", "/secret.txt"], image=ref, **kw)
    out = output_of(follow(run["streaming_url"], timeout=120))
    return wait_end(s, key, run["execution_id"], timeout=120), out


def test_a_private_image_runs_only_for_the_org_that_pulled_it(ds, registry):
    a, b = ds.new_user(credits=10), ds.new_user(credits=10)
    ref, secret, users = registry["ref"], registry["secret"], registry["users"]
    st, out = run_to_end(ds, a["key"], ref, **creds("orga", users["orga"]))
    assert st["status"] == "completed" and secret in out, (st, out)
    # Org B, with the image now on the engine: without credentials, by its tag or its digest,
    # or with wrong ones, it does not run.
    for kw, r in (({}, ref), ({}, registry["digest"]),
                  (creds("orga", "wrong-password"), ref)):
        st, out = run_to_end(ds, b["key"], r, **kw)
        assert st["status"] == "system_failure" and secret not in out, (kw, r, st, out)
        assert r in st["errors"] and ("cannot be pulled" in st["errors"] or
                                      "cannot be used by its digest" in st["errors"]), st
    # Nor with any credentials, by its digest: the engine would not ask the registry.
    st, out = run_to_end(ds, b["key"], registry["digest"], **creds("orga", "wrong-password"))
    assert st["status"] == "system_failure" and secret not in out, (st, out)
    # Org A may run it again without them; org B with credentials of its own.
    st, out = run_to_end(ds, a["key"], ref)
    assert st["status"] == "completed" and secret in out, (st, out)
    st, out = run_to_end(ds, b["key"], ref, **creds("orgb", users["orgb"]))
    assert st["status"] == "completed" and secret in out, (st, out)


def test_a_private_image_in_a_compose_file_needs_the_orgs_credentials(ds, registry):
    a, b = ds.new_user(credits=10), ds.new_user(credits=10)
    yml = (f"services:\n  x:\n    image: {registry['ref']}\n    network_mode: none\n"
           "    command: cat /secret.txt\n")
    run = compose_run(ds, a["key"], yml, docker_username="orga",
                      docker_password=registry["users"]["orga"])
    out = output_of(follow(run["streaming_url"], timeout=120))
    assert registry["secret"] in out, out
    run = compose_run(ds, b["key"], yml)
    out = output_of(follow(run["streaming_url"], timeout=120))
    st = wait_end(ds, b["key"], run["execution_id"], timeout=60)
    assert st["status"] == "system_failure" and registry["secret"] not in out, (st, out)
    assert "cannot be pulled" in st["errors"], st["errors"]


# ---- secrets at rest -----------------------------------------------------------------------

def db_bytes(s):
    data = b""
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(s.data, "lyceumd.db" + suffix)
        if os.path.exists(p):
            with open(p, "rb") as f:
                data += f.read()
    return data


def test_registry_secrets_never_reach_the_database_in_clear(ds):
    u = ds.new_user(credits=10)
    pw, sk, tok = (f"{w}-{uuid.uuid4().hex}" for w in ("regpass", "awssecret", "awstoken"))
    body = dict(creds("someone", pw), aws_access_key_id="AKIAEXAMPLE",
                aws_secret_access_key=sk, aws_session_token=tok)
    run = image_run(ds, u["key"], ["sh", "-c", "echo ran; sleep 1"], **body)
    assert pw.encode() not in db_bytes(ds) and sk.encode() not in db_bytes(ds)
    out = output_of(follow(run["streaming_url"], timeout=120))
    st = wait_end(ds, u["key"], run["execution_id"], timeout=60)
    assert st["status"] == "completed" and "ran" in out, (st, out)
    cpw = f"composepass-{uuid.uuid4().hex}"
    run = compose_run(ds, u["key"], compose_file("network_mode: none\n"),
                      docker_username="someone", docker_password=cpw,
                      aws_secret_access_key=sk)
    out = output_of(follow(run["streaming_url"], timeout=120))
    assert wait_end(ds, u["key"], run["execution_id"], timeout=60)["status"] == "completed", out
    raw = db_bytes(ds)
    for secret in (pw, sk, tok, cpw):
        assert secret.encode() not in raw, f"{secret} is in the database file"
    rec = ds.get(f"/execution/{run['execution_id']}", u["key"]).text
    assert cpw not in rec and sk not in rec


# ---- kill -9 -------------------------------------------------------------------------------

def test_kill_9_then_restart_removes_the_runs_containers(engine):
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10",
                         "max_concurrent": 4}])
    s = Server(["--config", cfg])
    img, project = {"execution_id": "none"}, "none"
    try:
        u = s.new_user(credits=10)
        img = image_run(s, u["key"], ["sh", "-c", "echo up; sleep 300"], timeout=600)
        yml = (f"services:\n  a:\n    image: {IMAGE}\n    command: sleep 300\n"
               f"  b:\n    image: {IMAGE}\n    command: sleep 300\n")
        comp = compose_run(s, u["key"], yml, timeout=600)
        project = f"lyceumd-{comp['execution_id'][:12].lower()}"
        for rid in (img["execution_id"], comp["execution_id"]):
            wait_status(s, u["key"], rid, "running", timeout=60)
        deadline = time.time() + 60
        while len(containers(f"com.docker.compose.project={project}")) < 2:
            assert time.time() < deadline, "the compose project did not start"
            time.sleep(0.2)
        assert containers(f"lyceumd.run={img['execution_id']}")
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        s.start()
        for rid in (img["execution_id"], comp["execution_id"]):
            assert status(s, u["key"], rid)["status"] == "system_failure"
        deadline = time.time() + 20
        while (containers(f"lyceumd.run={img['execution_id']}") or
               containers(f"com.docker.compose.project={project}")):
            assert time.time() < deadline, "the runs' containers are still there"
            time.sleep(0.2)
        nets = docker("network", "ls", "-q", "--filter",
                      f"label=com.docker.compose.project={project}").stdout.split()
        assert nets == []
    finally:
        s.stop()
        left = (containers(f"lyceumd.run={img['execution_id']}") +
                containers(f"com.docker.compose.project={project}"))
        if left:
            docker("rm", "-f", *left, check=False)
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)
