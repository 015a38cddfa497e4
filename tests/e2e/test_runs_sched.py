"""The scheduler's promises: capacity bounds what runs at once, a kill -9 of lyceumd leaves
every run in a known state, and completion callbacks arrive signed and retried."""

import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import sqlite3
import threading
import time

import pytest

from conftest import Server
from runs_util import (follow, output_of, processes_of, wait_processes, start, status, wait_end,
                       wait_processes_gone, wait_status, write_config)


@pytest.fixture
def two_slots():
    # Callbacks to the test's own listener on loopback need the operator's leave.
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10",
                         "max_concurrent": 2}], callback_allow=["127.0.0.1/32"])
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def test_fifty_runs_on_two_slots_never_overlap_more_than_two(two_slots):
    s = two_slots
    u = s.new_user(credits=10)
    # Each run reports, from inside, when it began and ended (wall clock, in ns).
    code = ("import time\nt0 = time.time_ns()\ntime.sleep(0.05)\n"
            "print(t0, time.time_ns())\n")
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        runs = list(ex.map(lambda _: start(s, u["key"], code), range(50)))
    intervals = []
    for r in runs:
        st = wait_end(s, u["key"], r["execution_id"], timeout=120)
        assert st["status"] == "completed", st
        out = s.get(f"/execution/{r['execution_id']}", u["key"]).json()["stdout"]
        a, b = map(int, out.split())
        intervals.append((a, b))
    assert len(intervals) == 50
    # The most intervals open at any instant: sweep over the start and end points.
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda p: (p[0], p[1]))
    open_now = peak = 0
    for _, d in points:
        open_now += d
        peak = max(peak, open_now)
    assert peak == 2, peak  # both slots were used, and never more


def test_queued_runs_start_in_the_order_they_were_submitted():
    """One slot, held by a run until the test lets it end; five runs queued behind it start
    one at a time in the order they came."""
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10",
                         "max_concurrent": 1}])
    s = Server(["--config", cfg])
    try:
        u = s.new_user(credits=10)
        hold = start(s, u["key"], "import os, time\nwhile not os.path.exists('go'):\n"
                                  "    time.sleep(0.02)\n")
        wait_status(s, u["key"], hold["execution_id"], "running")
        queued = [start(s, u["key"], f"print({i})") for i in range(5)]
        for r in queued:
            assert status(s, u["key"], r["execution_id"])["status"] == "pending"
        open(os.path.join(s.data, "runs", hold["execution_id"], "work", "go"), "w").close()
        started = []
        for r in queued:
            assert wait_end(s, u["key"], r["execution_id"])["status"] == "completed"
            t = s.get(f"/execution/{r['execution_id']}/timing", u["key"]).json()["timing"]
            started.append(t["start_time"])
        assert started == sorted(started), started
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandboxed", "unsandboxed"])
def test_kill_9_then_restart_leaves_every_run_known(sandbox):
    # Sandboxed, a run's processes end with lyceumd (bubblewrap's pid namespace goes with it);
    # unsandboxed, what a run started outlives it, and the restart's kill of each run's process
    # group is what ends it.
    cfg = write_config([{"hardware_profile": "cpu", "price_per_hour": "0.10",
                         "max_concurrent": 2}], sandbox=sandbox)
    s = Server(["--config", cfg])
    try:
        u = s.new_user(credits=10)
        # A child of its own too, in its process group: the kernel kills the run's first process
        # with lyceumd (its parent-death signal), not what that process started.
        code = ("import os, time\nif os.fork() == 0:\n    time.sleep(120)\n"
                "print(os.getpid(), flush=True)\ntime.sleep(120)")
        running = [start(s, u["key"], code) for _ in range(2)]
        queued = start(s, u["key"], "print('queued one ran')")
        for r in running:
            wait_status(s, u["key"], r["execution_id"], "running")
        assert status(s, u["key"], queued["execution_id"])["status"] == "pending"
        # Each running run's processes are found (so that "none is left" below means it).
        for r in running:
            assert wait_processes(r["execution_id"]), f"no process of {r['execution_id']} found"
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        if not sandbox:
            # The runs' children outlive lyceumd (the parent-death signal reached only their
            # first processes): the restart must end them.
            for r in running:
                assert processes_of(r["execution_id"]), "nothing of the run outlived lyceumd"
        s.start()
        for r in running:
            st = wait_end(s, u["key"], r["execution_id"], timeout=20)
            assert st["status"] == "system_failure" and st["reason"] == "restart", st
            assert "restarted" in st["errors"]
            events = follow(r["streaming_url"])
            assert "restarted" in output_of(events)
            assert events[-1]["jobFinished"]["job"]["result"]["error"]
            # No process of the old runs is left.
            wait_processes_gone(r["execution_id"])
        st = wait_end(s, u["key"], queued["execution_id"], timeout=30)
        assert st["status"] == "completed"
        assert output_of(follow(queued["streaming_url"])) == "queued one ran\n"
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)


