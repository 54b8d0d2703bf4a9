"""The replication engine against real SQLite, driven step by step: every TXID we write must restore to
exactly the rows committed when it was written, and continuing incrementally (instead of a snapshot) is
only allowed when it is provably safe. Each restore also checks the database checksum chain the files
carry, so a wrong page anywhere shows up as a failed restore."""

from __future__ import annotations

import os

import apsw
import pytest

from litestream.backends.file import FileReplicaClient
from litestream.db.database import Database, DBSettings
from litestream.ltx import Header
from litestream.replica import Replica
from litestream.restore import calc_restore_plan, restore_files
from litestream.store import DBEntry, Store
from tests.interop.workload import _digest_conn, content_digest


class Harness:
    def __init__(self, tmp_path, page_size: int = 4096, **settings) -> None:
        self.tmp = tmp_path
        self.path = str(tmp_path / "app.db")
        self.app = apsw.Connection(self.path)
        self.app.set_busy_timeout(5000)
        self.app.execute(f"PRAGMA page_size={page_size}").fetchall()
        self.app.execute("PRAGMA journal_mode=wal").fetchall()
        self.app.execute("PRAGMA wal_autocheckpoint=0").fetchall()
        self.app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)")
        self.settings = DBSettings(**settings)
        self.db = Database(self.path, self.settings)
        self.states: dict[int, str] = {}
        self.n = 0

    def write(self, n: int = 1, blob: int = 0, update: bool = False, delete: bool = False) -> None:
        for _ in range(n):
            self.n += 1
            with self.app:
                if delete:
                    self.app.execute("DELETE FROM t WHERE id % 3 = 0")
                elif update:
                    self.app.execute("UPDATE t SET v = v || '!' WHERE id % 5 = ?", (self.n % 5,))
                else:
                    self.app.execute("INSERT INTO t(v, b) VALUES (?, ?)",
                                     (f"row {self.n} " * 20, os.urandom(blob) if blob else None))

    def digest(self) -> str:
        reader = apsw.Connection(self.path)
        try:
            return _digest_conn(reader)
        finally:
            reader.close()

    def sync(self) -> list:
        results = self.db.sync()
        if results:
            self.states[self.db.txid] = self.digest()
        return results

    def restart(self) -> None:
        self.db.close(final_sync=False)
        self.db = Database(self.path, self.settings)

    def snapshots_since(self, txid: int) -> int:
        count = 0
        for t in range(txid + 1, self.db.txid + 1):
            with open(self.db.meta.l0_path(t), "rb") as f:
                h = Header.decode(f.read(100))
            if h.wal_offset == 32 and h.commit and _is_full(self.db.meta.l0_path(t), h):
                count += 1
        return count

    def check_all(self) -> None:
        client = FileReplicaClient(self.db.meta.path)
        assert self.states
        for txid, want in self.states.items():
            out = self.tmp / f"restore-{txid}.db"
            restore_files(client, calc_restore_plan(client, txid), str(out))
            assert content_digest(out) == want, f"TXID {txid:x}"
            out.unlink()


def _is_full(path: str, h: Header) -> bool:
    from litestream import _ltxcore as core

    fd = os.open(path, os.O_RDONLY)
    try:
        n = len(core.PageIndex(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)
    return n >= h.commit - 1


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path, min_checkpoint_page_n=30)
    yield harness
    harness.db.close(final_sync=False)
    harness.app.close()


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_incremental_through_our_checkpoints(tmp_path, page_size):
    h = Harness(tmp_path, page_size, min_checkpoint_page_n=20)
    h.sync()
    for i in range(40):
        h.write(3, blob=page_size * 2 if i % 7 == 0 else 0, update=i % 4 == 1, delete=i % 13 == 12)
        h.sync()
    assert h.db.stats.checkpoints.get("PASSIVE", 0) >= 2
    assert h.db.stats.snapshots == 1  # only the first sync
    h.check_all()
    h.db.close(final_sync=False)


