#!/usr/bin/env python3
"""Benchmarks of runs (not a test: it prints figures). Usage:

    python3 bench/runs.py [path/to/lyceumd]      (default build/lyceumd, the release build)

Starts its own lyceumd on a free port with a fresh data directory and prints:
  1. submit-to-first-output of print("hi") through lyceumd, against running
     python3 -c 'print("hi")' directly (p50, p90; target: overhead <= 15 ms p50);
  2. runs accepted per second with 16 concurrent clients (wrk POSTing starts; target >= 1,000/s);
  3. SSE throughput of one run that writes 200 MB (target >= 100 MB/s);
  4. 100 trivial runs end to end through lyceumd, against the same 100 jobs through sbatch on
     the one-node Slurm of tests/slurm when Slurm is installed (target: >= 20x faster);
  5. the same 100 runs through lyceumd's Slurm backend against those sbatch jobs (target:
     lyceumd adds <= 10% to the total time).
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "lyceumd")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
PREFIX = "/api/v2/external"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data, machine_types):
    cfg = os.path.join(data, "bench-config.json")
    with open(cfg, "w") as f:
        json.dump({"machine_types": machine_types, "access_log": False}, f)
    port = free_port()
    log = open(os.path.join(data, "server.log"), "ab")
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data", data,
                             "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(base + "/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    out = subprocess.run([BIN, "--data", data, "user", "add", "bench@example.com",
                          "--credits", "1000"], capture_output=True, text=True, check=True)
    key = subprocess.run([BIN, "--data", data, "key", "add", "bench@example.com", "bench"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return proc, base, key


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def first_output(sess, base, key, n=40):
    h = {"Authorization": "Bearer " + key}
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = sess.post(base + PREFIX + "/execution/streaming/start", headers=h,
                      json={"code": 'print("hi")'})
        url = r.json()["streaming_url"]
        with sess.post(url, stream=True, headers={"Accept": "text/event-stream"}) as s:
            for line in s.iter_lines():
                if line.startswith(b"data: ") and b'"output"' in line:
                    lat.append((time.perf_counter() - t0) * 1000)
                    break
            for _ in s.iter_lines():
                pass
    direct = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.Popen([PY, "-c", 'print("hi")'], stdout=subprocess.PIPE)
        p.stdout.readline()
        direct.append((time.perf_counter() - t0) * 1000)
        p.wait()
    return lat, direct


def accepted_per_second(base, key, seconds=5):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\nwrk.body = \'{"code": "pass", "execution_type": '
                 '"queue"}\'\nwrk.headers["Content-Type"] = "application/json"\n'
                 f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    script.close()
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", script.name,
                          base + PREFIX + "/execution/streaming/start"],
                         capture_output=True, text=True).stdout
    os.unlink(script.name)
    rps = next(float(l.split()[1]) for l in out.splitlines() if l.startswith("Requests/sec"))
    p99 = next(l.split()[1] for l in out.splitlines() if l.strip().startswith("99%"))
    non2xx = [l for l in out.splitlines() if "Non-2xx" in l]
    return rps, p99, non2xx


def sse_throughput(sess, base, key, mb=200):
    h = {"Authorization": "Bearer " + key}
    code = ("import sys\nw = sys.stdout.buffer\nline = b'x' * 1023 + b'\\n'\n"
            f"block = line * 64\nfor _ in range({mb * 16}):\n    w.write(block)\nw.flush()\n")
    r = sess.post(base + PREFIX + "/execution/streaming/start", headers=h,
                  json={"code": code, "timeout": 600})
    url = r.json()["streaming_url"]
    content = 0
    t0 = time.perf_counter()
    out = subprocess.run(["curl", "-s", "-N", "-X", "POST", "-o", "/dev/null", "-w",
                          "%{size_download} %{time_starttransfer} %{time_total}", url],
                         capture_output=True, text=True).stdout.split()
    total = time.perf_counter() - t0
    size = int(out[0])
    content = mb * 1024 * 1024
    return content, size, total


def hundred_runs(sess, base, key, n=100):
    h = {"Authorization": "Bearer " + key}
    t0 = time.perf_counter()
    ids = [sess.post(base + PREFIX + "/execution/streaming/start", headers=h,
                     json={"code": "pass", "execution_type": "wide"}).json()["execution_id"]
           for _ in range(n)]
    left = set(ids)
    while left:
        for i in list(left):
            st = sess.get(base + PREFIX + f"/execution/streaming/{i}/status", headers=h).json()
            if st["status"] in ("completed", "failed", "system_failure", "aborted"):
                assert st["status"] == "completed", st
                left.discard(i)
        time.sleep(0.01)
    return time.perf_counter() - t0


def slurm_hundred(n=100):
    if not shutil.which("sbatch"):
        return None, "Slurm is not installed (apt-get install slurmctld slurmd slurm-client munge)"
    env = dict(os.environ)
    conf = "/tmp/slurm-local/conf/slurm.conf"
    if subprocess.run(["sinfo"], env=dict(env, SLURM_CONF=conf), capture_output=True).returncode:
        start = os.path.join(ROOT, "tests", "slurm", "start.sh")
        r = subprocess.run(["sh", start], capture_output=True, text=True)
        if r.returncode:
            return None, "could not start Slurm: " + r.stderr[-300:]
    env["SLURM_CONF"] = conf
    work = tempfile.mkdtemp(prefix="bench-slurm-")
    t0 = time.perf_counter()
    jobs = []
    for i in range(n):
        r = subprocess.run(["sbatch", "--parsable", "-o", f"{work}/%j.out", "--wrap",
                            f"{PY} -c pass"], capture_output=True, text=True, env=env)
        if r.returncode:
            return None, "sbatch failed: " + r.stderr
        jobs.append(r.stdout.strip().split(";")[0])
    while True:
        q = subprocess.run(["squeue", "-h", "-j", ",".join(jobs)], capture_output=True,
                           text=True, env=env).stdout.strip()
        if not q:
            break
        time.sleep(0.1)
    took = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    return took, None


def slurm_backend_hundred(n=100):
    data = tempfile.mkdtemp(prefix="lyceumd-bench-slurm-")
    shared = tempfile.mkdtemp(prefix="lyceumd-bench-shared-")
    cfg = os.path.join(data, "bench-config.json")
    with open(cfg, "w") as f:
        json.dump({"machine_types": [{"hardware_profile": "cpu"},
                                     {"hardware_profile": "slurm.cpu", "backend": "slurm",
                                      "vcpus": 1}],
                   "access_log": False,
                   "slurm": {"rest_url": "http://127.0.0.1:6820",
                             "jwt_key": "/tmp/slurm-local/jwt_hs256.key", "user": "root",
                             "shared_dir": shared, "poll_ms": 100}}, f)
    port = free_port()
    log = open(os.path.join(data, "server.log"), "ab")
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data", data,
                             "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(base + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        subprocess.run([BIN, "--data", data, "user", "add", "b@example.com", "--credits", "100"],
                       capture_output=True, check=True)
        key = subprocess.run([BIN, "--data", data, "key", "add", "b@example.com", "b"],
                             capture_output=True, text=True, check=True).stdout.strip()
        sess = requests.Session()
        h = {"Authorization": "Bearer " + key}
        t0 = time.perf_counter()
        ids = [sess.post(base + PREFIX + "/execution/streaming/start", headers=h,
                         json={"code": "pass", "execution_type": "slurm.cpu"})
               .json()["execution_id"] for _ in range(n)]
        left = set(ids)
        while left:
            for i in list(left):
                st = sess.get(base + PREFIX + f"/execution/streaming/{i}/status",
                              headers=h).json()
                if st["status"] in ("completed", "failed", "system_failure", "aborted"):
                    assert st["status"] == "completed", st
                    left.discard(i)
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def main():
    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}: run make first")
    data = tempfile.mkdtemp(prefix="lyceumd-bench-")
    machine_types = [
        {"hardware_profile": "cpu", "max_concurrent": 4},
        {"hardware_profile": "wide", "max_concurrent": 8},
        {"hardware_profile": "queue", "max_concurrent": 1},
    ]
    proc, base, key = start_server(data, machine_types)
    sess = requests.Session()
    try:
        lat, direct = first_output(sess, base, key)
        over = statistics.median(lat) - statistics.median(direct)
        print(f"first output of print(\"hi\"): lyceumd p50 {statistics.median(lat):.1f} ms "
              f"p90 {pct(lat, 90):.1f} ms; python3 -c directly p50 "
              f"{statistics.median(direct):.1f} ms p90 {pct(direct, 90):.1f} ms; "
              f"overhead p50 {over:.1f} ms (target <= 15)")
        secs = hundred_runs(sess, base, key)
        print(f"100 trivial runs end to end through lyceumd: {secs:.2f} s "
              f"({100 / secs:.0f} runs/s, 8 at once)")
        content, size, total = sse_throughput(sess, base, key)
        print(f"SSE: a run writing {content >> 20} MB streamed in {total:.2f} s: "
              f"{content / total / 1e6:.0f} MB/s of output ({size / total / 1e6:.0f} MB/s on "
              f"the wire) (target >= 100)")
        rps, p99, non2xx = accepted_per_second(base, key)
        print(f"runs accepted: {rps:.0f}/s with 16 concurrent clients, p99 {p99} "
              f"(target >= 1000/s){' ' + non2xx[0].strip() if non2xx else ''}")
        sl, why = slurm_hundred()
        if sl is None:
            print(f"sbatch comparison skipped: {why}")
        else:
            print(f"the same 100 jobs through sbatch: {sl:.2f} s; lyceumd is {sl / secs:.1f}x "
                  f"faster (target >= 20x)")
            via = slurm_backend_hundred()
            print(f"100 runs through lyceumd's Slurm backend: {via:.2f} s, against {sl:.2f} s "
                  f"straight through sbatch: lyceumd adds {(via / sl - 1) * 100:+.1f}% "
                  f"(target <= 10%)")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
