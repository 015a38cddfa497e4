#!/usr/bin/env python3
"""Benchmarks of the web console (not a test: it prints figures). Usage:

    python3 bench/console.py [path/to/lyceumd] [RUNS]   (default build/lyceumd, 10000 runs)

Starts its own lyceumd (the release build) on a free port with a fresh data directory, gives
one user RUNS runs (each submitted and aborted at once, so that nothing but the list grows:
the runs are real rows, made through the API), and drives Debian's headless Chromium
(bench/console.mjs, with tests/e2e/console's puppeteer-core) to print:
  1. the first load of the sign-in page in a fresh browser: bytes transferred (gzipped, as the
     browser takes them), requests, and the time to interactive (navigation start to the form
     present with the main thread idle); the same reload with a warm cache (304s);
  2. signing in to the runs list of RUNS runs: the time until the first page's rows show;
  3. paging through that list: the time from a click on Next (and on a jump to the last page)
     to the new rows shown, p50 and p90, and the main thread's long tasks (> 50 ms) meanwhile.
Targets: first load < 100 KB and < 1 s to interactive; a page flip < 200 ms p90 with no long
task over 200 ms, at 10,000 runs as at 100.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "lyceumd")
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
PREFIX = "/api/v2/external"
DRIVER = os.path.join(ROOT, "tests", "e2e", "console")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if not os.path.isdir(os.path.join(DRIVER, "node_modules", "puppeteer-core")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=DRIVER,
                       check=True, capture_output=True)
    data = tempfile.mkdtemp(prefix="lyceumd-bench-console-")
    cfg = os.path.join(data, "bench-config.json")
    with open(cfg, "w") as f:
        json.dump({"machine_types": [{"hardware_profile": "cpu", "price_per_hour": "0.10",
                                      "max_concurrent": 1}], "access_log": False}, f)
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
        password = "bench-password-1"
        subprocess.run([BIN, "--data", data, "user", "add", "bench@example.com", "--credits",
                        "1000", "--password-stdin"], input=password + "\n", text=True,
                       capture_output=True, check=True)
        key = subprocess.run([BIN, "--data", data, "key", "add", "bench@example.com", "bench"],
                             capture_output=True, text=True, check=True).stdout.strip()
        h = {"Authorization": "Bearer " + key}
        t0 = time.time()

        def one(i):
            with requests.Session() as s:
                r = s.post(base + PREFIX + "/execution/streaming/start", headers=h, timeout=60,
                           json={"code": "import time; time.sleep(60)", "file_name": f"run{i}.py",
                                 "timeout": 600})
                r.raise_for_status()
                s.post(base + PREFIX + "/workloads/abort/" + r.json()["execution_id"],
                       headers=h, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(RUNS)))
        total = requests.get(base + PREFIX + "/billing/history?limit=1", headers=h,
                             timeout=60).json()["total_executions"]
        print(f"made {total} runs through the API in {time.time() - t0:.1f} s")
        p = subprocess.run(["node", os.path.join(ROOT, "bench", "console.mjs"),
                            json.dumps({"base": base, "email": "bench@example.com",
                                        "password": password, "runs": total})],
                           capture_output=True, text=True, timeout=900)
        if p.returncode:
            print(p.stderr[-3000:])
            raise SystemExit("bench/console.mjs failed")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        f = out["first_load"]
        print(f"first load (sign-in page, cold cache): {f['bytes'] / 1024:.1f} KB in "
              f"{f['requests']} requests, interactive in {f['interactive_ms']:.0f} ms "
              f"(DOMContentLoaded {f['dcl_ms']:.0f} ms)")
        w = out["warm_load"]
        print(f"reload, warm cache: {w['bytes'] / 1024:.1f} KB in {w['requests']} requests, "
              f"interactive in {w['interactive_ms']:.0f} ms")
        print(f"sign in to the list of {total} runs: first page shown in "
              f"{out['signin_to_rows_ms']:.0f} ms")
        fl = out["flips"]
        if fl["n"]:
            print(f"page flips ({fl['n']} x Next, {out['page_size']} runs a page): "
                  f"p50 {fl['p50']:.0f} ms, p90 {fl['p90']:.0f} ms; jump to the last page "
                  f"({out['pages']}): {out['last_page_ms']:.0f} ms")
        print(f"long tasks meanwhile: {out['long_tasks']} (longest {out['longest_task_ms']:.0f} "
              f"ms)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