def test_restart_continues_incrementally(h):
    h.write(5)
    h.sync()
    before = h.db.txid
    h.restart()
    h.write(5, blob=10000)
    h.sync()
    assert h.snapshots_since(before) == 0
    h.check_all()


def test_restart_after_app_checkpoint_and_wal_restart(h):
    """Stopped replicator; the app checkpoints completely and its next write restarts the WAL: the old
    generation provably ended where we stopped, so we go on incrementally."""
    h.write(10)
    h.sync()
    before = h.db.txid
    h.restart()
    assert h.app.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][0] == 0
    h.write(2)
    h.sync()
    assert h.snapshots_since(before) == 0
    h.check_all()


def test_unreplicated_frames_before_a_wal_restart_are_not_lost(h):
    """The reference's failure: frames committed after our last sync are checkpointed and the WAL restarts
    with a shorter generation; the last synced page still matches, so it continues incrementally and the
    frames are lost. We must notice and take a snapshot."""
    h.write(30, blob=3000)
    h.sync()
    before = h.db.txid
    h.restart()
    h.write(3, update=True)  # T1: never replicated
    h.app.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    h.write(1)  # restarts the WAL; the new generation is much shorter than our position
    h.sync()
    assert h.snapshots_since(before) == 1
    h.check_all()


@pytest.mark.parametrize("wrote_first", [False, True])
def test_truncate_checkpoint_while_stopped(h, wrote_first):
    h.write(10, blob=2000)
    h.sync()
    before = h.db.txid
    h.restart()
    if wrote_first:
        h.write(2, update=True)  # lands in the database file through the checkpoint: must snapshot
    h.app.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    assert os.path.getsize(h.path + "-wal") == 0
    h.write(1)
    h.sync()
    # Without new writes the database file still equals the replicated state (checksum proof).
    assert h.snapshots_since(before) == (1 if wrote_first else 0)
    h.check_all()


def test_app_checkpoint_while_running_is_harmless(h):
    h.write(10)
    h.sync()
    before = h.db.txid
    for mode in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        h.write(3, blob=5000)
        try:
            h.app.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except apsw.BusyError:
            pass  # our read transaction holds the WAL: that is the point
        h.write(1)
        h.sync()
    assert h.snapshots_since(before) == 0
    h.check_all()


def test_vacuum_shrink_and_growth(h):
    h.write(40, blob=3000)
    h.sync()
    h.write(1, delete=True)
    h.sync()
    h.app.execute("VACUUM")
    h.sync()
    h.write(20, blob=8000)
    h.sync()
    h.check_all()


def test_large_transactions_split_at_commit_boundaries(tmp_path):
    h = Harness(tmp_path, max_sync_wal_bytes=64 * 1024, min_checkpoint_page_n=100000)
    h.sync()
    for _ in range(30):
        h.write(1, blob=20000)
    before = h.db.txid
    h.sync()
    assert h.db.txid - before > 3  # several L0 files, cut at commit boundaries
    h.check_all()
    h.db.close(final_sync=False)


def test_all_connections_closed_between_runs(h):
    """When the last connection closes, SQLite checkpoints and resets the WAL; the database file then
    equals what we replicated, which the checksum proves, so no snapshot is needed."""
    h.write(10)
    h.sync()
    before = h.db.txid
    h.db.close(final_sync=False)
    h.app.close()
    h.app = apsw.Connection(h.path)
    h.app.set_busy_timeout(5000)
    h.write(2)
    h.db = Database(h.path, h.settings)
    h.sync()
    assert h.snapshots_since(before) == 0
    h.check_all()


def _store(path: str, replica_dir, settings=None):
    db = Database(path, settings or DBSettings())
    return Store([DBEntry(db, [Replica(db, FileReplicaClient(str(replica_dir)))])], background=False)


