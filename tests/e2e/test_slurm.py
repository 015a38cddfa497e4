"""Runs on a real one-node Slurm (tests/slurm, the 'fakegpu' variant: 16 CPUs, 2 fake GPUs),
through slurmrestd with a JWT lyceumd mints itself: streamed output, exit codes, abort
cancelling the job, GPU placement by Slurm, and following jobs again after kill -9."""

import http.server
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Server
from runs_util import follow, output_of, start, status, wait_end, wait_status, write_config

HERE = os.path.dirname(os.path.abspath(__file__))
SLURM = os.path.join(HERE, "..", "slurm")
CONF = "/tmp/slurm-local/conf/slurm.conf"
ENV = dict(os.environ, SLURM_CONF=CONF)


@pytest.fixture(scope="module")
def cluster():
    if not shutil.which("slurmctld"):
        pytest.fail("Slurm is not installed: scripts/deps.sh installs it")
    subprocess.run(["sh", os.path.join(SLURM, "stop.sh")], capture_output=True)
    time.sleep(1)
    r = subprocess.run(["sh", os.path.join(SLURM, "start.sh"), "fakegpu"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for _ in range(60):
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=ENV, capture_output=True,
                             text=True).stdout
        if "idle" in out or "mixed" in out:
            break
        time.sleep(0.5)
    yield
    subprocess.run(["sh", os.path.join(SLURM, "stop.sh")], capture_output=True)


def make_server(shared, rest_url="http://127.0.0.1:6820", env=None):
    """A lyceumd with two Slurm profiles, through slurmrestd at rest_url, or, when rest_url is
    None, through sbatch, scontrol and scancel."""
    slurm = {"user": "root", "shared_dir": shared, "poll_ms": 200}
    if rest_url:
        slurm.update(rest_url=rest_url, jwt_key="/tmp/slurm-local/jwt_hs256.key")
    else:
        slurm.update(conf=CONF)
    cfg = write_config([
        {"hardware_profile": "cpu", "max_concurrent": 2},
        {"hardware_profile": "slurm.cpu", "backend": "slurm", "price_per_hour": "36",
         "vcpus": 1},
        {"hardware_profile": "slurm.gpu", "backend": "slurm", "gres": "gpu:1",
         "gpu_model": "fake", "gpu_count": 1, "price_per_hour": "1"},
    ], meter_window_seconds=1, slurm=slurm)
    return Server(["--config", cfg], env=env)


@pytest.fixture(scope="module")
def ss(cluster):
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared)
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    shutil.rmtree(shared, ignore_errors=True)


def job_state(job_id):
    out = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], env=ENV,
                         capture_output=True, text=True).stdout
    return out.split("JobState=")[1].split()[0] if "JobState=" in out else out


