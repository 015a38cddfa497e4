"""A stand-in model server for the inference tests that look at how lyceumd starts a replica.

Usage: fake_model_server.py PORT [MODEL_PATH]. It first writes one line to its stdout (the
replica's log, DATA/inference/<deployment>/<replica>.log), "probe: " and a JSON object of
what it sees: its environment (HF_TOKEN, CUDA_VISIBLE_DEVICES, HOME), its command line, its
pid, whether the data directory's database is visible (HOME is DATA/inference/<dep>/home),
whether HOME is writable and whether the model file can be read and written. Then it serves
GET /health with 200 on 127.0.0.1:PORT until it is killed."""

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
    out = {
        "hf_token": os.environ.get("HF_TOKEN"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "home": home,
        "home_writable": writable(os.path.join(home, "probe")),
        "argv": sys.argv,
        "pid": os.getpid(),
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


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status":"ok"}' if self.path == "/health" else b'{"error":"not found"}'
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1])
    print("probe: " + json.dumps(probe(sys.argv[2] if len(sys.argv) > 2 else None)), flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