def test_database_behind_replica_after_restore(tmp_path):
    """Restore a database from its replica, then replicate it again: continue from the replica's position
    (the checksum proves the restored file is that state) instead of starting over."""
    h = Harness(tmp_path)
    h.write(20, blob=1000)
    replica = tmp_path / "replica"
    store = _store(h.path, replica)
    store.open()
    store.sync_all_once()
    txid = store.entries[0].db.txid
    want = h.digest()
    store.close()
    client = FileReplicaClient(str(replica))
    restored = tmp_path / "restored.db"
    restore_files(client, calc_restore_plan(client), str(restored))
    app2 = apsw.Connection(str(restored))
    app2.set_busy_timeout(5000)
    with app2:
        app2.execute("INSERT INTO t(v) VALUES ('after restore')")
    store = _store(str(restored), replica)
    store.open()
    store.sync_all_once()
    db = store.entries[0].db
    assert db.txid == txid + 1 and db.stats.snapshots == 0
    expected = _digest_conn(app2)
    store.close()
    out = tmp_path / "final.db"
    restore_files(client, calc_restore_plan(client), str(out))
    assert content_digest(out) == expected != want
    app2.close()
    h.db.close(final_sync=False)


def test_reset_then_replicate_continues_numbering(tmp_path):
    h = Harness(tmp_path)
    h.write(5)
    replica = tmp_path / "replica"
    store = _store(h.path, replica)
    store.open()
    store.sync_all_once()
    txid = store.entries[0].db.txid
    store.close()
    store.entries[0].db.meta.reset()
    h.write(3, update=True)
    store = _store(h.path, replica)
    store.open()
    store.sync_all_once()
    assert store.entries[0].db.txid > txid
    want = h.digest()
    store.close()
    client = FileReplicaClient(str(replica))
    out = tmp_path / "final.db"
    restore_files(client, calc_restore_plan(client), str(out))
    assert content_digest(out) == want
    h.db.close(final_sync=False)


def test_two_replicas_and_a_late_one(tmp_path):
    """Several replicas of one database each keep their own position; one added later catches up."""
    h = Harness(tmp_path)
    h.write(5)
    db = Database(h.path, DBSettings())
    r1 = Replica(db, FileReplicaClient(str(tmp_path / "r1")))
    store = Store([DBEntry(db, [r1])], background=False)
    store.open()
    store.sync_all_once()
    store.close()
    h.write(5, blob=3000)
    db = Database(h.path, DBSettings())
    replicas = [Replica(db, FileReplicaClient(str(tmp_path / n))) for n in ("r1", "r2")]
    store = Store([DBEntry(db, replicas)], background=False)
    store.open()
    store.sync_all_once()
    want = h.digest()
    store.close()
    for name in ("r1", "r2"):
        client = FileReplicaClient(str(tmp_path / name))
        out = tmp_path / f"{name}.db"
        restore_files(client, calc_restore_plan(client), str(out))
        assert content_digest(out) == want, name
    h.db.close(final_sync=False)


# ----------------------------------------------------------------------- the checkpoint-lock hold

_OTHER_PROCESS_CHECKPOINT = """
import sys, apsw
c = apsw.Connection(sys.argv[1])
print(c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()[0][0])
"""