def jobs_named(run_id):
    """The ids of the jobs Slurm knows named after run_id (lyceumd names each job after its
    run; finished jobs stay known for MinJobAge, 300 s)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], env=ENV, capture_output=True,
                         text=True).stdout
    return sorted(line.split("JobId=")[1].split()[0] for line in out.splitlines()
                  if f" JobName={run_id} " in line + " ")


def job_of(server, run_id):
    db = sqlite3.connect(os.path.join(server.data, "lyceumd.db"))
    try:
        return db.execute("SELECT backend_ref FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    finally:
        db.close()


def assert_billed_once(server, run_id, price_per_hour):
    """The run's ledger windows are contiguous, from when it began running to its end, and
    add up to its price for that time: to within a micro-credit per window (each is rounded),
    nothing charged twice or left out."""
    db = sqlite3.connect(f"file:{server.data}/lyceumd.db?mode=ro", uri=True)
    try:
        wins = db.execute("SELECT window_start, window_end, -amount FROM ledger WHERE ref = ? "
                          "AND kind = 'run' ORDER BY window_start", (run_id,)).fetchall()
        began, ended = db.execute("SELECT running_at, finished_at FROM runs WHERE id = ?",
                                  (run_id,)).fetchone()
    finally:
        db.close()
    assert wins, "no charge"
    assert wins[0][0] == began and wins[-1][1] == ended, (wins[0], wins[-1], began, ended)
    for a, b in zip(wins, wins[1:]):
        assert a[1] == b[0], (a, b)
    want = price_per_hour * 1_000_000 * (ended - began) / 3_600_000_000
    assert abs(sum(w[2] for w in wins) - want) <= len(wins), (sum(w[2] for w in wins), want)


def test_a_python_run_on_slurm_streams_and_completes(ss):
    u = ss.new_user(credits=10)
    code = ("import os, sys, time\nprint('job', os.environ['SLURM_JOB_ID'], flush=True)\n"
            "time.sleep(1)\nprint('to stderr', file=sys.stderr, flush=True)\nprint('done')\n")
    run = start(ss, u["key"], code, execution_type="slurm.cpu")
    events = follow(run["streaming_url"])
    out = output_of(events)
    # stdout and stderr are separate files on the cluster: each keeps its order.
    assert out.startswith("job ") and "to stderr\n" in out and "done\n" in out
    assert events[-1]["jobFinished"]["job"]["result"] == {"returnCode": 0, "error": None}
    st = status(ss, u["key"], run["execution_id"])
    assert st["status"] == "completed" and st["hardware_profile"] == "slurm.cpu"
    assert job_state(job_of(ss, run["execution_id"])) == "COMPLETED"


def test_a_failing_run_is_failed_with_its_code(ss):
    u = ss.new_user(credits=10)
    run = start(ss, u["key"], "import sys\nsys.exit(5)", execution_type="slurm.cpu")
    st = wait_end(ss, u["key"], run["execution_id"])
    assert st["status"] == "failed" and st["return_code"] == 5


def test_abort_cancels_the_job_in_slurm(ss):
    u = ss.new_user(credits=10)
    run = start(ss, u["key"], "import time\nprint('up', flush=True)\ntime.sleep(120)",
                execution_type="slurm.cpu")
    wait_status(ss, u["key"], run["execution_id"], "running", timeout=30)
    job = job_of(ss, run["execution_id"])
    assert job_state(job) == "RUNNING"
    assert ss.post(f"/workloads/abort/{run['execution_id']}", u["key"]).status_code == 200
    st = wait_end(ss, u["key"], run["execution_id"], timeout=15)
    assert st["status"] == "aborted"
    assert job_state(job) == "CANCELLED"
    # Slurm's own "slurmstepd: error: *** JOB n ON localhost CANCELLED AT ..." is not the
    # user's stderr: lyceumd says it in its words.
    time.sleep(1)
    rec = ss.get(f"/execution/{run['execution_id']}", u["key"]).json()
    assert "slurmstepd" not in rec["stderr"] and "CANCELLED AT" not in rec["stderr"], rec
    out = output_of(follow(run["streaming_url"]))
    assert "slurmstepd" not in out and out.startswith("up\n"), out


def test_gpu_runs_get_different_gpus_and_a_third_waits(ss):
    u = ss.new_user(credits=10)
    code = "import os, time\nprint(os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True)\ntime.sleep(4)"
    runs = [start(ss, u["key"], code, execution_type="slurm.gpu") for _ in range(3)]
    time.sleep(2.5)
    states = [status(ss, u["key"], r["execution_id"])["status"] for r in runs]
    assert sorted(states) == ["queued", "running", "running"], states
    outs = [output_of(follow(r["streaming_url"])).strip() for r in runs]
    first_two = [o for r, o, s in zip(runs, outs, states) if s == "running"]
    assert sorted(first_two) == ["0", "1"], outs
    for r in runs:
        assert status(ss, u["key"], r["execution_id"])["status"] == "completed"
    # The one Slurm held PENDING: its queue time counts that wait (it was handed to Slurm at
    # once, and waited there about 4 s for a GPU), and queue + run make the total.
    waited = next(r for r, s in zip(runs, states) if s == "queued")
    t = ss.get(f"/execution/{waited['execution_id']}/timing", u["key"]).json()["timing"]
    assert t["queue_seconds"] >= 3.0, t
    assert abs(t["queue_seconds"] + t["run_seconds"] - t["total_seconds"]) < 1.0, t


def test_kill_9_then_restart_follows_the_jobs_and_bills_once(cluster):
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared)
    try:
        u = s.new_user(credits=100)
        code = ("import time\nfor i in range(6):\n    print('tick', i, flush=True)\n"
                "    time.sleep(0.5)\n")
        runs = [start(s, u["key"], code, execution_type="slurm.cpu") for _ in range(2)]
        for r in runs:
            wait_status(s, u["key"], r["execution_id"], "running", timeout=30)
        time.sleep(1.2)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        time.sleep(1)
        s.start()
        for r in runs:
            st = wait_end(s, u["key"], r["execution_id"], timeout=30)
            assert st["status"] == "completed", st
            out = output_of(follow(r["streaming_url"]))
            assert out == "".join(f"tick {i}\n" for i in range(6)), out  # nothing lost or doubled
        for r in runs:
            assert_billed_once(s, r["execution_id"], price_per_hour=36)
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def test_without_rest_url_sbatch_scontrol_and_scancel(cluster):
    """Without rest_url lyceumd submits with sbatch, follows with scontrol and cancels with
    scancel: a run streams and completes, one fails with its code, one is aborted. The job
    sees its run's variables, and nothing of lyceumd's own environment (which sbatch would
    hand it)."""
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared, rest_url=None, env={"OPERATOR_SECRET": "s3cr3t"})
    try:
        u = s.new_user(credits=10)
        code = ("import os, sys, time\nprint('job', os.environ['SLURM_JOB_ID'], "
                "os.environ['LYCEUM_EXECUTION_ID'], flush=True)\n"
                "print('operator secret:', os.environ.get('OPERATOR_SECRET'), flush=True)\n"
                "time.sleep(1)\nprint('to stderr', file=sys.stderr)\nprint('done')\n")
        run = start(s, u["key"], code, execution_type="slurm.cpu")
        rid = run["execution_id"]
        events = follow(run["streaming_url"])
        job = job_of(s, rid)
        assert job and jobs_named(rid) == [job]
        out = output_of(events)
        assert out.startswith(f"job {job} {rid}\n") and "to stderr\n" in out and "done\n" in out
        assert "operator secret: None\n" in out, out
        assert events[-1]["jobFinished"]["job"]["result"] == {"returnCode": 0, "error": None}
        assert status(s, u["key"], rid)["status"] == "completed"
        assert job_state(job) == "COMPLETED"

        run = start(s, u["key"], "import sys\nsys.exit(5)", execution_type="slurm.cpu")
        st = wait_end(s, u["key"], run["execution_id"])
        assert st["status"] == "failed" and st["return_code"] == 5, st

        run = start(s, u["key"], "import time\nprint('up', flush=True)\ntime.sleep(120)",
                    execution_type="slurm.cpu")
        wait_status(s, u["key"], run["execution_id"], "running", timeout=30)
        job = job_of(s, run["execution_id"])
        assert job_state(job) == "RUNNING"
        assert s.post(f"/workloads/abort/{run['execution_id']}", u["key"]).status_code == 200
        st = wait_end(s, u["key"], run["execution_id"], timeout=15)
        assert st["status"] == "aborted", st
        assert job_state(job) == "CANCELLED"
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_job_that_ends_while_lyceumd_is_down_ends_its_run(cluster):
    """lyceumd stops while a job runs; the job ends (exit 7) before lyceumd starts again: the
    run ends failed with the job's own code and its whole output, once."""
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared)
    try:
        u = s.new_user(credits=100)
        code = ("import sys, time\nprint('before', flush=True)\ntime.sleep(2)\n"
                "print('after', flush=True)\nprint('on stderr', file=sys.stderr)\nsys.exit(7)\n")
        run = start(s, u["key"], code, execution_type="slurm.cpu")
        rid = run["execution_id"]
        wait_status(s, u["key"], rid, "running", timeout=30)
        deadline = time.time() + 30
        while "before" not in s.get(f"/execution/{rid}", u["key"]).json()["stdout"]:
            assert time.time() < deadline, "the job's first line never came"
            time.sleep(0.05)
        job = job_of(s, rid)
        s.stop()  # Slurm jobs go on without lyceumd
        deadline = time.time() + 30
        # One reading of the state a round: it may turn FAILED between two readings.
        state = job_state(job)
        while state != "FAILED":
            assert time.time() < deadline and state == "RUNNING", state
            time.sleep(0.2)
            state = job_state(job)
        s.start()
        st = wait_end(s, u["key"], rid, timeout=30)
        assert st["status"] == "failed" and st["return_code"] == 7, st
        events = follow(run["streaming_url"])
        assert events[-1]["jobFinished"]["job"]["result"] == {"returnCode": 7, "error": None}
        out = output_of(events)
        for line in ("before\n", "after\n", "on stderr\n"):
            assert out.count(line) == 1, out
        assert jobs_named(rid) == [job]
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