def test_abort_or_stop_right_after_submit_never_leaves_a_run_going(two_slots):
    """Abort or stop comes right after the start, racing the scheduler's start of the run, 60
    times (from 6 clients at once): half of them at once, half as soon as the run is seen
    leaving the queue (while lyceumd starts it). Each is accepted and each run ends, aborted
    (abort), or cancelled or stopped (stop); none keeps a process, and none is charged past
    its end. (A stop's SIGTERM that comes while bubblewrap is still making the sandbox reaches
    no process of the run: the SIGKILL after the grace period ends it, 1 s here.)"""
    s = two_slots
    u = s.new_user(credits=10)
    code = "import time\nprint('up', flush=True)\ntime.sleep(60)"

    def race(i):
        run = start(s, u["key"], code, graceful_timeout=1)
        rid = run["execution_id"]
        mode = "abort" if i % 2 == 0 else "stop"
        if i % 4 >= 2:
            deadline = time.time() + 30
            while status(s, u["key"], rid)["status"] == "pending":
                assert time.time() < deadline, "the run never left the queue"
        r = s.post(f"/workloads/{mode}/{rid}", u["key"])
        assert r.status_code == 200, (mode, r.text)
        return rid, mode

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        runs = list(ex.map(race, range(60)))
    for rid, mode in runs:
        st = wait_end(s, u["key"], rid, timeout=30)
        if mode == "abort":
            assert st["status"] == "aborted", st
        else:
            assert st["status"] == "cancelled" or (
                st["status"] == "completed" and st["reason"] == "stopped"), st
    db = sqlite3.connect(f"file:{s.data}/lyceumd.db?mode=ro", uri=True)
    try:
        for rid, mode in runs:
            wait_processes_gone(rid)
            began, ended = db.execute("SELECT running_at, finished_at FROM runs WHERE id = ?",
                                      (rid,)).fetchone()
            wins = db.execute("SELECT window_start, window_end FROM ledger WHERE ref = ? AND "
                              "kind = 'run'", (rid,)).fetchall()
            if began is None:
                assert wins == [], (rid, wins)  # it never ran: nothing charged
            for a, b in wins:
                assert began <= a < b <= ended, (rid, a, b, began, ended)
    finally:
        db.close()


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []
    fail_first = 1

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((dict(self.headers), body))
        code = 500 if len(Receiver.got) <= Receiver.fail_first else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_completion_callbacks_are_signed_and_retried(two_slots):
    s = two_slots
    u = s.new_user(credits=10)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/hook"
        run = start(s, u["key"], "import sys\nsys.exit(4)", user_callback_urls=[url])
        wait_end(s, u["key"], run["execution_id"])
        deadline = time.time() + 15
        while len(Receiver.got) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(Receiver.got) == 2, Receiver.got  # a 500, then the retry that got 200
        secret = s.get("/webhooks/secret", u["key"]).json()["secret"]
        for headers, body in Receiver.got:
            doc = json.loads(body)
            assert doc["execution_id"] == run["execution_id"]
            assert doc["status"] == "failed" and doc["return_code"] == 4
            assert set(doc) >= {"errors", "started_at", "finished_at", "billed"}
            want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Lyceum-Signature"] == want
        time.sleep(2.5)
        assert len(Receiver.got) == 2  # delivered: not sent again
    finally:
        srv.shutdown()