def _other_process_checkpoint_busy(path: str) -> bool:
    """What the application's checkpoint sees: POSIX locks never conflict within one process, so only
    another process can tell whether we hold SQLite's checkpoint lock."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _OTHER_PROCESS_CHECKPOINT, path], capture_output=True, text=True,
                       timeout=60, check=True)
    return r.stdout.strip() == "1"


def test_checkpoint_lock_hold_blocks_other_processes_until_our_checkpoint_ends(h):
    from litestream.db import shm

    h.write(5)
    h.sync()
    assert not _other_process_checkpoint_busy(h.path)
    assert shm.hold_checkpoint_lock(h.db.shm_fd)
    assert _other_process_checkpoint_busy(h.path)  # the application's checkpoint returns busy at once
    h.write(3)
    h.db.checkpoint("PASSIVE")  # our own checkpoint takes the lock in-process and its unlock ends the hold
    assert not _other_process_checkpoint_busy(h.path)
    assert shm.hold_checkpoint_lock(h.db.shm_fd)
    shm.release_checkpoint_lock(h.db.shm_fd)
    assert not _other_process_checkpoint_busy(h.path)


def test_sync_never_leaves_the_checkpoint_lock_held(h):
    """Syncs that checkpoint (PASSIVE and restart), syncs that do not, and a sync that fails: afterwards
    the application can always checkpoint again."""
    h.sync()
    for i in range(12):
        h.write(20 if i % 3 == 0 else 1, blob=3000)
        h.sync()
        assert not _other_process_checkpoint_busy(h.path), i
    assert h.db.stats.checkpoints.get("PASSIVE", 0) + h.db.stats.checkpoints.get("RESTART", 0) >= 2
    h.write(20, blob=3000)
    real = h.db._sync_all
    h.db._sync_all = lambda: (_ for _ in ()).throw(OSError("disk full"))
    with pytest.raises(OSError):
        h.db.sync()
    h.db._sync_all = real
    assert not _other_process_checkpoint_busy(h.path)
    h.sync()
    h.check_all()


def test_checkpoints_take_the_copying_over_only_from_a_writer_that_outpaces_the_interval(h):
    import time

    restart = h.db.policy.restart_page_n
    h.db._rate_mark = None
    assert not h.db.writer_outpaces_interval(10)  # nothing to compare with yet
    h.db._rate_mark = (time.monotonic() - 10.0, 10)
    assert not h.db.writer_outpaces_interval(10 + restart)  # the threshold in 10 intervals: slow
    h.db._rate_mark = (time.monotonic() - 0.5, 10)
    assert h.db.writer_outpaces_interval(10 + restart)  # in half an interval: fast
    h.db._rate_mark = (time.monotonic() - 0.5, 5 * restart)
    assert h.db.writer_outpaces_interval(restart)  # the WAL restarted meanwhile and refilled that fast
    h.db.settings.monitor_interval_s = 0
    h.db._rate_mark = (time.monotonic() - 0.5, 10)
    assert not h.db.writer_outpaces_interval(10 + 100 * restart)  # no background syncing, no take-over


# ------------------------------------------------------------------- what SQLite counts as committed

def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum over data (a multiple of 8 bytes), continuing from (s0, s1)."""
    import struct

    words = struct.unpack((">" if big_endian else "<") + f"{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _append_ghost_commit(wal_path: str, page_size: int) -> None:
    """Append a frame with a valid checksum chain and a commit marker after the last frame: what a writer
    killed after writing its commit frame, but before updating the WAL index, leaves behind. It copies
    the last frame's page with other bytes in it."""
    with open(wal_path, "r+b") as f:
        hdr = f.read(32)
        big_endian = int.from_bytes(hdr[:4], "big") & 1 == 1
        fsz = 24 + page_size
        size = f.seek(0, 2)
        last = size - fsz
        f.seek(last)
        frame = f.read(fsz)
        s0, s1 = int.from_bytes(frame[16:20], "big"), int.from_bytes(frame[20:24], "big")
        page = bytearray(frame[24:])
        page[-100:] = os.urandom(100)
        head = frame[:4] + frame[4:8] if frame[4:8] != b"\0\0\0\0" else frame[:4] + (1).to_bytes(4, "big")
        s0, s1 = _wal_checksum(head, s0, s1, big_endian)
        s0, s1 = _wal_checksum(bytes(page), s0, s1, big_endian)
        f.seek(size)
        f.write(head + hdr[16:24] + s0.to_bytes(4, "big") + s1.to_bytes(4, "big") + bytes(page))


def test_a_commit_the_wal_index_never_recorded_is_not_replicated(h):
    """The WAL index's mxFrame, not the file, says what is committed: a commit frame past it is a
    transaction SQLite discards (the next writer overwrites it), and no TXID may hold it."""
    h.write(5, blob=3000)
    h.sync()
    txid = h.db.txid
    _append_ghost_commit(h.path + "-wal", 4096)
    assert h.sync() == [] and h.db.txid == txid  # nothing committed since
    h.write(2)  # written where the ghost was
    h.sync()
    assert h.snapshots_since(txid) == 0  # the chain we replicated is intact
    h.check_all()
