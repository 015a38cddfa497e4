"""Tenant code against the host and against other tenants (issue 13): each test performs an
attack a run's code could make, from inside a real run of the real binary, and asserts that it
fails, and that the run still does its normal work (its files, its bucket, pip through the
filtered network). Docker and Compose are test_isolation_docker.py's; the server's own limits
test_isolation_server.py's; storage test_isolation_storage.py's."""

import base64
import hashlib
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
import zipfile

import pytest
import requests

import inference_util as iu
from conftest import Server
from runs_util import follow, output_of, start, wait_end, write_config

UID_BASE, UID_COUNT = 1800000000, 65536


def in_range(uid):
    return UID_BASE <= uid < UID_BASE + UID_COUNT


class Listener:
    """A TCP server on the host's loopback that records every connection it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            c.sendall(b"host-secret\n")
            c.close()


def tiny_wheel(directory):
    """A pure-Python wheel of the package lyceumdprobe, and a PEP 503 index for it."""
    name = "lyceumdprobe-1.0-py3-none-any.whl"
    files = {
        "lyceumdprobe/__init__.py": b"ANSWER = 42\n",
        "lyceumdprobe-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: lyceumdprobe\nVersion: 1.0\n",
        "lyceumdprobe-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append("lyceumdprobe-1.0.dist-info/RECORD,,")
        z.writestr("lyceumdprobe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    os.makedirs(os.path.join(directory, "simple", "lyceumdprobe"))
    with open(os.path.join(directory, name), "wb") as f:
        f.write(buf.getvalue())
    with open(os.path.join(directory, "simple", "lyceumdprobe", "index.html"), "w") as f:
        f.write(f'<html><body><a href="../../{name}">{name}</a></body></html>\n')


class Index:
    """A package index on the host's loopback (a mirror an operator would allow)."""

    def __init__(self, tmp):
        tiny_wheel(tmp)
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
            *a, directory=tmp, **k)
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def iso(tmp_path_factory):
    """A server whose runs have the filtered network, with one loopback port allowed (the
    package index); and a second listener on the host's loopback that is not."""
    index = Index(str(tmp_path_factory.mktemp("index")))
    denied = Listener()
    cfg = write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.10", "max_concurrent": 4}],
        sandbox_network_allow=[f"127.0.0.1/32:{index.port}"],
        pip_index_url=f"http://10.0.2.2:{index.port}/simple/")
    s = Server(["--config", cfg])
    yield s, index, denied
    s.stop()
    os.unlink(cfg)


@pytest.fixture
def key(iso):
    return iso[0].new_user(credits=50)["key"]


def run_json(s, key, code, timeout=90, **body):
    """Runs code, which prints one JSON object last; returns (that object, the run's id)."""
    run = start(s, key, code, timeout=timeout, **body)
    out = output_of(follow(run["streaming_url"], timeout=timeout + 30))
    st = wait_end(s, key, run["execution_id"])
    assert st["status"] == "completed", (st, out)
    return json.loads(out.strip().splitlines()[-1]), run["execution_id"]


SYSCALLS = """
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
"""


def test_a_run_is_an_unprivileged_user_of_its_own_on_the_host(iso, key):
    s = iso[0]
    code = """
import json, os
st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
open('made-by-the-run', 'w').write('x')
try:
    os.setuid(0); became_root = True
except OSError:  # EINVAL: no uid 0 exists in its user namespace
    became_root = False
print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),
                  'groups': os.getgroups(), 'uid_map': open('/proc/self/uid_map').read().split(),
                  'caps': [st[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')],
                  'no_new_privs': st['NoNewPrivs'].strip(), 'seccomp': st['Seccomp'].strip(),
                  'became_root': became_root, 'home': os.environ['HOME'], 'cwd': os.getcwd()}))
"""
    got, rid = run_json(s, key, code)
    assert in_range(got["uid"]) and got["euid"] == got["uid"] == got["gid"], got
    assert set(got["groups"]) <= {got["gid"]}, got  # no supplementary group of the host
    assert got["uid_map"][0] == str(got["uid"]) and got["uid_map"][2] == "1", got
    assert got["caps"] == ["0000000000000000"] * 5, got
    assert got["no_new_privs"] == "1" and got["seccomp"] == "2", got
    assert not got["became_root"]
    assert got["home"] == got["cwd"] == "/home/lyceum", got
    # On the host, what it made belongs to that uid, not to root.
    made = os.stat(os.path.join(s.data, "runs", rid, "work", "made-by-the-run"))
    assert made.st_uid == got["uid"] and made.st_gid == got["uid"], made


