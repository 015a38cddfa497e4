"""Inference bench: time to first token and tokens/s of 4 concurrent streams through lyceumd
against straight to the same llama-server replica, and a 1,000-line batch's wall time.
usage: python3 bench/inference.py [path/to/lyceumd]   (prints figures; not a test)"""

import json
import os
import statistics
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
os.environ.setdefault("LYCEUMD_BIN", sys.argv[1] if len(sys.argv) > 1 else "build/lyceumd")
import conftest  # noqa: E402
import inference_util as iu  # noqa: E402

conftest.BIN = os.environ["LYCEUMD_BIN"]
TOKENS, STREAMS, ROUNDS = 128, 4, 5


def stream(url, headers, model):
    t0 = time.perf_counter()
    first, n = None, 0
    body = {"model": model, "stream": True, "max_tokens": TOKENS,
            "messages": [{"role": "user", "content": "bench"}]}
    with requests.post(url, json=body, headers=headers, stream=True, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: {") and b'"content":"' in line:
                n += 1
                if first is None:
                    first = time.perf_counter() - t0
    return first, n / (time.perf_counter() - t0 - first)


def run(url, headers, model):
    ttft, tps = [], []
    for _ in range(ROUNDS):
        res = [None] * STREAMS
        ts = [threading.Thread(target=lambda i=i: res.__setitem__(i, stream(url, headers, model)))
              for i in range(STREAMS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ttft += [r[0] for r in res]
        tps += [r[1] for r in res]
    return statistics.median(ttft) * 1000, statistics.median(tps)


def main():
    s = conftest.Server(["--config", iu.config()])
    try:
        iu.add_model(s)
        u = s.new_user(credits=100)
        dep = iu.create(s, u["key"])
        iu.wait_status(s, u["key"], dep, "running")
        h = {"Authorization": "Bearer " + u["key"]}
        port = None
        for line in open(s.log_path):
            if "started (pid" in line and dep in line:
                port = int(line.rsplit("port ", 1)[1].rstrip(")\n"))
        run(f"http://127.0.0.1:{port}/v1/chat/completions", {}, dep)  # warm up
        d_ttft, d_tps = run(f"http://127.0.0.1:{port}/v1/chat/completions", {}, dep)
        l_ttft, l_tps = run(s.base + "/openai/v1/chat/completions", h, dep)
        print(f"{STREAMS} concurrent streams of {TOKENS} tokens, median of {ROUNDS * STREAMS}:")
        print(f"  direct:  ttft {d_ttft:.2f} ms, {d_tps:.0f} tokens/s per stream")
        print(f"  lyceumd: ttft {l_ttft:.2f} ms, {l_tps:.0f} tokens/s per stream")
        print(f"  added ttft {l_ttft - d_ttft:+.2f} ms, tokens/s ratio {l_tps / d_tps:.3f}")
        lines = "\n".join(json.dumps({
            "custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": dep, "max_tokens": 8,
                     "messages": [{"role": "user", "content": str(i)}]}}) for i in range(1000))
        f = s.post("/files", u["key"], files={"file": ("b.jsonl", lines)},
                   data={"purpose": "batch"}).json()
        t0 = time.time()
        b = s.post("/batches", u["key"], json={"input_file_id": f["id"],
                                               "completion_window": "24h"}).json()
        while b["status"] not in ("completed", "failed"):
            time.sleep(0.05)
            b = s.get(f"/batches/{b['id']}", u["key"]).json()
        print(f"1,000-line batch (8 tokens each): {b['status']} in {time.time() - t0:.2f} s, "
              f"{b['request_counts']}")
    finally:
        s.stop()


if __name__ == "__main__":
    main()
