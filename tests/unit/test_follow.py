"""`restore -f`: a restored database kept up to date in place, through compacted levels, across a kill -9
of the follower and new files written meanwhile (where the reference refuses to resume), with the
reference's -txid file and log lines, and clear errors where it cannot go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import apsw
import pytest

from litestream.fsutil import write_atomic
from litestream.replication.compactor import Compactor
from tests.cliutil import wait_for
from tests.interop.workload import content_digest, integrity_ok
from tests.unit.test_compaction import Writer

INTERVAL = "50ms"


def follow(out, replica, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "litestream", "restore", "-f", "-follow-interval", INTERVAL,
                             *extra, "-o", str(out), f"file://{replica}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def saved_txid(out) -> int:
    try:
        with open(f"{out}-txid") as f:
            return int(f.read().strip(), 16)
    except (FileNotFoundError, ValueError):
        return 0


@pytest.fixture
def w(tmp_path):
    writer = Writer(tmp_path)
    yield writer
    writer.close()


def _caught_up(out, w) -> bool:
    return saved_txid(out) == w.db.txid and content_digest(out) == w.states[w.db.txid]


def _following(w, tmp_path):
    """Three commits, then a follower that has caught up with them."""
    for _ in range(3):
        w.commit()
    out = tmp_path / "follower.db"
    proc = follow(out, w.client.path)
    assert wait_for(lambda: saved_txid(out) == w.db.txid, timeout=20)
    return out, proc


def test_follow_applies_new_files_in_place_and_stops_on_sigint(w, tmp_path):
    out, proc = _following(w, tmp_path)
    try:
        with open(f"{out}-txid") as f:
            assert f.read() == f"{w.db.txid:016x}\n"  # the reference's format
        reader = apsw.Connection(str(out), flags=apsw.SQLITE_OPEN_READONLY)
        for _ in range(5):
            w.commit()
            assert wait_for(lambda: _caught_up(out, w), timeout=20)
            # A reader of the followed database sees each new state (the change counter moved).
            assert reader.execute("SELECT count(*) FROM t").fetchall()[0][0] == w.n
        reader.close()
        with open(out, "rb") as f:
            assert f.read(20)[18:20] == b"\x01\x01"  # rollback-journal mode: readers need no WAL
        assert integrity_ok(out)
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, output
    for line in ("entering follow mode", "follow: applied updates", "follow mode stopped"):
        assert line in output
    assert not os.path.exists(f"{out}-wal")


def test_resume_after_kill_with_new_and_compacted_files(w, tmp_path):
    """The reference refuses to resume once new files exist past its newest snapshot; here the follower
    continues from its saved TXID, also when the files after it are only in L1 any more."""
    out, proc = _following(w, tmp_path)
    proc.kill()
    proc.wait()
    for _ in range(4):
        w.commit()
    Compactor(w.client).compact(1, 0)
    w.client.delete_ltx_files([f for f in w.files(0) if f.max_txid < w.db.txid])  # only L1 covers the gap
    w.commit()
    proc = follow(out, w.client.path)
    try:
        assert wait_for(lambda: _caught_up(out, w), timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0 and "resuming follow mode from crash recovery" in output


def test_resume_errors(w, tmp_path):
    for _ in range(3):
        w.commit()
    out = tmp_path / "follower.db"
    out.write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "litestream", "restore", "-f", "-o", str(out), f"file://{w.client.path}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"Error: cannot resume follow mode: database exists but no -txid file found; delete the database to "
        f"re-restore: {out}"]
    (tmp_path / "follower.db-txid").write_text("0000000000000001\n")
    for _ in range(3):
        w.commit()
    Compactor(w.client).compact(1, 0)
    w.client.delete_ltx_files(w.files(0)[:-1])
    w.client.delete_ltx_files([f for f in w.files(1)])
    r = subprocess.run([sys.executable, "-m", "litestream", "restore", "-f", "-o", str(out), f"file://{w.client.path}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no longer in the replica" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_damaged_file_is_never_half_applied(w, tmp_path):
    out, proc = _following(w, tmp_path)
    try:
        before = out.read_bytes()
        with w.app:
            w.app.execute("INSERT INTO t(v) VALUES (randomblob(700))")
        w.db.sync()  # a new L0, put into the replica damaged (atomically, as a backend would)
        with open(w.db.meta.l0_path(w.db.txid), "rb") as f:
            data = bytearray(f.read())
        data[-20] ^= 0xFF  # in the page index: the CRC fails only at the end of the file
        write_atomic(w.client.ltx_path(0, w.db.txid, w.db.txid), bytes(data))
        time.sleep(1.0)
        assert saved_txid(out) == w.db.txid - 1 and out.read_bytes() == before
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=20)[0]
    assert output.count("follow: error applying updates") == 1  # said once, not every interval
