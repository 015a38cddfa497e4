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


def follow(url, method="POST", headers=None, timeout=60, on_event=None):
    """Reads the SSE stream at url to its end; returns the list of event payloads. on_event,
    when given, is called with the events so far as soon as each one arrives."""
    h = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    h.update(headers or {})
    events = []
    with requests.request(method, url, headers=h, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        # chunk_size=None: each piece as it arrives, not once 512 bytes have come.
        for line in r.iter_lines(chunk_size=None, decode_unicode=True):
            if line and line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if on_event:
                    on_event(events)
    return events


def processes_of(run_id):
    """The pids of the processes whose environment holds LYCEUM_EXECUTION_ID=run_id (every
    process of a run has it, inside its sandbox or not; root reads /proc/*/environ)."""
    want = f"LYCEUM_EXECUTION_ID={run_id}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if want in env:
            pids.append(int(d))
    return pids


def wait_processes(run_id, timeout=10):
    """The pids of run_id's processes once there is one: a run is 'running' from its fork,
    a moment before its first process has exec'd with the run's environment."""
    deadline = time.time() + timeout
    while not processes_of(run_id) and time.time() < deadline:
        time.sleep(0.02)
    return processes_of(run_id)


def wait_processes_gone(run_id, timeout=5):
    """Waits for the processes of run_id to go (a SIGKILLed process takes a moment to be
    reaped); fails naming those still there."""
    deadline = time.time() + timeout
    while processes_of(run_id) and time.time() < deadline:
        time.sleep(0.05)
    left = processes_of(run_id)
    assert not left, f"processes of run {run_id} are left: {left}"


def output_of(events):
    return "".join(e["output"]["content"] for e in events if "output" in e)


def finished(events):
    assert events and "jobFinished" in events[-1], events[-3:]
    return events[-1]["jobFinished"]["job"]["result"]
