"""Backups and restores (issue 19): `lyceumd backup FILE` while the server serves under load
(runs going, ledger writes from another process), `lyceumd restore FILE` into another data
directory, the restored server answering for the same users with the same keys; a restore
refused beside a running server and for an archive that is not a backup; the periodic backup
keeping the newest backup_keep. Every check reads what an operator would: the CLI's exit code
and words, the restored database with SQLite, the restored server over HTTP."""

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import threading
import time

import pytest

import conftest
from conftest import Server
from runs_util import start, wait_end, write_config

MACHINES = [{"hardware_profile": "cpu", "price_per_hour": "0.10", "max_concurrent": 4}]


class ServerOn(Server):
    """A lyceumd serving an existing data directory (a restored one)."""

    def __init__(self, data):
        self.env, self.data, self.relative_data = {}, data, False
        self.port = conftest.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(data, "server.log")
        self.extra_args, self.proc = [], None
        self.start()


def cli(data, *args, check=True):
    r = subprocess.run([conftest.BIN, "--data", data, *args], capture_output=True, text=True,
                       timeout=120)
    if check:
        assert r.returncode == 0, f"lyceumd {' '.join(args)}: {r.stderr}"
    return r


@pytest.fixture(scope="module")
def bs():
    cfg = write_config(MACHINES)
    s = Server(["--config", cfg])
    yield s
    s.stop()
    shutil.rmtree(s.data, ignore_errors=True)
    os.unlink(cfg)


def ledger_notes(db):
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT description FROM ledger WHERE kind = 'grant'")}


def test_backup_under_load_restores_whole(bs, tmp_path):
    u = bs.new_user(credits=50)
    token = bs.login(u)["access_token"]
    # Load: runs going, and grants appended by the operator's CLI in another process, each one
    # acknowledged (exit 0) before the next; the time of each acknowledgement is kept.
    acked, stop = [], threading.Event()

    def grants():
        i = 0
        while not stop.is_set():
            note = f"load-{i}"
            cli(bs.data, "credits", "grant", u["org_slug"], "0.01", "--note", note)
            acked.append((time.time(), note))
            i += 1

    runs = [start(bs, u["key"], "import time\nfor i in range(30):\n    print(i)\n"
                  "    time.sleep(0.1)\n")["execution_id"] for _ in range(3)]
    t = threading.Thread(target=grants)
    t.start()
    try:
        while len(acked) < 5:
            time.sleep(0.05)
        began = time.time()
        archive = str(tmp_path / "lyceumd-backup.tar.gz")
        r = cli(bs.data, "backup", archive)
        while len(acked) < len([a for a in acked if a[0] < began]) + 3:
            time.sleep(0.05)  # grants went on while and after it ran
    finally:
        stop.set()
        t.join()
    for rid in runs:
        assert wait_end(bs, u["key"], rid)["status"] == "completed"
    assert os.path.getsize(archive) > 0
    assert archive in r.stdout or "lyceumd-backup.tar.gz" in r.stdout
    with tarfile.open(archive) as tf:
        names = sorted(tf.getnames())
        manifest = json.load(tf.extractfile("MANIFEST.json"))
    assert names == sorted(["MANIFEST.json", "lyceumd.db", "jwt.key", "master.key",
                            "invoice.key"]) or names == sorted(
        ["MANIFEST.json", "lyceumd.db", "jwt.key", "master.key"])
    assert manifest["kind"] == "lyceumd-backup" and manifest["schema"] >= 11

    # Restore into a new data directory; the database passes integrity_check and holds every
    # grant acknowledged before the backup began.
    data2 = tempfile.mkdtemp(prefix="lyceumd-restore-")
    try:
        r = cli(data2, "restore", archive)
        db = os.path.join(data2, "lyceumd.db")
        with sqlite3.connect(db) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        notes = ledger_notes(db)
        before = [n for at, n in acked if at < began]
        assert before and all(n in notes for n in before), (before, notes)
        # The restored server knows the user, their key and their session (the JWT key came
        # with it), and the balance is what the restored ledger sums to.
        s2 = ServerOn(data2)
        try:
            assert s2.get("/billing/credits", u["key"]).status_code == 200
            assert s2.get("/user/status", token).status_code == 200  # the old session
            assert s2.login(u)["access_token"]
            with sqlite3.connect(db) as c:
                total = c.execute("SELECT sum(amount) FROM ledger l JOIN orgs o ON "
                                  "o.id = l.org_id WHERE o.slug = ?",
                                  (u["org_slug"],)).fetchone()[0]
            d = s2.get("/billing/credits/details", u["key"]).json()
            assert round(float(d["balance"]) * 1e6) == total, (d, total)
        finally:
            s2.stop()
    finally:
        shutil.rmtree(data2, ignore_errors=True)


