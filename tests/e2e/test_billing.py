"""Money end to end: per-second metering into the ledger, admission and stop at zero, the
billing views, vouchers, invoices, and the ledger's consistency under concurrency and kill -9."""

import concurrent.futures
import os
import random
import re
import shutil
import signal
import sqlite3
import time
from decimal import Decimal

import pytest
import requests

from conftest import Server, assert_detail
from runs_util import follow, start, status, wait_end, wait_status, write_config

MACHINES = [
    {"hardware_profile": "cpu", "price_per_hour": "0.36", "max_concurrent": 4},
    {"hardware_profile": "cpu.priced", "price_per_hour": "36", "max_concurrent": 4},
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
    u = bs.new_user(credits="0.03")
    run = start(bs, u["key"], "import time\ntime.sleep(60)", execution_type="cpu.priced")
    st = wait_end(bs, u["key"], run["execution_id"], timeout=20)
    assert st["status"] == "aborted" and "credits" in st["errors"].lower(), st
    assert balance(bs, u) <= D("0.01")  # it ran about three seconds' worth, then stopped


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