class HoldingProxy:
    """slurmrestd behind a proxy that can keep its answer to a job submission from lyceumd:
    Slurm makes the job, lyceumd never learns its id."""

    def __init__(self, upstream="http://127.0.0.1:6820"):
        self.hold = threading.Event()  # keep the answer to the next submission
        self.held = threading.Event()  # a submission's answer is being kept
        self.release = threading.Event()  # give up keeping it (the connection then closes)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower().startswith("x-slurm") or k.lower() == "content-type"}
                req = urllib.request.Request(upstream + self.path, data=body or None,
                                             headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        code, answer = r.status, r.read()
                except urllib.error.HTTPError as e:
                    code, answer = e.code, e.read()
                if self.path.endswith("/job/submit") and proxy.hold.is_set():
                    proxy.hold.clear()
                    proxy.held.set()
                    proxy.release.wait(120)
                    self.close_connection = True
                    return
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_DELETE = forward

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_port}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()


COUNTED = ("import time\nopen('ran.txt', 'a').write('ran\\n')\nprint('ran', flush=True)\n"
           "time.sleep(2)\nprint('done')\n")


def ran_count(shared, run_id):
    with open(os.path.join(shared, run_id, "work", "ran.txt")) as f:
        return f.read().count("ran\n")


def test_a_crash_between_submitting_a_job_and_storing_its_id(cluster):
    """lyceumd is killed (-9) after Slurm made the job but before lyceumd stored its id (the
    submission's answer is kept from it). After the restart the run follows that job: it runs
    once, is not submitted again, and ends completed with its output."""
    proxy = HoldingProxy()
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared, rest_url=proxy.url)
    try:
        u = s.new_user(credits=100)
        proxy.hold.set()
        run = start(s, u["key"], COUNTED, execution_type="slurm.cpu")
        rid = run["execution_id"]
        assert proxy.held.wait(30), "lyceumd never submitted the job"
        deadline = time.time() + 30
        while not jobs_named(rid):
            assert time.time() < deadline, "Slurm never made the job"
            time.sleep(0.05)
        jobs = jobs_named(rid)
        assert job_of(s, rid) is None  # lyceumd has not stored it
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        proxy.release.set()
        s.start()
        st = wait_end(s, u["key"], rid, timeout=60)
        assert st["status"] == "completed", st
        assert jobs_named(rid) == jobs, "the run was submitted again"
        assert job_of(s, rid) == jobs[0]
        assert output_of(follow(run["streaming_url"])) == "ran\ndone\n"
        assert ran_count(shared, rid) == 1
    finally:
        s.stop()
        proxy.close()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def test_a_submission_whose_answer_is_lost_is_not_made_twice(cluster):
    """slurmrestd makes the job but its answer never reaches lyceumd (the call times out):
    lyceumd finds the job by its name instead of submitting the run again."""
    proxy = HoldingProxy()
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared, rest_url=proxy.url)
    try:
        u = s.new_user(credits=100)
        proxy.hold.set()
        run = start(s, u["key"], COUNTED, execution_type="slurm.cpu")
        rid = run["execution_id"]
        assert proxy.held.wait(30), "lyceumd never submitted the job"
        # lyceumd gives the call up (its 10 s timeout) and says, in the run's output, that it
        # waits for Slurm; only then does the proxy let the held call go.

        def on_event(events):
            if "waiting for Slurm" in output_of(events):
                proxy.release.set()

        out = output_of(follow(run["streaming_url"], on_event=on_event))
        assert out.startswith("[lyceumd] waiting for Slurm") and out.endswith("\nran\ndone\n"), out
        assert status(s, u["key"], rid)["status"] == "completed"
        assert len(jobs_named(rid)) == 1, jobs_named(rid)
        assert ran_count(shared, rid) == 1
    finally:
        s.stop()
        proxy.close()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