def test_a_run_cannot_undo_its_sandbox_or_reach_the_servers_keys(iso, key):
    s = iso[0]
    paths = [os.path.join(s.data, n) for n in ("jwt.key", "master.key", "invoice.key",
                                                "lyceumd.db")]
    code = SYSCALLS + f"""
MNT_DETACH, MS_REMOUNT, MS_BIND = 2, 32, 4096
res = {{}}
res['umount_tmp'] = 0 if libc.umount2(b'/tmp', MNT_DETACH) == 0 else ctypes.get_errno()
res['remount_root_rw'] = 0 if libc.mount(b'none', b'/', None, MS_REMOUNT, None) == 0 else ctypes.get_errno()
res['bind_root'] = 0 if libc.mount(b'/', b'/tmp', None, MS_BIND, None) == 0 else ctypes.get_errno()
res['unshare_user'] = 0 if libc.unshare(0x10000000) == 0 else ctypes.get_errno()
res['unshare_mount'] = 0 if libc.unshare(0x00020000) == 0 else ctypes.get_errno()
res['ptrace_attach_1'] = call(101, 16, 1, 0, 0)      # PTRACE_ATTACH to pid 1
res['bpf'] = call(321, 5, 0, 0)                         # BPF_PROG_LOAD
res['keyctl'] = call(250, 0, 0, 0, 0)
res['perf_event_open'] = call(298, 0, 0, -1, -1, 0)
res['kexec_load'] = call(246, 0, 0, 0, 0)
res['init_module'] = call(175, 0, 0, 0)
res['setns'] = call(308, 0, 0)
res['clone3'] = call(435, 0, 0)
res['io_uring_setup'] = call(425, 1, 0)
import fcntl, termios
try:
    fcntl.ioctl(1, termios.TIOCSTI, b'x'); res['tiocsti'] = 0
except OSError as e:
    res['tiocsti'] = e.errno
def attempt(f):
    try:
        f(); return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
res['keys'] = {{p: attempt(lambda p=p: open(p, 'rb').read()) for p in {paths!r}}}
res['shadow'] = attempt(lambda: open('/etc/shadow').read())
res['write_usr'] = attempt(lambda: open('/usr/lyceumd-was-here', 'w').write('x'))
res['write_etc'] = attempt(lambda: open('/etc/passwd', 'a').write('x'))
res['root'] = sorted(os.listdir('/'))
res['tmp'] = os.listdir('/tmp')
res['home'] = os.listdir('/home')
res['data_dir_visible'] = os.path.exists({s.data!r})
print(json.dumps(res))
"""
    got, _ = run_json(s, key, code)
    for call_name in ("umount_tmp", "remount_root_rw", "bind_root", "unshare_user",
                      "unshare_mount", "ptrace_attach_1", "bpf", "keyctl", "perf_event_open",
                      "kexec_load", "init_module", "setns", "io_uring_setup", "tiocsti"):
        assert got[call_name] == 1, (call_name, got)  # EPERM: refused, not merely failed
    assert got["clone3"] == 38, got  # ENOSYS, so that libc falls back to clone (checked)
    assert set(got["keys"].values()) == {"ENOENT"}, got  # not there at all
    assert got["shadow"] == "EACCES", got
    assert got["write_usr"] in ("EROFS", "EACCES") and got["write_etc"] in ("EROFS", "EACCES")
    assert not got["data_dir_visible"] and got["tmp"] == [], got
    assert not {"root", "srv", "media", "boot"} & set(got["root"]), got
    assert got["home"] == ["lyceum"], got  # its own directory, no one else's
    # The server is untouched and still serves.
    assert s.alive()
    for name in ("jwt.key", "master.key"):
        assert os.stat(os.path.join(s.data, name)).st_uid == 0


def test_no_host_socket_is_reachable_from_a_run(iso, key):
    s = iso[0]
    abstract = "lyceumd-isolation-" + uuid.uuid4().hex
    host_side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host_side.bind("\0" + abstract)
    host_side.listen(1)
    code = f"""
import json, os, socket, stat
found = []
for top in os.listdir('/'):
    if top in ('proc', 'sys'):
        continue
    for d, dirs, files in os.walk('/' + top):
        for n in dirs + files:
            p = os.path.join(d, n)
            try:
                if stat.S_ISSOCK(os.lstat(p).st_mode):
                    found.append(p)
            except OSError:
                pass
known = ['/run/docker.sock', '/var/run/docker.sock', '/run/docker/containerd/containerd.sock',
         '/run/containerd/containerd.sock', '/run/munge/munge.socket.2', '/run/dbus/system_bus_socket',
         '/run/systemd/journal/socket', '/dev/log']
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    c.connect('\\0{abstract}'); abstract = 'connected'
except OSError as e:
    abstract = type(e).__name__
print(json.dumps({{'sockets': found, 'known': [p for p in known if os.path.exists(p)],
                  'abstract': abstract}}))
"""
    try:
        got, _ = run_json(s, key, code)
    finally:
        host_side.close()
    assert got["sockets"] == [] and got["known"] == [], got
    assert got["abstract"] == "ConnectionRefusedError", got


