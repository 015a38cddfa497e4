#!/usr/bin/python3
"""Run logs: how fast lyceumd takes in the output of one run that writes lines as fast as it
can, and how long GET /logs/execution takes for the newest 1,000 lines of a 1,000,000-line
run. Prints figures; not a test.

usage: python3 bench/logs.py [LYCEUMD_BINARY]   (default build/lyceumd, the release build)
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.environ["LYCEUMD_BIN"] = os.path.abspath(
    sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "lyceumd"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import requests  # noqa: E402

from conftest import Server  # noqa: E402
from runs_util import start, wait_end, write_config  # noqa: E402

LINES = 5_000_000
WRITER = f"""
import os, sys, time
chunk = ''.join('log line %08d of a run that writes as fast as it can\\n' % i
                for i in range(100000)).encode()
t = time.time()
for _ in range({LINES} // 100000):
    sys.stdout.buffer.write(chunk)
sys.stdout.buffer.flush()
print('%.6f' % (time.time() - t), file=sys.stderr)
"""
MILLION = """
import sys
sys.stdout.write(''.join('line %d\\n' % i for i in range(1000000)))
"""


def writer_alone():
    """The same program writing into a pipe that cat drains: the writer's own speed."""
    p = subprocess.run(f"{sys.executable} -c \"$CODE\" | cat >/dev/null", shell=True,
                       env=dict(os.environ, CODE=WRITER), capture_output=True, text=True)
    return float(p.stderr.strip().splitlines()[-1])


def main():
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10",
                         "max_concurrent": 4}], sandbox=False)
    s = Server(["--config", cfg, "--no-access-log"])
    try:
        u = s.new_user(credits=100)
        key = u["key"]

        run = start(s, key, WRITER)
        rid = run["execution_id"]
        assert wait_end(s, key, rid, timeout=600)["status"] == "completed"
        body = s.get(f"/logs/execution/{rid}", key, params={"limit": 2}).json()
        secs = float(body["logs"][-1]["message"])
        assert body["total"] == LINES + 1, body["total"]
        alone = writer_alone()
        log_bytes = os.path.getsize(os.path.join(s.data, "runs", rid, "output.log"))
        idx_bytes = os.path.getsize(os.path.join(s.data, "runs", rid, "lines.idx"))
        print(f"ingest: {LINES:,} lines ({log_bytes / 2**20:.0f} MiB log + "
              f"{idx_bytes / 2**20:.0f} MiB index) from one run in {secs:.2f} s = "
              f"{LINES / secs:,.0f} lines/s (target >= 500,000); the same writer into "
              f"| cat: {LINES / alone:,.0f} lines/s")

        run = start(s, key, MILLION)
        rid = run["execution_id"]
        assert wait_end(s, key, rid, timeout=600)["status"] == "completed"
        url = s.url(f"/logs/execution/{rid}")
        sess = requests.Session()
        sess.headers["Authorization"] = "Bearer " + key
        times = []
        for i in range(200):
            t = time.perf_counter()
            r = sess.get(url, params={"limit": 1000})
            times.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200
        body = r.json()
        assert body["total"] == 1000000 and body["logs"][-1]["message"] == "line 999999"
        times.sort()
        print(f"tail: newest 1,000 of 1,000,000 lines over HTTP: median "
              f"{statistics.median(times):.2f} ms, p99 {times[int(len(times) * 0.99) - 1]:.2f} ms,"
              f" max {times[-1]:.2f} ms (target <= 10 ms; {len(r.content):,} bytes of JSON)")
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)


if __name__ == "__main__":
    main()
