"""Inference bench: time to first token and tokens/s of 4 concurrent streams through lyceumd
against straight to the same llama-server replica (in turn, round after round), and a
1,000-line batch's wall time.
usage: python3 bench/inference.py [path/to/lyceumd]   (prints figures; not a test)
BENCH_TOKENS sets the tokens per stream (256)."""

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
TOKENS, STREAMS, ROUNDS = int(os.environ.get("BENCH_TOKENS", 256)), 4, 15


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


def one_round(url, headers, model):
    """STREAMS streams at once; their (ttft, tokens/s) pairs."""
    res = [None] * STREAMS
    ts = [threading.Thread(target=lambda i=i: res.__setitem__(i, stream(url, headers, model)))
          for i in range(STREAMS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return res


def compare(direct, through, headers, model):
    """Rounds in turn, direct then through lyceumd, so that drift in this machine's speed
    weighs on both alike; medians over every stream of every round, and the median of the
    rounds' own ratios."""
    d_ttft, d_tps, l_ttft, l_tps, ratios, added = [], [], [], [], [], []
    for _ in range(ROUNDS):
        d = one_round(direct, {}, model)
        l = one_round(through, headers, model)
        d_ttft += [r[0] for r in d]
        d_tps += [r[1] for r in d]
        l_ttft += [r[0] for r in l]
        l_tps += [r[1] for r in l]
        ratios.append(statistics.median(r[1] for r in l) / statistics.median(r[1] for r in d))
        added.append(statistics.median(r[0] for r in l) - statistics.median(r[0] for r in d))
    return (statistics.median(d_ttft) * 1000, statistics.median(d_tps),
            statistics.median(l_ttft) * 1000, statistics.median(l_tps),
            statistics.median(added) * 1000, statistics.median(ratios))


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
        direct = f"http://127.0.0.1:{port}/v1/chat/completions" if port else None
        through = s.base + "/openai/v1/chat/completions"
        try:  # a sandboxed replica listens on its own loopback only: no direct path then
            if not direct or requests.post(direct, timeout=5, json={
                    "model": dep, "max_tokens": 1,
                    "messages": [{"role": "user", "content": "x"}]}).status_code != 200:
                direct = None
        except requests.RequestException:
            direct = None
        if direct:
            one_round(direct, {}, dep)  # warm up
        one_round(through, h, dep)
        if direct:
            d_ttft, d_tps, l_ttft, l_tps, added, ratio = compare(direct, through, h, dep)
            print(f"{STREAMS} concurrent streams of {TOKENS} tokens, {ROUNDS} rounds each way "
                  f"in turn; medians of {ROUNDS * STREAMS} streams:")
            print(f"  direct:  ttft {d_ttft:.2f} ms, {d_tps:.0f} tokens/s per stream")
            print(f"  lyceumd: ttft {l_ttft:.2f} ms, {l_tps:.0f} tokens/s per stream")
            print(f"  median over rounds: added ttft {added:+.2f} ms, tokens/s ratio {ratio:.3f}")
        else:
            res = [r for _ in range(ROUNDS) for r in one_round(through, h, dep)]
            print(f"{STREAMS} concurrent streams of {TOKENS} tokens, {ROUNDS} rounds through "
                  f"lyceumd (the replica is sandboxed: its own loopback, no direct path to "
                  f"compare with); medians of {ROUNDS * STREAMS} streams:")
            print(f"  lyceumd: ttft {statistics.median(r[0] for r in res) * 1000:.2f} ms, "
                  f"{statistics.median(r[1] for r in res):.0f} tokens/s per stream")
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