def host_addresses():
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()
            if not line.split()[3].startswith("127.")]


def test_a_runs_network_reaches_neither_the_hosts_loopback_nor_inside_addresses(iso, key):
    s, index, denied = iso
    targets = [("127.0.0.1", s.port), ("10.0.2.2", s.port), ("10.0.2.2", denied.port),
               ("169.254.169.254", 80), ("10.0.2.2", 22)]
    targets += [(a, s.port) for a in host_addresses()]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(2)
    code = f"""
import json, socket
res = {{}}
for h, p in {targets!r}:
    c = socket.socket(); c.settimeout(5)
    try:
        c.connect((h, p)); res[f'{{h}}:{{p}}'] = 'connected:' + c.recv(64).decode(errors='replace')
    except OSError as e:
        res[f'{{h}}:{{p}}'] = type(e).__name__
for fam, typ, proto in [(socket.AF_PACKET, socket.SOCK_RAW, 0), (socket.AF_INET, socket.SOCK_RAW, 1),
                        (socket.AF_INET6, socket.SOCK_RAW, 58)]:
    try:
        socket.socket(fam, typ, proto); res[f'raw{{fam}}'] = 'open'
    except OSError as e:
        res[f'raw{{fam}}'] = e.errno
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b'leak', ('10.0.2.2', {udp.getsockname()[1]}))
# The sockets a run sees are its own network's only.
res['tcp'] = [l.split()[1] for l in open('/proc/net/tcp').read().splitlines()[1:]]
c = socket.socket(); c.settimeout(5); c.connect(('10.0.2.2', {index.port}))
c.sendall(b'GET /simple/lyceumdprobe/ HTTP/1.0\\r\\n\\r\\n')
res['allowed'] = c.recv(200).decode(errors='replace')
print(json.dumps(res))
"""
    before = denied.hits
    got, _ = run_json(s, key, code)
    for h, p in targets:
        assert not got[f"{h}:{p}"].startswith("connected"), (h, p, got)
    assert denied.hits == before
    assert got["raw17"] == 1 and got["raw2"] == 1 and got["raw10"] == 1, got
    with pytest.raises(socket.timeout):
        udp.recvfrom(16)
    assert f":{s.port:04X}" not in " ".join(got["tcp"]), got  # lyceumd's port is not listed
    assert got["allowed"].startswith("HTTP/1.0 200"), got  # the allowed mirror answers


def test_pip_installs_through_the_allowed_mirror_and_the_bucket_is_read_write(iso, key):
    s = iso[0]
    code = """
import json, lyceumdprobe, os
open('/mnt/s3/from-the-run.txt', 'w').write('written by a run')
print(json.dumps({'answer': lyceumdprobe.ANSWER, 'uid': os.getuid()}))
"""
    got, _ = run_json(s, key, code, timeout=120, requirements_content="lyceumdprobe==1.0\n")
    assert got["answer"] == 42
    r = s.get("/storage/download/from-the-run.txt", key)
    assert r.status_code == 200 and r.text == "written by a run", r.text
    # A later run (another uid) overwrites what the first one wrote.
    code2 = """
import json, os
open('/mnt/s3/from-the-run.txt', 'w').write('overwritten')
print(json.dumps({'uid': os.getuid()}))
"""
    got2, _ = run_json(s, key, code2)
    assert got2["uid"] != got["uid"]
    assert s.get("/storage/download/from-the-run.txt", key).text == "overwritten"


def test_without_network_a_run_has_its_loopback_only():
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10"}],
                       sandbox_network=False)
    s = Server(["--config", cfg])
    try:
        key = s.new_user(credits=10)["key"]
        code = """
import json, socket
res = {'ifaces': [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]}
for h in ('10.0.2.2', '1.1.1.1'):
    c = socket.socket(); c.settimeout(3)
    try:
        c.connect((h, 80)); res[h] = 'connected'
    except OSError as e:
        res[h] = type(e).__name__
print(json.dumps(res))
"""
        got, _ = run_json(s, key, code)
        assert got["ifaces"] == ["lo"], got
        assert got["10.0.2.2"] != "connected" and got["1.1.1.1"] != "connected", got
    finally:
        s.stop()
        os.unlink(cfg)


