"""A stand-in model server for the inference tests that look at how lyceumd starts a replica.

Usage: fake_model_server.py PORT [MODEL_PATH] [--api-key KEY]. It first writes one line to
its stdout (the replica's log, DATA/inference/<deployment>/<replica>.log), "probe: " and a
JSON object of what it sees: its environment (HF_TOKEN, CUDA_VISIBLE_DEVICES, HOME), its
command line, its pid and uid, whether the data directory's database is visible (the data
directory is found from HOME when that is DATA/inference/<dep>/home, else from a model file
kept at DATA/<dir>/<file>), whether HOME is writable and whether the model file can be read and
written. Then it serves, on 127.0.0.1:PORT until it is killed, GET /health with 200 to anyone
and GET /v1/models with 200 only with "Authorization: Bearer KEY" (401 otherwise), as
llama-server and vLLM do with --api-key."""

import json
import os
import sys
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


KEY = None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            code, body = 200, b'{"status":"ok"}'
        elif self.headers.get("Authorization") != f"Bearer {KEY}":
            code, body = 401, b'{"error":"Invalid API Key"}'
        elif self.path == "/v1/models":
            code, body = 200, b'{"object":"list","data":[]}'
        else:
            code, body = 404, b'{"error":"not found"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    global KEY
    args = sys.argv[1:]
    if "--api-key" in args:
        i = args.index("--api-key")
        KEY = args[i + 1]
        del args[i:i + 2]
    port = int(args[0])
    print("probe: " + json.dumps(probe(args[1] if len(args) > 1 else None)), flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
