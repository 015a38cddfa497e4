"""Money end to end: per-second metering into the ledger, admission and stop at zero, the
billing views, vouchers, invoices, and the ledger's consistency under concurrency and kill -9;
exact charges at prices where a second is not a whole number of micro-credits, for runs and for
inference replicas; monthly free credits, their month's end reached through libfaketime.

The charging rule (src/billing/billing.h): a run or replica that has run dt µs at P
micro-credits per hour has cost P * dt / 3.6e9 micro-credits, rounded to the nearest (halves
up) once, on its whole time from its start; each window it is charged is the difference of
that figure at the window's edges, so the charges add up to it exactly."""

import concurrent.futures
import datetime
import glob
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from decimal import Decimal

import pytest
import requests

import inference_util as iu
from conftest import BIN, Server, assert_detail
from runs_util import follow, start, status, wait_end, wait_status, write_config

MACHINES = [
    {"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 4},
    {"hardware_profile": "cpu.priced", "price_per_hour": "36", "max_concurrent": 4},
    {"hardware_profile": "cpu.dime", "price_per_hour": "0.10", "max_concurrent": 4},
]


@pytest.fixture(scope="module")
def bs():
    cfg = write_config(MACHINES, meter_window_seconds=1)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def D(x):
    return Decimal(str(x))


def balance(s, u):
    r = s.get(f"/orgs/{u['org_slug']}/balance", u["key"])
    assert r.status_code == 200, r.text
    return D(r.json()["balance"])


def micro(x):
    """A money figure of the API (string or number) in integer micro-credits, exactly."""
    m = D(x) * 1000000
    assert m == m.to_integral_value(), x
    return int(m)


def cost(price_micro_h, dt_us):
    """The charging rule: price * time, rounded once to the nearest micro-credit, halves up."""
    q, r = divmod(price_micro_h * dt_us, 3600 * 1000000)
    return q + (2 * r >= 3600 * 1000000)


def us(iso):
    """An API time ("2026-12-02T19:53:31.568997+00:00") in µs since the epoch, exactly."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (datetime.datetime.fromisoformat(iso) - epoch) // datetime.timedelta(microseconds=1)


def transactions(s, u):
    out, offset = [], 0
    while True:
        r = s.get(f"/orgs/{u['org_slug']}/transactions?limit=100&offset={offset}", u["key"]).json()
        out += r["transactions"]
        offset += 100
        if offset >= r["total"]:
            return out


def test_a_three_second_run_is_billed_by_the_second(bs):
    u = bs.new_user(credits=5)
    before = balance(bs, u)
    run = start(bs, u["key"], "import time\ntime.sleep(3)", execution_type="cpu.priced")
    st = wait_end(bs, u["key"], run["execution_id"])
    assert st["status"] == "completed"
    hist = bs.get("/billing/history", u["key"]).json()
    row = [e for e in hist["executions"] if e["execution_id"] == run["execution_id"]][0]
    billed = D(row["billed"])
    assert abs(billed - D("0.03")) <= D("0.01"), billed  # 36 credits/h = 0.01 per second
    assert balance(bs, u) == before - billed  # exactly what was billed, to the micro-credit
    assert hist["counts_by_status"]["completed"] >= 1 and D(hist["total_credits_spent"]) == billed
    assert set(row) >= {"execution_id", "created_at", "execution_type", "status",
                        "hardware_profile", "billed", "start_time", "end_time", "file_name",
                        "parent_execution_id"}
    # It was charged while it ran, window by window, not once at the end.
    charges = [t for t in transactions(bs, u) if t["type"] == "run"]
    assert len(charges) >= 3 and D(sum(D(c["amount"]) for c in charges)) == -billed


def test_no_credits_is_402_and_a_run_stops_at_zero(bs):
    broke = bs.new_user()
    r = bs.post("/execution/streaming/start", broke["key"], json={"code": "print(1)"})
    assert r.status_code == 402 and r.json() == {"detail": "Insufficient credits"}
    # Three orgs with 0.03 credits each, three seconds at 36/h (a window of 1 s costs 0.01),
    # their runs started a third of a second apart: whatever the phase of the meter's passes
    # (once a second), one of them reaches zero at least 2/3 s before the next one.
    users = [bs.new_user(credits="0.03") for _ in range(3)]
    runs = []
    for u in users:
        runs.append(start(bs, u["key"], "import time\ntime.sleep(60)",
                          execution_type="cpu.priced"))
        time.sleep(0.33)
    for u, run in zip(users, runs):
        st = wait_end(bs, u["key"], run["execution_id"], timeout=20)
        assert st["status"] == "aborted" and "credits" in st["errors"].lower(), st
        left = balance(bs, u)
        # Not stopped before its credits were all used (to the micro-credit)...
        assert left <= 0, left
        # ...nor allowed to run on: the meter makes a pass at the instant the balance reaches
        # zero, so the overdraft is the time the kill takes (about 20 ms, 0.0002 here), well
        # under half a window; a check only at the once-a-second passes came up to a whole
        # window (1 s, 0.01) late.
        assert left >= D("-0.005"), left


def test_a_run_at_ten_cents_an_hour_is_billed_exactly(bs):
    """At 0.10/h a second is 27.78 micro-credits: each run's charges, window by window and the
    last partial one, add up to the rule's figure for its whole time from start_time to
    end_time (a window rounded on its own would make at least one micro-credit more over the
    five or more whole windows of a run). Three runs started a third of a second apart: the
    last part of at least one of them is shorter than a window whatever the phase of the
    meter's passes."""
    u = bs.new_user(credits=1)
    runs = []
    for _ in range(3):
        runs.append(start(bs, u["key"], "import time\ntime.sleep(7.5)",
                          execution_type="cpu.dime")["execution_id"])
        time.sleep(0.33)
    total = 0
    for rid in runs:
        st = wait_end(bs, u["key"], rid)
        assert st["status"] == "completed", st
    hist = bs.get("/billing/history", u["key"]).json()
    tx = transactions(bs, u)
    for rid in runs:
        row = [e for e in hist["executions"] if e["execution_id"] == rid][0]
        dt = us(row["end_time"]) - us(row["start_time"])
        assert dt > 7500000, row
        want = cost(100000, dt)  # 0.10/h = 100000 micro-credits per hour
        charges = [micro(t["amount"]) for t in tx if t["type"] == "run" and t["reference"] == rid]
        assert len(charges) >= 6, charges  # charged while it ran, then its last part
        assert -sum(charges) == want, (charges, dt, want)
        assert micro(row["billed"]) == want
        total += want
    assert micro(balance(bs, u)) == 1000000 - total


def test_vouchers(bs):
    u = bs.new_user(credits=1)
    bs.cli("voucher", "add", "WELCOME10", "10", "--note", "test")
    bs.cli("voucher", "add", "OLD5", "5", "--expires", "2020-01-01")
    r = bs.post("/billing/vouchers/validate", u["key"], json={"code": "WELCOME10"})
    assert r.json() == {"valid": True, "credits": 10.0, "expires_at": None}
    assert bs.post("/billing/vouchers/validate", u["key"], json={"code": "OLD5"}).json()["valid"] is False
    assert_detail(bs.post("/billing/vouchers/redeem", u["key"], json={"code": "OLD5"}), 410)
    assert_detail(bs.post("/billing/vouchers/redeem", u["key"], json={"code": "NOPE"}), 404)
    before = balance(bs, u)
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        codes = list(ex.map(lambda _: bs.post("/billing/vouchers/redeem", u["key"],
                                              json={"code": "WELCOME10"}).status_code, range(20)))
    assert sorted(codes) == [200] + [409] * 19
    assert balance(bs, u) == before + 10
    other = bs.new_user(credits=1)  # another org may redeem it once too
    assert bs.post("/billing/vouchers/redeem", other["key"], json={"code": "welcome10"}).ok


def test_pricing_credits_checkout(bs):
    p = bs.get("/pricing").json()["prices"]
    row = [x for x in p if x["meter_slug"] == "run_seconds"
           and x["applies_to"]["hardware_profile"] == "cpu.priced"][0]
    assert row == {"meter_slug": "run_seconds", "resource": "run",
                   "applies_to": {"hardware_profile": "cpu.priced"},
                   "group_by": {"hardware_profile": "cpu.priced"}, "unit": "second",
                   "unit_price": "0.01000000", "unit_price_per_hour": "36.00000000"}
    for x in p:
        assert re.fullmatch(r"\d+\.\d{8}", x["unit_price"]), x
    u = bs.new_user(credits="12.5")
    c = bs.get("/billing/credits", u["key"]).json()
    assert c["available_credits"] == 12.5 and c["remaining_credits"] == 12.5
    assert c["used_credits"] == 0 and c["purchased_credits"] == 12.5
    assert c["monthly_free_credits"] == 0
    d = bs.get("/billing/credits/details", u["key"]).json()
    assert d["balance"] == "12.50" and d["purchased"]["total"] == 12.5
    assert_detail(bs.post("/billing/checkout", u["key"], json={"credits_amount": 10}), 501,
                  "not configured")


def test_invoices_match_the_ledger_and_stay_private(bs):
    u = bs.new_user(credits=3)
    run = start(bs, u["key"], "import time\ntime.sleep(1.5)", execution_type="cpu.priced")
    wait_end(bs, u["key"], run["execution_id"])
    inv = bs.get("/billing/invoices", u["key"]).json()
    assert inv["total_invoices"] == 1
    i = inv["invoices"][0]
    tx = transactions(bs, u)
    spent = -sum(D(t["amount"]) for t in tx if D(t["amount"]) < 0)
    added = sum(D(t["amount"]) for t in tx if D(t["amount"]) > 0)
    assert D(i["amount"]) == spent and D(i["credits"]) == added and i["status"] == "open"
    page = requests.get(i["invoice_pdf"], timeout=10)  # a person opens it: no API key
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    total = re.search(r'id="total">([^<]+)<', page.text).group(1)
    assert D(total) == spent and run["execution_id"] in page.text
    assert page.text.count("<tr>") == len(tx) + 1
    # Tampered or borrowed links show nothing.
    other = bs.new_user(credits=1)
    oi = bs.get("/billing/invoices", other["key"]).json()["invoices"][0]["invoice_pdf"]
    stolen = oi.replace(other["org_id"], u["org_id"])
    assert requests.get(stolen, timeout=10).status_code == 404
    assert requests.get(i["invoice_pdf"][:-4] + "0000", timeout=10).status_code == 404
    hist = bs.get("/billing/history", other["key"]).json()
    assert run["execution_id"] not in [e["execution_id"] for e in hist["executions"]]
    acts = bs.get("/billing/activities", other["key"]).json()["activities"]
    assert run["execution_id"] not in [a["activity_id"] for a in acts]
    mine = bs.get("/billing/activities", u["key"]).json()
    assert {a["type"] for a in mine["activities"]} == {"execution", "purchase"}


def test_a_thousand_concurrent_ledger_operations_add_up(bs):
    users = [bs.new_user(credits=50) for _ in range(16)]
    for k in range(20):
        bs.cli("voucher", "add", f"BULK{k}", "0.5")
    ops = [("grant", u) for u in users for _ in range(12)] + \
          [("voucher", u, k) for u in users for k in range(20)] + \
          [("run", u) for u in users for _ in range(31)]
    ops = ops[:1000]
    random.Random(7).shuffle(ops)

    def do(op):
        u = op[1]
        if op[0] == "grant":
            bs.cli("credits", "grant", u["org_slug"], "0.25")
            return ("grant", u["org_slug"], D("0.25"))
        if op[0] == "voucher":
            r = bs.post("/billing/vouchers/redeem", u["key"], json={"code": f"BULK{op[2]}"})
            assert r.status_code == 200, r.text
            return ("voucher", u["org_slug"], D("0.5"))
        r = bs.post("/execution/streaming/start", u["key"],
                    json={"code": "pass", "execution_type": "cpu.priced"})
        assert r.status_code == 200, r.text
        return ("run", u["org_slug"], r.json()["execution_id"])

    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        done = list(ex.map(do, ops))
    assert len(done) == 1000
    runs = [d for d in done if d[0] == "run"]
    for _, slug, rid in runs:
        u = next(x for x in users if x["org_slug"] == slug)
        wait_end(bs, u["key"], rid, timeout=120)
    for u in users:
        added = sum(d[2] for d in done if d[0] != "run" and d[1] == u["org_slug"])
        hist = bs.get("/billing/history?limit=1000", u["key"]).json()
        billed = sum(D(e["billed"]) for e in hist["executions"])
        tx = transactions(bs, u)
        assert balance(bs, u) == D(50) + added - billed == sum(D(t["amount"]) for t in tx)


def test_kill_9_while_metering_loses_no_window_and_writes_none_twice(bs):
    s = Server(["--config", write_config(MACHINES, meter_window_seconds=1)])
    try:
        u = s.new_user(credits=100)
        run = start(s, u["key"], "import time\ntime.sleep(60)", execution_type="cpu.priced")
        wait_status(s, u["key"], run["execution_id"], "running")
        time.sleep(3.5)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        s.log.close()
        db = sqlite3.connect(os.path.join(s.data, "lyceumd.db"))
        before = db.execute("SELECT count(*) FROM ledger WHERE ref = ?",
                            (run["execution_id"],)).fetchone()[0]
        db.close()
        assert before >= 2
        s.start()
        st = wait_end(s, u["key"], run["execution_id"])
        assert st["status"] == "system_failure"
        time.sleep(1.5)  # a metering pass after the restart must not charge it again
        db = sqlite3.connect(os.path.join(s.data, "lyceumd.db"))
        wins = db.execute("SELECT window_start, window_end, amount FROM ledger WHERE ref = ? "
                          "AND kind = 'run' ORDER BY window_start",
                          (run["execution_id"],)).fetchall()
        running_at, metered = db.execute("SELECT running_at, metered_until FROM runs WHERE "
                                         "id = ?", (run["execution_id"],)).fetchone()
        db.close()
        assert len(wins) == before  # nothing added, nothing doubled
        assert wins[0][0] == running_at and wins[-1][1] == metered
        for a, b in zip(wins, wins[1:]):
            assert a[1] == b[0]  # contiguous: no window lost
        billed = D(s.get("/billing/history", u["key"]).json()["executions"][0]["billed"])
        assert billed == -sum(D(w[2]) for w in wins) / 1000000
        assert balance(s, u) == D(100) - billed
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


# ---- inference: replica-seconds ---------------------------------------------------------------

def test_a_deployment_is_billed_for_its_replica_seconds_exactly():
    """A deployment's replica at 1.99/h (552.78 micro-credits a second) is charged, window by
    window from its start, exactly the rule's figure for the time from its recorded start to
    its recorded end: the deployment's billed and the org's balance say the same."""
    cfg = iu.config()
    with open(cfg) as f:
        c = json.load(f)
    c["machine_types"][0]["price_per_hour"] = "1.99"
    with open(cfg, "w") as f:
        json.dump(c, f)
    s = Server(["--config", cfg])
    try:
        iu.add_model(s)
        u = s.new_user(credits=10)
        dep = iu.create(s, u["key"])
        d = iu.wait_status(s, u["key"], dep, "running", timeout=60)
        live = {r["replica_id"]: r["started_at"] for r in d["replicas"]}
        assert len(live) == 1, d
        time.sleep(6)  # six windows or more
        assert s.post(f"/inference/{dep}/stop", u["key"]).status_code == 200
        iu.wait_status(s, u["key"], dep, "stopped", timeout=60)
        db = sqlite3.connect(os.path.join(s.data, "lyceumd.db"))
        reps = db.execute("SELECT id, started_at, ended_at FROM inference_replicas WHERE "
                          "deployment_id = ?", (dep,)).fetchall()
        total = 0
        for rid, started, ended in reps:
            wins = db.execute("SELECT window_start, window_end, amount FROM ledger WHERE "
                              "kind = 'deployment' AND ref = ? ORDER BY window_start",
                              (rid,)).fetchall()
            assert ended is not None and ended - started > 6000000, (started, ended)
            assert wins[0][0] == started and wins[-1][1] == ended, wins
            for a, b in zip(wins, wins[1:]):
                assert a[1] == b[0], wins  # contiguous, each once
            assert -sum(w[2] for w in wins) == cost(1990000, ended - started), wins
            total += cost(1990000, ended - started)
        db.close()
        # The replica the API showed, with the start it showed.
        assert {r[0] for r in reps} == set(live) and us(live[reps[0][0]]) == reps[0][1]
        assert micro(s.get(f"/inference/{dep}", u["key"]).json()["billed"]) == total
        assert micro(balance(s, u)) == 10000000 - total
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)