def restart_slurmctld_without_its_state():
    """Stops slurmctld and starts it again clearing its saved state (-c): it forgets every job,
    as a controller whose state was lost does. Waits until the node is back."""
    subprocess.run(["pkill", "-x", "slurmctld"], capture_output=True)
    deadline = time.time() + 30
    while subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        assert time.time() < deadline, "slurmctld did not stop"
        time.sleep(0.2)
    subprocess.run(["slurmctld", "-f", CONF, "-c"], env=ENV, check=True, capture_output=True)
    deadline = time.time() + 60
    while True:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=ENV, capture_output=True,
                             text=True).stdout
        if "idle" in out or "mixed" in out or "alloc" in out:
            return
        assert time.time() < deadline, f"the node did not come back: {out!r}"
        time.sleep(0.5)


def test_a_job_slurm_lost_ends_its_run_at_once(cluster):
    """slurmctld restarts without its state while a run's job is running: Slurm no longer
    knows the job, and the run ends system_failure saying so, long before its timeout (the
    old server left it running until then)."""
    shared = tempfile.mkdtemp(prefix="lyceumd-slurm-")
    s = make_server(shared)
    try:
        u = s.new_user(credits=100)
        run = start(s, u["key"], "import time\nprint('up', flush=True)\ntime.sleep(600)",
                    execution_type="slurm.cpu", timeout=600)
        rid = run["execution_id"]
        wait_status(s, u["key"], rid, "running", timeout=30)
        job = job_of(s, rid)
        restart_slurmctld_without_its_state()
        assert "JobState=" not in subprocess.run(
            ["scontrol", "show", "job", "-o", str(job)], env=ENV, capture_output=True,
            text=True).stdout, "the restarted controller still knows the job"
        st = wait_end(s, u["key"], rid, timeout=60)
        assert st["status"] == "system_failure", st
        assert f"no longer knows job {job}" in st["errors"], st
        # Slurm runs the next run as usual.
        run2 = start(s, u["key"], "print('after')", execution_type="slurm.cpu")
        st2 = wait_end(s, u["key"], run2["execution_id"], timeout=60)
        assert st2["status"] == "completed", st2
        assert output_of(follow(run2["streaming_url"])) == "after\n"
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