def uids_running():
    """The uids of the sandbox's range that own a live process (not a zombie) on the host."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
            uid = int(st["Uid"].split()[0])
            if in_range(uid) and not st["State"].strip().startswith(("Z", "X")):
                found.add(uid)
        except (OSError, KeyError, ValueError):
            pass
    return found


def gone(uid, seconds=10):
    """Whether no process of uid is left, allowing the kernel the time a SIGKILL takes."""
    deadline = time.time() + seconds
    while uid in uids_running():
        if time.time() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_runs_do_not_see_or_signal_each_other_and_leave_nothing_behind(iso, key):
    s = iso[0]
    victim = start(s, key, "import os, time\nprint(os.getuid(), flush=True)\ntime.sleep(8)\n"
                           "print('victim done')", timeout=60)
    time.sleep(1)
    code = """
import json, os, signal, subprocess, time
procs = [p for p in os.listdir('/proc') if p.isdigit()]
killed = []
for pid in range(1, 4096):
    try:
        os.kill(pid, signal.SIGKILL) if pid != os.getpid() and pid != 1 else None
        killed.append(pid)
    except (ProcessLookupError, PermissionError):
        pass
# Something that tries to outlive the run: a daemon in a session of its own.
subprocess.Popen(['setsid', 'sleep', '300'], start_new_session=True)
print(json.dumps({'uid': os.getuid(), 'procs': procs}))
"""
    got, rid = run_json(s, key, code)
    assert len(got["procs"]) <= 4, got  # its own processes only: bubblewrap's init and itself
    out = output_of(follow(victim["streaming_url"]))
    assert "victim done" in out, out  # the other run went on
    victim_uid = int(out.split()[0])
    assert victim_uid != got["uid"] and in_range(victim_uid)
    assert wait_end(s, key, victim["execution_id"])["status"] == "completed"
    assert gone(got["uid"])  # its daemon did not outlive it


def test_prior_imports_with_long_names_neither_crash_the_server_nor_run_twice(iso, key):
    s = iso[0]
    names = ["m" + ("x" * 120) + str(i) for i in range(100)]
    run = start(s, key, "print('never')", prior_imports=names)
    st = wait_end(s, key, run["execution_id"])
    assert st["status"] == "failed", st
    out = output_of(follow(run["streaming_url"]))
    assert "ModuleNotFoundError" in out and "never" not in out, out[-500:]
    r = s.post("/execution/streaming/start", key,
               json={"code": "print(1)", "prior_imports": names + ["one_too_many"]})
    assert r.status_code == 422, r.text
    assert s.alive()


def test_a_killed_server_leaves_no_run_behind():
    s = Server()
    try:
        key = s.new_user(credits=10)["key"]
        run = start(s, key, "import os, subprocess, time\nprint(os.getuid(), flush=True)\n"
                            "subprocess.Popen(['setsid', 'sleep', '300'], start_new_session=True)\n"
                            "time.sleep(300)", timeout=600)
        events = []
        deadline = time.time() + 30
        with requests.post(run["streaming_url"], stream=True, timeout=30) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data: ") and '"output"' in line:
                    events.append(json.loads(line[6:]))
                    break
                assert time.time() < deadline
        uid = int(output_of(events).split()[0])
        assert uid in uids_running()
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.start()
        assert gone(uid)
        st = wait_end(s, key, run["execution_id"])
        assert st["status"] == "system_failure", st
    finally:
        s.stop()


def test_a_replica_answers_only_lyceumd_on_its_own_network():
    """Another tenant's run finds no replica on the host's loopback; the replica's own
    network is reachable only by entering it (as lyceumd does), and even there it answers
    nothing without the replica's key."""
    fake = os.path.join(os.path.dirname(iu.tiny()[0]), "fake_model_server.py")
    with open(os.path.join(os.path.dirname(__file__), "fake_model_server.py"), "rb") as f:
        with open(fake, "wb") as g:
            g.write(f.read())
    cfg = write_config(
        [{"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 8}],
        sandbox_ro_paths=[os.path.dirname(fake)],
        inference={"commands": {"cpu": f"/usr/bin/python3 {fake} {{port}} {{model_path}} "
                                       "--api-key {api_key}"}, "tick_ms": 50})
    s = Server(["--config", cfg])
    try:
        iu.add_model(s)
        owner = s.new_user(credits=10)
        dep = iu.create(s, owner["key"])
        iu.wait_status(s, owner["key"], dep, "running")
        logs = [os.path.join(s.data, "inference", dep, n)
                for n in os.listdir(os.path.join(s.data, "inference", dep)) if n.endswith(".log")]
        with open(logs[0]) as f:
            probe = json.loads(f.readline().split("probe: ", 1)[1])
        argv = probe["argv"]
        port, replica_key = int(argv[1]), argv[argv.index("--api-key") + 1]
        assert in_range(probe["uid"]), probe
        # Nothing listens on the host for it.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=3)
        # Another tenant's run: neither its loopback nor the gateway leads there.
        thief = s.new_user(credits=10)
        code = f"""
import json, socket
res = {{'tcp': open('/proc/net/tcp').read().count(':{port:04X}')}}
for h in ('127.0.0.1', '10.0.2.2'):
    c = socket.socket(); c.settimeout(3)
    try:
        c.connect((h, {port})); res[h] = 'connected'
    except OSError as e:
        res[h] = type(e).__name__
print(json.dumps(res))
"""
        got, _ = run_json(s, thief["key"], code)
        assert got["tcp"] == 0 and got["127.0.0.1"] != "connected" and \
            got["10.0.2.2"] != "connected", got
        # In its own network, without and with the key.
        pid = [int(p) for p in os.listdir("/proc") if p.isdigit() and uid_of(p) == probe["uid"]
               and cmdline(p).startswith("/usr/bin/python3")][0]  # not bubblewrap's
        url = f"http://127.0.0.1:{port}/v1/models"

        def curl(*extra):
            return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "curl", "-s", "-o",
                                   "/dev/null", "-w", "%{http_code}", *extra, url],
                                  capture_output=True, text=True, timeout=20).stdout
        assert curl() == "401"
        assert curl("-H", "Authorization: Bearer wrong") == "401"
        assert curl("-H", f"Authorization: Bearer {replica_key}") == "200"
        # lyceumd itself reaches it (through the replica's network, with the key).
        r = s.get("/models", owner["key"])
        assert r.status_code == 200
    finally:
        s.stop()
        os.unlink(cfg)