# ---- monthly free credits ---------------------------------------------------------------------

FREE = {"monthly_free_credits": "0.5", "meter_window_seconds": 1}


def free_entries(s, u, kind):
    return [t for t in transactions(s, u) if t["type"] == kind]


@pytest.fixture(scope="module")
def fs():
    cfg = write_config(MACHINES, **FREE)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def test_monthly_free_credits_come_once_and_are_spent_first(fs):
    u = fs.new_user(credits=1)
    other = fs.new_user(credits=1)
    # However many requests come at once, the month's grant is written once per org.
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(lambda k: fs.get("/billing/credits", (u, other)[k % 2]["key"])
                            .status_code, range(40)))
    assert codes == [200] * 40
    for x in (u, other):
        grants = free_entries(fs, x, "free")
        assert [micro(g["amount"]) for g in grants] == [500000], grants
        month = grants[0]["created_at"][:7]
        assert grants[0]["reference"] == month
    c = fs.get("/billing/credits", u["key"]).json()
    assert c["monthly_free_credits"] == 0.5 and c["free_credits_remaining"] == 0.5
    assert c["available_credits"] == 1.5 and c["purchased_credits"] == 1
    # A run's charges come off the free credits first: the paid credit is left whole.
    run = start(fs, u["key"], "import time\ntime.sleep(1.5)", execution_type="cpu.priced")
    assert wait_end(fs, u["key"], run["execution_id"])["status"] == "completed"
    billed = micro(fs.get("/billing/history", u["key"]).json()["executions"][0]["billed"])
    assert 15000 <= billed < 500000
    d = fs.get("/billing/credits/details", u["key"]).json()
    assert micro(d["free"]["used_this_month"]) == billed
    assert micro(d["free"]["remaining"]) == 500000 - billed
    assert micro(d["purchased"]["remaining"]) == 1000000
    assert micro(d["balance"]) == 1500000 - billed
    assert len(free_entries(fs, u, "free")) == 1 and free_entries(fs, u, "free_expiry") == []


