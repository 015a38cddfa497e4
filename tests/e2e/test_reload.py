"""Reloading the config while serving (issue 19): SIGHUP re-reads the config file; a new price
bills the runs submitted after it and the runs submitted before keep theirs, to the micro-credit
(the charging rule of test_billing.py, from each run's start_time and end_time); capacity and
new machine types take effect at once; a config that does not parse, or holds a bad value,
changes nothing (the log says why) and the server serves on."""

import json
import os
import shutil
import signal
import time

import pytest

from conftest import Server
from runs_util import start, wait_end, wait_status
from test_billing import cost, micro, us


def machines(price, concurrent=4, extra=()):
    return [{"hardware_profile": "cpu", "price_per_hour": "0.10", "max_concurrent": 4},
            {"hardware_profile": "cpu.priced", "price_per_hour": price,
             "max_concurrent": concurrent}, *extra]


def write(path, body):
    with open(path, "w") as f:
        f.write(body if isinstance(body, str) else json.dumps(body))


@pytest.fixture
def rl(tmp_path):
    cfg = str(tmp_path / "config.json")
    write(cfg, {"machine_types": machines("36.00"), "meter_window_seconds": 1})
    s = Server(["--config", cfg])
    s.cfg = cfg
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)


def reload(s, expect):
    """Sends SIGHUP and waits for the log to say expect (once more than before)."""
    before = s.read_log().count(expect)
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 15
    while time.time() < deadline:
        if s.read_log().count(expect) > before:
            return
        time.sleep(0.05)
    raise AssertionError(f"no '{expect}' in the log after SIGHUP:\n{s.read_log()[-3000:]}")


def price_of(s, key, profile):
    types = s.get("/machine-types", key).json()
    types = types.get("machine_types", types) if isinstance(types, dict) else types
    return {t["hardware_profile"]: t for t in types}.get(profile)


def charged(s, u, rid):
    """What run rid was charged, and its time from start_time to end_time in µs."""
    hist = s.get("/billing/history", u["key"]).json()
    row = [e for e in hist["executions"] if e["execution_id"] == rid][0]
    return micro(row["billed"]), us(row["end_time"]) - us(row["start_time"])


def test_a_new_price_bills_new_runs_and_old_runs_keep_theirs(rl):
    u = rl.new_user(credits=100)
    old = start(rl, u["key"], "import time\ntime.sleep(4)", execution_type="cpu.priced")
    wait_status(rl, u["key"], old["execution_id"], "running")
    # 36/h -> 72/h while the first run runs.
    write(rl.cfg, {"machine_types": machines("72.00"), "meter_window_seconds": 1})
    reload(rl, "reload: ")
    reload_done = rl.read_log()
    assert "applied" in reload_done
    assert micro(price_of(rl, u["key"], "cpu.priced")["price_per_hour"]) == 72000000
    new = start(rl, u["key"], "import time\ntime.sleep(3)", execution_type="cpu.priced")
    for rid in (old["execution_id"], new["execution_id"]):
        assert wait_end(rl, u["key"], rid)["status"] == "completed"
    billed_old, dt_old = charged(rl, u, old["execution_id"])
    billed_new, dt_new = charged(rl, u, new["execution_id"])
    assert billed_old == cost(36000000, dt_old), (billed_old, dt_old)
    assert billed_new == cost(72000000, dt_new), (billed_new, dt_new)
    # The pricing the API shows is the new one.
    assert "from now on" in rl.read_log()


def test_capacity_and_new_machine_types_take_effect(rl):
    u = rl.new_user(credits=100)
    assert price_of(rl, u["key"], "cpu.extra") is None
    r = rl.post("/execution/streaming/start", u["key"],
                json={"code": "print(1)", "execution_type": "cpu.extra"})
    assert r.status_code == 400 and "cpu.extra" in r.json()["detail"], r.text
    # cpu.priced down to one at a time; a new type cpu.extra.
    write(rl.cfg, {"machine_types": machines("36.00", concurrent=1, extra=[
        {"hardware_profile": "cpu.extra", "price_per_hour": "1.00", "max_concurrent": 2}]),
        "meter_window_seconds": 1})
    reload(rl, "applied")
    assert "machine type cpu.extra added" in rl.read_log()
    assert price_of(rl, u["key"], "cpu.priced")["max_concurrent"] == 1
    a = start(rl, u["key"], "import time\ntime.sleep(2)", execution_type="cpu.priced")
    b = start(rl, u["key"], "print('second')", execution_type="cpu.priced")
    wait_status(rl, u["key"], a["execution_id"], "running")
    time.sleep(0.5)
    st = rl.get(f"/execution/streaming/{b['execution_id']}/status", u["key"]).json()
    assert st["status"] == "pending", st  # waits for the one slot
    assert wait_end(rl, u["key"], b["execution_id"])["status"] == "completed"
    x = start(rl, u["key"], "print('extra')", execution_type="cpu.extra")
    assert wait_end(rl, u["key"], x["execution_id"])["status"] == "completed"


@pytest.mark.parametrize("broken", [
    '{"machine_types": [',                                      # does not parse
    {"machine_types": machines("not-a-price")},                 # a bad value
    {"machine_types": [{"hardware_profile": "gpu.x", "price_per_hour": "1"}]},  # no cpu
    {"machine_types": machines("1.00"), "meter_window_seconds": 5000},  # out of range
])
def test_a_broken_config_on_sighup_changes_nothing(rl, broken):
    u = rl.new_user(credits=100)
    before = rl.get("/machine-types", u["key"]).json()
    write(rl.cfg, broken)
    reload(rl, "refused")
    assert rl.alive()
    assert rl.get("/machine-types", u["key"]).json() == before
    run = start(rl, u["key"], "import time\ntime.sleep(2)", execution_type="cpu.priced")
    assert wait_end(rl, u["key"], run["execution_id"])["status"] == "completed"
    billed, dt = charged(rl, u, run["execution_id"])
    assert billed == cost(36000000, dt)  # still the price it had


def test_a_restart_only_setting_is_named_and_kept(rl):
    write(rl.cfg, {"machine_types": machines("36.00"), "meter_window_seconds": 2,
                   "sandbox": False})
    reload(rl, "applied")
    log = rl.read_log()
    assert "'meter_window_seconds' changed in the config: it takes effect at the next restart" \
        in log
    assert "'sandbox' changed" in log