def uid_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int([line for line in f if line.startswith("Uid:")][0].split()[1])
    except (OSError, IndexError):
        return -1


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def test_a_sandbox_the_host_cannot_give_stops_the_server_with_the_reason():
    """The sandbox is proven at start-up: a config it cannot honour is refused loudly, never
    run unconfined."""
    for extra, reason in [({"sandbox_ro_paths": ["/nonexistent-lyceumd"]},
                           "cannot show /nonexistent-lyceumd in the sandbox"),
                          ({"sandbox_network_allow": ["10.0.0.0/33"]},
                           "is not an IPv4 address or CIDR")]:
        cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10"}], **extra)
        try:
            with pytest.raises(RuntimeError) as e:
                Server(["--config", cfg])
            assert reason in str(e.value) and "the sandbox cannot be set up" in str(e.value), \
                str(e.value)[-1000:]
        finally:
            os.unlink(cfg)


def test_runs_started_together_each_get_a_sandbox_and_uid_of_their_own(iso, key):
    """Sandboxes made at the same moment do not trip over each other (their network setup
    once raced bubblewrap's own), and no two runs going at once share a uid."""
    s = iso[0]
    code = "import os, time\nprint(os.getuid(), flush=True)\ntime.sleep(1)"
    runs = [start(s, key, code, timeout=60) for _ in range(16)]
    uids = []
    for run in runs:
        st = wait_end(s, key, run["execution_id"], timeout=120)
        out = output_of(follow(run["streaming_url"]))
        assert st["status"] == "completed", (st, out)
        uids.append(int(out.split()[0]))
    assert all(in_range(u) for u in uids)
    assert len(set(uids)) == len(uids), uids  # four at once at most here, all distinct anyway


def test_the_data_directory_is_made_private():
    """Runs execute as other users of the host: the data directory (database, keys, buckets)
    must not be open to them, even when an operator created it open."""
    s = Server()
    try:
        s.stop()
        os.chmod(s.data, 0o755)
        s.start()
        assert os.stat(s.data).st_mode & 0o777 == 0o700
        assert os.stat(os.path.join(s.data, "buckets")).st_mode & 0o777 == 0o700
    finally:
        s.stop()
