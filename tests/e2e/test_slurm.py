"""Runs on a real one-node Slurm (tests/slurm, the 'fakegpu' variant: 16 CPUs, 2 fake GPUs),
through slurmrestd with a JWT lyceumd mints itself: streamed output, exit codes, abort
cancelling the job, GPU placement by Slurm, and following jobs again after kill -9."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

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


def make_server(shared):
    cfg = write_config([
        {"hardware_profile": "cpu", "max_concurrent": 2},
        {"hardware_profile": "slurm.cpu", "backend": "slurm", "price_per_hour": "36",
         "vcpus": 1},
        {"hardware_profile": "slurm.gpu", "backend": "slurm", "gres": "gpu:1",
         "gpu_model": "fake", "gpu_count": 1, "price_per_hour": "1"},
    ], meter_window_seconds=1,
        slurm={"rest_url": "http://127.0.0.1:6820", "jwt_key": "/tmp/slurm-local/jwt_hs256.key",
               "user": "root", "shared_dir": shared, "poll_ms": 200})
    return Server(["--config", cfg])


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


def job_of(server, run_id):
    import sqlite3
    db = sqlite3.connect(os.path.join(server.data, "lyceumd.db"))
    try:
        return db.execute("SELECT backend_ref FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    finally:
        db.close()


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
        import sqlite3
        db = sqlite3.connect(os.path.join(s.data, "lyceumd.db"))
        for r in runs:
            wins = db.execute("SELECT window_start, window_end FROM ledger WHERE ref = ? AND "
                              "kind = 'run' ORDER BY window_start",
                              (r["execution_id"],)).fetchall()
            assert wins and len(set(wins)) == len(wins)
            for a, b in zip(wins, wins[1:]):
                assert a[1] == b[0]
        db.close()
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)
