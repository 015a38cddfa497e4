"""A stand-in model server for the inference tests that look at how lyceumd starts a replica.

Usage: fake_model_server.py PORT [MODEL_PATH] [--api-key KEY]. It first writes one line to
its stdout (the replica's log, DATA/inference/<deployment>/<replica>.log), "probe: " and a
JSON object of what it sees: its environment (HF_TOKEN, CUDA_VISIBLE_DEVICES, HOME), its
command line, its pid and uid, whether the data directory's database is visible (the data
directory is found from HOME when that is DATA/inference/<dep>/home, else from a model file
kept at DATA/<dir>/<file>), whether HOME is writable and whether the model file can be read and
written. Then it serves, on 127.0.0.1:PORT until it is killed, GET /health with 200 to anyone
and GET /v1/models with 200 only with "Authorization: Bearer KEY" (401 otherwise), as
llama-server and vLLM do with --api-key, and POST /v1/chat/completions (the same key) with a
one-token completion.

Options for tests of limits and of timing-free races:
  --forks N     before serving, fork up to N children at once; the probe's "forks" says how
                many the kernel allowed (all end before it serves).
  --alloc MB    before serving, a child allocates MB MiB; the probe's "alloc" says how it
                ended: "exit 0", "exit 1" (MemoryError) or "signal 9" (killed).
  --gate        completions are held: the k-th one (from 0) to arrive is answered only once
                the file HOME/release holds a number above k."""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def writable(path):
    try:
        with open(path, "ab"):
            pass
        return True
    except OSError:
        return False


def probe(model):
    home = os.environ.get("HOME", "")
    data = os.path.dirname(os.path.dirname(os.path.dirname(home)))
    if home == "/home/lyceum" and model:
        data = os.path.dirname(os.path.dirname(model))
    out = {
        "hf_token": os.environ.get("HF_TOKEN"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "home": home,
        "home_writable": writable(os.path.join(home, "probe")),
        "argv": sys.argv,
        "pid": os.getpid(),
        "uid": os.getuid(),
        "root_entries": sorted(os.listdir("/")),
        "data": data,
        "db_visible": os.path.exists(os.path.join(data, "lyceumd.db")),
        "data_entries": sorted(os.listdir(data)) if os.path.isdir(data) else None,
    }
    if model:
        try:
            with open(model, "rb") as f:
                out["model_head"] = f.read(64).decode(errors="replace")
        except OSError as e:
            out["model_head"] = None
            out["model_error"] = str(e)
        out["model_writable"] = writable(model)
    return out


def limits(forks, alloc_mb):
    """Tries the process and memory limits it runs under (see --forks and --alloc)."""
    out = {}
    if forks:
        r, w = os.pipe()
        kids = []
        for _ in range(forks):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                os.close(w)
                os.read(r, 1)  # until the parent closes its end
                os._exit(0)
            kids.append(pid)
        os.close(w)
        os.close(r)
        for k in kids:
            os.waitpid(k, 0)
        out["forks"] = len(kids)
    if alloc_mb:
        pid = os.fork()
        if pid == 0:
            try:
                b = bytearray(alloc_mb << 20)
                b[::4096] = b"x" * len(b[::4096])
                os._exit(0)
            except MemoryError:
                os._exit(1)
        _, st = os.waitpid(pid, 0)
        out["alloc"] = (f"signal {os.WTERMSIG(st)}" if os.WIFSIGNALED(st)
                        else f"exit {os.WEXITSTATUS(st)}")
    return out


KEY = None
GATE = False
ARRIVED = 0
ARRIVED_LOCK = threading.Lock()


def released():
    try:
        with open(os.path.join(os.environ.get("HOME", "."), "release")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, b'{"status":"ok"}')
        elif self.headers.get("Authorization") != f"Bearer {KEY}":
            self.reply(401, b'{"error":"Invalid API Key"}')
        elif self.path == "/v1/models":
            self.reply(200, b'{"object":"list","data":[]}')
        else:
            self.reply(404, b'{"error":"not found"}')

    def do_POST(self):
        global ARRIVED
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.reply(401, b'{"error":"Invalid API Key"}')
        if self.path != "/v1/chat/completions":
            return self.reply(404, b'{"error":"not found"}')
        with ARRIVED_LOCK:
            k = ARRIVED
            ARRIVED += 1
        while GATE and released() <= k:
            time.sleep(0.02)
        self.reply(200, json.dumps({
            "id": f"chatcmpl-{k}", "object": "chat.completion", "created": int(time.time()),
            "model": "fake", "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode())

    def log_message(self, *args):
        pass


def option(args, name, has_value=True):
    if name not in args:
        return None
    i = args.index(name)
    value = args[i + 1] if has_value else True
    del args[i:i + (2 if has_value else 1)]
    return value


def main():
    global KEY, GATE
    args = sys.argv[1:]
    KEY = option(args, "--api-key")
    forks = int(option(args, "--forks") or 0)
    alloc = int(option(args, "--alloc") or 0)
    GATE = bool(option(args, "--gate", has_value=False))
    port = int(args[0])
    p = probe(args[1] if len(args) > 1 else None)
    p.update(limits(forks, alloc))
    print("probe: " + json.dumps(p), flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