def faketime_env(start):
    """The environment that starts a server's clock at start (UTC) through libfaketime, and
    lets it run from there; the monotonic clock stays real."""
    lib = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    assert lib, "libfaketime is missing: install Debian's faketime (scripts/deps.sh does)"
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
    asan = [ln.split("=>")[1].split()[0] for ln in out.splitlines() if "libasan" in ln]
    return {"LD_PRELOAD": " ".join(asan + lib[:1]),  # the sanitizer's runtime must come first
            "FAKETIME": "@" + start.strftime("%Y-%m-%d %H:%M:%S"),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_unused_free_credits_expire_at_the_months_end():
    """The server's clock starts 20 s before the end of this month (UTC): the month's grant
    comes, a run spends part of it, then, once the month is over, what it left expires (not
    the paid credits: free ones are spent first) and the new month's grant comes, once."""
    now = datetime.datetime.now(datetime.timezone.utc)
    nxt = datetime.datetime(now.year + (now.month == 12), now.month % 12 + 1, 1,
                            tzinfo=datetime.timezone.utc)
    cfg = write_config(MACHINES, **FREE)
    s = Server(["--config", cfg], env=faketime_env(nxt - datetime.timedelta(seconds=20)))
    try:
        u = s.new_user(credits=1)
        c = s.get("/billing/credits", u["key"]).json()
        assert c["available_credits"] == 1.5 and c["free_credits_remaining"] == 0.5, c
        run = start(s, u["key"], "import time\ntime.sleep(2)", execution_type="cpu.priced")
        assert wait_end(s, u["key"], run["execution_id"])["status"] == "completed"
        charges = [t for t in transactions(s, u) if t["type"] == "run"]
        spent = -sum(micro(t["amount"]) for t in charges)
        assert 20000 <= spent < 500000, charges
        old_month = free_entries(s, u, "free")[0]["reference"]
        assert old_month == (nxt - datetime.timedelta(days=1)).strftime("%Y-%m")
        assert all(us(t["created_at"]) < us(nxt.isoformat()) for t in charges), \
            "the run ended after the month did: this machine is too slow for the test"
        # The month ends (on the server's clock); the next request sees the new month.
        deadline = time.time() + 60
        while not free_entries(s, u, "free_expiry") and time.time() < deadline:
            assert s.get("/billing/credits", u["key"]).status_code == 200
            time.sleep(0.2)
        for _ in range(5):
            assert s.get("/billing/credits", u["key"]).status_code == 200
        expiry = free_entries(s, u, "free_expiry")
        grants = free_entries(s, u, "free")
        assert [(micro(t["amount"]), t["reference"]) for t in expiry] == \
            [(-(500000 - spent), old_month)], expiry
        assert sorted((t["reference"], micro(t["amount"])) for t in grants) == \
            [(old_month, 500000), (nxt.strftime("%Y-%m"), 500000)], grants
        # What is left: the paid credit, whole, and the new month's free credits.
        assert micro(balance(s, u)) == 1000000 + 500000
        c = s.get("/billing/credits", u["key"]).json()
        assert c["free_credits_remaining"] == 0.5 and c["available_credits"] == 1.5, c
        d = s.get("/billing/credits/details", u["key"]).json()
        assert micro(d["free"]["expired_total"]) == 500000 - spent
        assert micro(d["purchased"]["remaining"]) == 1000000
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)
