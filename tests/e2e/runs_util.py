"""Helpers for the run tests: start runs, follow their SSE stream, wait for their end."""

import json
import os
import tempfile
import time

import requests

TERMINAL = {"completed", "failed", "system_failure", "aborted", "cancelled"}


def write_config(machine_types, **extra):
    """A config file declaring machine_types; returns its path."""
    fd, path = tempfile.mkstemp(prefix="lyceumd-config-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(dict(machine_types=machine_types, **extra), f)
    return path


def start(server, key, code, path="/execution/streaming/start", headers=None, **body):
    r = server.post(path, key, json=dict(code=code, **body), headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def status(server, key, run_id):
    r = server.get(f"/execution/streaming/{run_id}/status", key)
    assert r.status_code == 200, r.text
    return r.json()


def wait_end(server, key, run_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = status(server, key, run_id)
        if s["status"] in TERMINAL:
            return s
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end: {s}")


def wait_status(server, key, run_id, want, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = status(server, key, run_id)
        if s["status"] == want:
            return s
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {want}: {s}")


def follow(url, method="POST", headers=None, timeout=60):
    """Reads the SSE stream at url to its end; returns the list of event payloads."""
    h = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    h.update(headers or {})
    events = []
    with requests.request(method, url, headers=h, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def output_of(events):
    return "".join(e["output"]["content"] for e in events if "output" in e)


def finished(events):
    assert events and "jobFinished" in events[-1], events[-3:]
    return events[-1]["jobFinished"]["job"]["result"]