def test_restore_refused_beside_a_running_server(bs, tmp_path):
    archive = str(tmp_path / "b.tar.gz")
    cli(bs.data, "backup", archive)
    with open(os.path.join(bs.data, "lyceumd.db"), "rb") as f:
        head = f.read(100)
    r = cli(bs.data, "restore", archive, check=False)
    assert r.returncode != 0
    assert "stop it first" in r.stderr, r.stderr
    assert not [n for n in os.listdir(bs.data) if n.startswith("pre-restore")]
    with open(os.path.join(bs.data, "lyceumd.db"), "rb") as f:
        assert f.read(100) == head
    assert bs.alive()


def test_a_second_server_on_the_same_data_is_refused(bs):
    r = subprocess.run([conftest.BIN, "serve", "--listen", f"127.0.0.1:{conftest.free_port()}",
                        "--data", bs.data], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "stop it first" in r.stderr, r.stderr
    assert bs.alive()


def bad_archive(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_restore_refuses_what_is_not_a_backup(tmp_path):
    data = tempfile.mkdtemp(prefix="lyceumd-restore-")
    try:
        with open(os.path.join(data, "jwt.key"), "wb") as f:
            f.write(b"k" * 32)
        cases = [
            ([("../escape", b"x")], "which no lyceumd backup holds"),
            ([("MANIFEST.json", b'{"kind": "lyceumd-backup", "format": 1}'),
              ("lyceumd.db", b"not a database at all" * 100)], "not a sound SQLite database"),
            ([("lyceumd.db", b"")], "not a lyceumd backup"),
        ]
        for i, (members, words) in enumerate(cases):
            path = str(tmp_path / f"bad{i}.tar.gz")
            bad_archive(path, members)
            r = cli(data, "restore", path, check=False)
            assert r.returncode != 0 and words in r.stderr, (members, r.stderr)
        r = cli(data, "restore", str(tmp_path / "missing.tar.gz"), check=False)
        assert r.returncode != 0 and "missing.tar.gz" in r.stderr
        # Nothing was replaced or moved aside, and nothing escaped the data directory.
        assert sorted(os.listdir(data)) == ["jwt.key", "lyceumd.lock"]
        assert not os.path.exists(os.path.join(os.path.dirname(data), "escape"))
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_periodic_backups_keep_the_newest(tmp_path):
    backups = str(tmp_path / "backups")
    cfg = write_config(MACHINES, backup_dir=backups, backup_interval_hours=0.0003,
                       backup_keep=2)
    s = Server(["--config", cfg])
    try:
        u = s.new_user(credits=1)
        deadline = time.time() + 30
        made = set()
        while time.time() < deadline and len(made) < 4:
            made |= set(os.listdir(backups)) if os.path.isdir(backups) else set()
            time.sleep(0.2)
        assert len(made) >= 3, made  # one about every 1.1 s
        time.sleep(1.5)
        kept = sorted(n for n in os.listdir(backups) if n.endswith(".tar.gz"))
        assert len(kept) == 2, kept
        data2 = tempfile.mkdtemp(prefix="lyceumd-restore-")
        try:
            cli(data2, "restore", os.path.join(backups, kept[-1]))
            with sqlite3.connect(os.path.join(data2, "lyceumd.db")) as c:
                assert c.execute("SELECT count(*) FROM users WHERE email = ?",
                                 (u["email"],)).fetchone()[0] == 1
        finally:
            shutil.rmtree(data2, ignore_errors=True)
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)
        os.unlink(cfg)
