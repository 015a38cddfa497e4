"""Metrics over the real HTTP API: a run's CPU and memory series sampled every second
(API.md 6.2) with step averaging, and the server's own Prometheus metrics (GET /metrics),
checked with promtool. GPU series are empty lists on a machine without NVML."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import Server, assert_422, assert_detail
from runs_util import start, wait_end, write_config

MACHINES = [{"hardware_profile": "cpu", "price_per_hour": "0.10", "max_concurrent": 4}]
BURN = "import time\nt = time.time()\nwhile time.time() - t < 5:\n    pass\nprint('burnt')\n"
SERIES = ["systemCpuUsagePercent", "systemRamUsedBytes", "systemRamTotalBytes",
          "gpuUtilizationPercent", "gpuMemoryUtilizationPercent", "gpuTemperatureCelsius",
          "gpuPowerWatt", "gpuPowerLimitWatt", "gpuClockSmMhz", "gpuClockMemMhz",
          "gpuPcieThroughputRxBytesPerSec", "gpuPcieThroughputTxBytesPerSec"]


def has_nvml():
    return any(os.path.exists(os.path.join(d, "libnvidia-ml.so.1")) for d in
               ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"))


@pytest.fixture(scope="module")
def ms():
    cfg = write_config(MACHINES, metrics_interval_seconds=1)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


@pytest.fixture(scope="module")
def mu(ms):
    return ms.new_user(credits=10)


@pytest.fixture(scope="module")
def burnt(ms, mu):
    run = start(ms, mu["key"], BURN)
    assert wait_end(ms, mu["key"], run["execution_id"])["status"] == "completed"
    return run["execution_id"]


def test_a_cpu_burning_run_shows_its_cpu_and_memory(ms, mu, burnt):
    r = ms.get(f"/execution/{burnt}/metrics", mu["key"], params={"step": "1s"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["executionId"] == burnt and body["hostname"]
    assert set(body["timeRange"]) == {"start", "end"}
    for name in SERIES:
        assert isinstance(body[name], list), name
        for p in body[name]:
            assert set(p) == {"timestamp", "value"} and isinstance(p["value"], (int, float))
    cpu = [p["value"] for p in body["systemCpuUsagePercent"]]
    assert len(cpu) >= 3, cpu
    assert max(cpu) > 50, cpu
    assert all(p["value"] > 0 for p in body["systemRamUsedBytes"])
    assert all(p["value"] >= q["value"] for p, q in
               zip(body["systemRamTotalBytes"], body["systemRamUsedBytes"]))
    stamps = [p["timestamp"] for p in body["systemCpuUsagePercent"]]
    assert stamps == sorted(stamps)
    if not has_nvml():
        assert all(body[n] == [] for n in SERIES if n.startswith("gpu"))


def test_step_averages_into_fewer_points(ms, mu, burnt):
    fine = ms.get(f"/execution/{burnt}/metrics", mu["key"], params={"step": "1s"}).json()
    coarse = ms.get(f"/execution/{burnt}/metrics", mu["key"], params={"step": "1m"}).json()
    default = ms.get(f"/execution/{burnt}/metrics", mu["key"]).json()
    n_fine = len(fine["systemCpuUsagePercent"])
    assert len(coarse["systemCpuUsagePercent"]) == 1 < n_fine
    assert len(default["systemCpuUsagePercent"]) == 1  # 15s: the run took ~5 s
    mean = sum(p["value"] for p in fine["systemRamUsedBytes"]) / len(fine["systemRamUsedBytes"])
    assert abs(coarse["systemRamUsedBytes"][0]["value"] - mean) <= mean * 0.01
    # A window after the run has no points.
    later = ms.get(f"/execution/{burnt}/metrics", mu["key"],
                   params={"start": "2100-01-01T00:00:00Z", "end": "2100-01-01T01:00:00Z"})
    assert later.status_code == 200 and later.json()["systemCpuUsagePercent"] == []


def test_metrics_validation_and_tenancy(ms, mu, burnt):
    for params, name in [({"step": "abc"}, "step"), ({"step": "0s"}, "step"),
                         ({"start": "yesterday"}, "start"), ({"end": "x"}, "end"),
                         ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                          "end"),
                         ({"start": "2020-01-01T00:00:00Z", "step": "1s"}, "step")]:
        assert_422(ms.get(f"/execution/{burnt}/metrics", mu["key"], params=params),
                   ("query", name))
    other = ms.new_user(credits=10)
    assert_detail(ms.get(f"/execution/{burnt}/metrics", other["key"]), 404)
    assert ms.get(f"/execution/{burnt}/metrics").status_code == 401


def test_prometheus_metrics_pass_promtool(ms, mu, burnt):
    ms.get(f"/logs/execution/{burnt}", mu["key"])
    ms.get("/logs/execution/not-a-run", mu["key"])
    ms.get("/no/such/path/" + "x" * 20)
    r = requests.get(ms.base + "/metrics", timeout=10)  # no credentials
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert re.search(r'lyceumd_http_requests_total\{route="/api/v2/external/logs/execution/'
                     r'\{execution_id\}",method="GET",status="200"\} [1-9]', text)
    assert re.search(r'lyceumd_http_requests_total\{route="/api/v2/external/logs/execution/'
                     r'\{execution_id\}",method="GET",status="404"\} [1-9]', text)
    assert 'route="unmatched",method="GET",status="404"' in text
    assert burnt not in text and "not-a-run" not in text and "xxxx" not in text
    assert re.search(r'lyceumd_http_request_duration_seconds_bucket\{route="/api/v2/external/'
                     r'logs/execution/\{execution_id\}",method="GET",status="200",le="\+Inf"\} '
                     r'[1-9]', text)
    assert re.search(r'lyceumd_runs\{status="completed",profile="cpu"\} [1-9]', text)
    assert 'lyceumd_queue_depth{profile="cpu"} 0' in text
    assert 'lyceumd_capacity_in_use{profile="cpu"} 0' in text
    assert 'lyceumd_capacity_slots{profile="cpu"} 4' in text
    assert re.search(r'lyceumd_ledger_credits\{kind="grant"\} [1-9]', text)
    assert re.search(r'lyceumd_ledger_credits\{kind="run"\} -', text), text
    stored = re.search(r"^lyceumd_log_stored_bytes (\d+)$", text, re.M)
    assert stored and int(stored.group(1)) > 0
    assert ms.get("/api/v2/external/metrics").status_code == 200


def test_the_config_can_turn_metrics_off():
    cfg = write_config(MACHINES, metrics_endpoint=False)
    s = Server(["--config", cfg])
    try:
        assert_detail(requests.get(s.base + "/metrics", timeout=10), 404)
        assert_detail(s.get("/metrics"), 404)
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)


@pytest.mark.skipif(not has_nvml(), reason="no NVIDIA driver (NVML) on this machine")
def test_a_gpu_run_shows_real_gpu_readings():
    """Where NVML is at hand: the default machine types include gpu.<model>; a run holding a GPU
    gets GPU series with real readings (utilization may be 0 for an idle GPU, but temperature,
    power and clocks are not)."""
    fd, cfg = tempfile.mkstemp(prefix="lyceumd-config-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write('{"metrics_interval_seconds": 1}')  # the machine types found on this machine
    s = Server(["--config", cfg])
    try:
        u = s.new_user(credits=100)
        names = [m["hardware_profile"] for m in
                 s.get("/machine-types", u["key"]).json()["machine_types"]]
        gpu = next(n for n in names if n.startswith("gpu."))
        code = ("import os, time\nprint(os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
                "time.sleep(4)\n")
        run = start(s, u["key"], code, execution_type=gpu)
        assert wait_end(s, u["key"], run["execution_id"])["status"] == "completed"
        body = s.get(f"/execution/{run['execution_id']}/metrics", u["key"],
                     params={"step": "1s"}).json()
        print({n: body[n][:3] for n in SERIES if n.startswith("gpu")})
        assert body["gpuUtilizationPercent"], body
        assert all(0 <= p["value"] <= 100 for p in body["gpuUtilizationPercent"])
        assert body["gpuTemperatureCelsius"] and body["gpuTemperatureCelsius"][0]["value"] > 0
        assert body["gpuPowerWatt"] and body["gpuPowerWatt"][0]["value"] > 0
        assert body["gpuPowerLimitWatt"][0]["value"] >= body["gpuPowerWatt"][0]["value"]
        assert body["gpuClockMemMhz"] and body["gpuClockMemMhz"][0]["value"] > 0
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)
