"""Run logs over the real HTTP API (API.md 6.1): /logs/execution and /logs/user, newest-window
semantics, limit, total, stderr levels, ANSI codes, lines split across writes, the hours
window, tenancy, validation, and retention by age and size."""

import os
import shutil
import struct
import time

import pytest

from conftest import Server, assert_422, assert_detail
from runs_util import start, wait_end, write_config

MACHINES = [{"hardware_profile": "cpu", "price_per_hour": "0.10", "max_concurrent": 4}]
HUNDRED_K = ("import sys\n"
             "sys.stdout.write(''.join('line %d\\n' % i for i in range(100000)))\n"
             "sys.stdout.flush()\n"
             "print('oops \\x1b[31mred\\x1b[0m', file=sys.stderr)\n")


@pytest.fixture(scope="module")
def ls():
    cfg = write_config(MACHINES, metrics_interval_seconds=1)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


@pytest.fixture(scope="module")
def lu(ls):
    return ls.new_user(credits=10)


@pytest.fixture(scope="module")
def big_run(ls, lu):
    run = start(ls, lu["key"], HUNDRED_K)
    assert wait_end(ls, lu["key"], run["execution_id"])["status"] == "completed"
    return run["execution_id"]


def logs(server, key, run_id, **params):
    r = server.get(f"/logs/execution/{run_id}", key, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_hundred_thousand_lines_come_back_newest_window_in_order(ls, lu, big_run):
    body = logs(ls, lu["key"], big_run)
    assert body["total"] == 100001
    assert len(body["logs"]) == 1000  # the default limit
    msgs = [x["message"] for x in body["logs"]]
    # The newest 1,000 lines, oldest first: 99,001 .. 99,999 then the stderr line.
    assert msgs[:-1] == [f"line {i}" for i in range(99001, 100000)]
    last = body["logs"][-1]
    assert last["message"] == "oops \x1b[31mred\x1b[0m"  # ANSI codes kept
    assert last["level"] == "error"
    assert {x["level"] for x in body["logs"][:-1]} == {"info"}
    item = body["logs"][0]
    assert set(item) == {"timestamp", "message", "level", "execution_id", "user_id",
                         "hostname", "labels"}
    assert item["execution_id"] == big_run and item["user_id"] == lu["user_id"]
    assert item["labels"]["stream"] == "stdout" and item["hostname"]
    stamps = [x["timestamp"] for x in body["logs"]]
    assert stamps == sorted(stamps)

    body = logs(ls, lu["key"], big_run, limit=10000)
    assert body["total"] == 100001 and len(body["logs"]) == 10000
    assert body["logs"][0]["message"] == "line 90001"
    body = logs(ls, lu["key"], big_run, limit=3)
    assert [x["message"] for x in body["logs"]] == ["line 99998", "line 99999",
                                                    "oops \x1b[31mred\x1b[0m"]


def test_partial_lines_are_joined_per_stream_and_the_last_one_kept(ls, lu):
    code = ("import sys, time\n"
            "sys.stdout.write('abc'); sys.stdout.flush(); time.sleep(0.3)\n"
            "sys.stderr.write('E1\\n'); sys.stderr.flush(); time.sleep(0.3)\n"
            "sys.stdout.write('def\\nghi'); sys.stdout.flush(); time.sleep(0.3)\n"
            "sys.stdout.write('jkl\\n\\nünï\\n'); sys.stdout.flush()\n"
            "sys.stdout.write('no newline at the end')\n")
    run = start(ls, lu["key"], code)
    assert wait_end(ls, lu["key"], run["execution_id"])["status"] == "completed"
    body = logs(ls, lu["key"], run["execution_id"])
    got = [(x["level"], x["message"]) for x in body["logs"]]
    assert got == [("error", "E1"), ("info", "abcdef"), ("info", "ghijkl"), ("info", ""),
                   ("info", "ünï"), ("info", "no newline at the end")]
    assert body["total"] == 6


def test_hours_filters_by_time(ls, lu):
    """Half of a run's output is made two hours old by rewriting its records' times, and its
    line index is removed, so the server also rebuilds the index from output.log."""
    code = ("import sys, time\n"
            "for i in range(10):\n"
            "    if i == 5:\n"
            "        time.sleep(0.3)\n"
            "    sys.stdout.write('old %d\\n' % i)\n")
    run = start(ls, lu["key"], code)
    rid = run["execution_id"]
    assert wait_end(ls, lu["key"], rid)["status"] == "completed"
    d = os.path.join(ls.data, "runs", rid)
    with open(os.path.join(d, "output.log"), "r+b") as f:
        data = bytearray(f.read())
        pos, two_hours_ago = 0, int((time.time() - 7200) * 1e6)
        while pos < len(data):
            ts, n, stream = struct.unpack_from("<qIB", data, pos)
            if data[pos + 16:pos + 16 + n].startswith(b"old 5"):
                break  # the sleep made it start a record of its own
            struct.pack_into("<q", data, pos, two_hours_ago)
            pos += 16 + n
        f.seek(0)
        f.write(data)
    os.unlink(os.path.join(d, "lines.idx"))
    recent = logs(ls, lu["key"], rid, hours=1)
    assert [x["message"] for x in recent["logs"]] == [f"old {i}" for i in range(5, 10)]
    assert recent["total"] == 5
    every = logs(ls, lu["key"], rid, hours=3)
    assert every["total"] == 10 and every["logs"][0]["message"] == "old 0"
    assert os.path.exists(os.path.join(d, "lines.idx"))  # rebuilt and kept


def test_bad_query_values_answer_422(ls, lu, big_run):
    for params, name in [({"limit": 0}, "limit"), ({"limit": 10001}, "limit"),
                         ({"hours": 0}, "hours"), ({"hours": 169}, "hours"),
                         ({"limit": "ten"}, "limit")]:
        assert_422(ls.get(f"/logs/execution/{big_run}", lu["key"], params=params),
                   ("query", name))
    for params, name in [({"limit": 5001}, "limit"), ({"hours": 25}, "hours"),
                         ({"hours": "x"}, "hours")]:
        assert_422(ls.get("/logs/user", lu["key"], params=params), ("query", name))
    assert ls.get(f"/logs/execution/{big_run}").status_code == 401


def test_another_orgs_run_is_404_and_logs_user_shows_only_the_callers_runs(ls, lu, big_run):
    other = ls.new_user(credits=10)
    assert_detail(ls.get(f"/logs/execution/{big_run}", other["key"]), 404)
    assert_detail(ls.get(f"/execution/{big_run}/metrics", other["key"]), 404)
    assert_detail(ls.get("/logs/execution/not-a-run", lu["key"]), 404)
    theirs = start(ls, other["key"], "print('theirs')\n")
    wait_end(ls, other["key"], theirs["execution_id"])
    mine = ls.get("/logs/user", lu["key"], params={"limit": 5000, "hours": 24}).json()
    assert mine["logs"] and {x["execution_id"] for x in mine["logs"]} >= {big_run}
    assert theirs["execution_id"] not in {x["execution_id"] for x in mine["logs"]}
    assert {x["user_id"] for x in mine["logs"]} == {lu["user_id"]}
    assert len(mine["logs"]) == 5000 and mine["total"] >= 100001
    stamps = [x["timestamp"] for x in mine["logs"]]
    assert stamps == sorted(stamps)
    body = ls.get("/logs/user", other["key"]).json()
    assert [x["message"] for x in body["logs"]] == ["theirs"] and body["total"] == 1
    assert body["logs"][0]["execution_id"] == theirs["execution_id"]


def test_logs_user_defaults_to_100_lines_of_the_last_hour(ls, lu, big_run):
    body = ls.get("/logs/user", lu["key"]).json()
    assert len(body["logs"]) == 100 and body["total"] >= 100001


def test_retention_deletes_old_logs_by_age_and_then_by_size():
    cfg = write_config(MACHINES, log_retention_hours=24)
    s = Server(["--config", cfg])
    try:
        u = s.new_user(credits=10)
        runs = []
        for text in ("first", "second", "third"):
            run = start(s, u["key"], f"print('{text}' * 1000)\n")
            wait_end(s, u["key"], run["execution_id"])
            runs.append(run["execution_id"])
        for rid in runs:
            assert logs(s, u["key"], rid)["total"] == 1
        # The first run's log is two days old: the janitor deletes it at the next start.
        old = time.time() - 48 * 3600
        os.utime(os.path.join(s.data, "runs", runs[0], "output.log"), (old, old))
        os.utime(os.path.join(s.data, "runs", runs[1], "output.log"), (old + 86400 + 60,) * 2)
        s.stop()
        # At most ~8 KB of logs: the older of the two left goes too.
        with open(cfg, "w") as f:
            f.write('{"machine_types": [{"hardware_profile": "cpu", "price_per_hour": "0.10"}],'
                    ' "log_retention_hours": 24, "log_retention_bytes": 8000}')
        s.start()
        deadline = time.time() + 10
        while time.time() < deadline and logs(s, u["key"], runs[1])["total"]:
            time.sleep(0.1)
        assert logs(s, u["key"], runs[0]) == {"logs": [], "total": 0}
        assert logs(s, u["key"], runs[1]) == {"logs": [], "total": 0}
        assert logs(s, u["key"], runs[2])["total"] == 1
        assert "deleted by the retention settings" in s.read_log()
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)
