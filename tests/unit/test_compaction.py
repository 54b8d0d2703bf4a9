"""Compaction, snapshots and retention over a file replica: the library (replication/compactor.py,
retention.py) on files written by a real replicator, and the scheduled jobs in a running Store."""

from __future__ import annotations

import os
import time

import apsw
import pytest

from litestream import _ltxcore as core
from litestream.backends.file import FileReplicaClient
from litestream.db.checksums import decode_reserved
from litestream.db.database import Database, DBSettings
from litestream.ltx import SNAPSHOT_LEVEL, FileInfo
from litestream.replica import Replica, ReplicaSettings
from litestream.replication.compactor import Compactor, NoCompaction
from litestream.replication.jobs import Level, Maintenance, Policy, prev_boundary_ns
from litestream.replication.retention import (
    Deleter,
    L0Counts,
    enforce_level_retention,
    enforce_retention_by_txid,
    enforce_snapshot_retention,
    l0_expired,
    l0_plan,
)
from litestream.restore import TxNotAvailable, calc_restore_plan, restore_files
from litestream.store import DBEntry, Store
from tests.interop.workload import _digest_conn, content_digest, integrity_ok
from tests.refbin import run_ref
from tests.unit.test_seed_retention import write_for

S = 10**9


class Writer:
    """An application and an in-process replicator (no background jobs): each commit() is one TXID, synced
    and uploaded, and the content it left is recorded."""

    def __init__(self, tmp_path, **policy) -> None:
        self.tmp = tmp_path
        self.path = str(tmp_path / "app.db")
        self.app = apsw.Connection(self.path)
        self.app.execute("PRAGMA journal_mode=wal")
        self.app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        self.db = Database(self.path, DBSettings(monitor_interval_s=0, checkpoint_interval_s=0))
        self.client = FileReplicaClient(str(tmp_path / "replica"))
        self.replica = Replica(self.db, self.client, ReplicaSettings())
        self.entry = DBEntry(self.db, [self.replica], ready=True)
        self.states: dict[int, str] = {}
        self.n = 0
        self.now = time.time_ns()
        self.maint = Maintenance(None, [self.entry], Policy(**policy), closing=_Never(), now_ns=lambda: self.now)

    def commit(self, rows: int = 3) -> int:
        with self.app:
            for _ in range(rows):
                self.n += 1
                self.app.execute("INSERT INTO t(v) VALUES (randomblob(700))")
                self.app.execute("UPDATE t SET v = randomblob(300) WHERE id = ?", (self.n // 2 + 1,))
        self.db.sync()
        self.replica.sync()
        self.states[self.db.txid] = _digest_conn(self.app)
        return self.db.txid

    def restore(self, txid: int = 0) -> str:
        out = self.tmp / f"restore-{txid}-{time.monotonic_ns()}.db"
        restore_files(self.client, calc_restore_plan(self.client, txid), str(out))
        assert integrity_ok(out)
        return content_digest(out)

    def files(self, level: int) -> list[FileInfo]:
        return list(self.client.ltx_files(level))

    def close(self) -> None:
        self.db.close(final_sync=False)
        self.app.close()


class _Never:
    def is_set(self) -> bool:
        return False


@pytest.fixture
def writer(tmp_path):
    made = []

    def make(**policy):
        made.append(Writer(tmp_path, **policy))
        return made[-1]

    yield make
    for w in made:
        w.close()


def test_compacting_l0_into_l1_keeps_every_state_and_the_checksum_chain(writer):
    w = writer()
    for _ in range(6):
        w.commit()
    info = Compactor(w.client).compact(1, 0)
    assert (info.min_txid, info.max_txid) == (1, w.db.txid)
    with open(w.client.ltx_path(1, info.min_txid, info.max_txid), "rb") as f:
        raw = f.read(100)
        core.Decoder(f.fileno()).verify()
    sums = decode_reserved(raw)
    assert sums is not None and sums.pre_apply == 0  # it starts with the snapshot
    with pytest.raises(NoCompaction):
        Compactor(w.client).compact(1, 0)
    for _ in range(3):
        w.commit()
    second = Compactor(w.client).compact(1, 0)
    assert second.min_txid == info.max_txid + 1
    # Restores through L1 only (L0 gone) verify the chain between the two L1 files and the final checksum.
    w.client.delete_ltx_files(w.files(0))
    assert w.restore() == w.states[w.db.txid]
    assert w.restore(info.max_txid) == w.states[info.max_txid]
    with pytest.raises(TxNotAvailable):
        calc_restore_plan(w.client, info.max_txid - 1)  # inside an L1 file: no longer reachable exactly


def test_a_single_source_file_is_stored_once(writer):
    """No merge of one file (upstream #1407): the next level gets the same bytes, hard-linked."""
    w = writer()
    w.commit()
    Compactor(w.client).compact(1, 0)
    w.commit()
    info = Compactor(w.client).compact(1, 0)
    src = os.stat(w.client.ltx_path(0, info.min_txid, info.max_txid))
    dst = os.stat(w.client.ltx_path(1, info.min_txid, info.max_txid))
    assert (src.st_ino, src.st_mtime_ns) == (dst.st_ino, dst.st_mtime_ns)


def test_the_reference_restores_compacted_levels_and_plans_alike(writer, tmp_path):
    w = writer()
    for i in range(12):
        w.commit()
        if i % 3 == 2:
            Compactor(w.client).compact(1, 0)
        if i % 6 == 5:
            Compactor(w.client).compact(2, 1)
    for txid in sorted({w.db.txid, 6, 9, 12}):
        out, ref = tmp_path / f"o{txid}.db", tmp_path / f"r{txid}.db"
        restore_files(w.client, calc_restore_plan(w.client, txid), str(out))
        r = run_ref("restore", "-txid", f"{txid:016x}", "-o", str(ref), f"file://{w.client.path}")
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == ref.read_bytes()
        assert content_digest(out) == w.states[txid]
    ours = [(i.level, i.min_txid, i.max_txid) for i in calc_restore_plan(w.client)]
    r = run_ref("restore", "-dry-run", "-o", str(tmp_path / "x.db"), f"file://{w.client.path}")
    assert r.returncode == 0, r.stderr
    for level, lo, hi in ours:
        assert f"{level}      {lo:016x}-{hi:016x}.ltx" in r.stdout


def _snap(txid: int, created_s: float) -> FileInfo:
    return FileInfo(SNAPSHOT_LEVEL, 1, txid, 100, int(created_s * S))


class ListClient:
    """A listing-only replica for retention rules: files per level, deletes recorded."""

    type = "list"

    def __init__(self, files: list[FileInfo]) -> None:
        self.files = list(files)

    def ltx_files(self, level, seek=0, use_metadata=False):
        return iter(sorted((f for f in self.files if f.level == level and f.min_txid >= seek),
                           key=lambda f: (f.min_txid, f.max_txid)))

    def delete_ltx_files(self, infos):
        for i in infos:
            self.files.remove(i)


def test_snapshot_retention_keeps_the_base_of_the_windows_first_restores():
    now = 1000.0
    client = ListClient([_snap(10, 100), _snap(20, 500), _snap(30, 900), _snap(40, 990),
                         FileInfo(1, 1, 9, 1, 0), FileInfo(1, 10, 19, 1, 0), FileInfo(1, 20, 29, 1, 0),
                         FileInfo(1, 30, 40, 1, 0)])
    floor = enforce_snapshot_retention(client, Deleter(client), 200 * S, int(now * S))
    # The window starts at 800: the snapshot of 500 is the base for a restore of a TXID committed at 850.
    assert floor == 20
    assert [f.max_txid for f in client.ltx_files(SNAPSHOT_LEVEL)] == [20, 30, 40]
    enforce_retention_by_txid(client, Deleter(client), 1, floor)
    assert [(f.min_txid, f.max_txid) for f in client.ltx_files(1)] == [(20, 29), (30, 40)]
    # Nothing before the window: nothing goes.
    assert enforce_snapshot_retention(client, Deleter(client), 10_000 * S, int(now * S)) == 0


def test_retention_disabled_deletes_nothing():
    client = ListClient([_snap(10, 100), _snap(20, 500), _snap(30, 900)])
    d = Deleter(client, enabled=False)
    enforce_snapshot_retention(client, d, 100 * S, 1000 * S)
    assert len(client.files) == 3 and d.skipped == 1


def test_level_retention_only_removes_covered_files():
    client = ListClient([FileInfo(1, 1, 5, 1, 10 * S), FileInfo(1, 6, 9, 1, 20 * S), FileInfo(1, 10, 12, 1, 30 * S),
                         FileInfo(1, 13, 14, 1, 40 * S), FileInfo(2, 1, 9, 1, 25 * S)])
    enforce_level_retention(client, Deleter(client), 1, 5 * S, [2], 100 * S)
    # 1-5 and 6-9 are covered by L2's 1-9; 10-12 is old but nothing covers it; 13-14 is the newest.
    assert [(f.min_txid, f.max_txid) for f in client.ltx_files(1)] == [(10, 12), (13, 14)]


def test_l0_retention_needs_compaction_and_age():
    files = [FileInfo(0, t, t, 1, t * S) for t in range(1, 8)] + [FileInfo(1, 1, 5, 1, 6 * S)]
    client = ListClient(files)
    assert [f.max_txid for f in l0_expired(client, 3 * S, 10 * S)] == [1, 2, 3, 4, 5]
    assert [f.max_txid for f in l0_expired(client, 6 * S, 10 * S)] == [1, 2, 3, 4]  # 5 is too recent
    assert l0_expired(ListClient(files[:-1]), 3 * S, 10 * S) == []  # nothing compacted into L1 yet
    # The scan's counts, as the reference's litestream_l0_retention_files_total.
    assert l0_plan(client, 3 * S, 10 * S).counts == L0Counts(eligible=5, not_compacted=2, too_recent=0)
    assert l0_plan(client, 6 * S, 10 * S).counts == L0Counts(eligible=4, not_compacted=0, too_recent=3)
    assert l0_plan(ListClient(files[:-1]), 3 * S, 10 * S).counts == L0Counts()  # no L1: zeros, as the reference
    assert l0_plan(client, 0, 10 * S).counts is None  # disabled: no scan
    whole = ListClient([FileInfo(0, t, t, 1, t * S) for t in range(1, 4)] + [FileInfo(1, 1, 3, 1, 3 * S)])
    assert l0_plan(whole, S, 10 * S).counts == L0Counts(eligible=2)  # the newest L0 stays and is not counted


def test_wall_clock_boundaries():
    assert prev_boundary_ns(95 * S, 30 * S) == 90 * S
    assert prev_boundary_ns(90 * S, 30 * S) == 90 * S


def test_maintenance_tasks_and_local_files(writer):
    w = writer(levels=[Level(1, 10 * S), Level(2, 60 * S)], snapshot_interval_ns=3600 * S,
               snapshot_retention_ns=120 * S, l0_retention_ns=30 * S)
    for _ in range(4):
        w.commit()
    w.now += 11 * S
    w.maint.run_task(w.entry, w.replica, 1)  # L1, then L0 retention (nothing old enough yet)
    assert [(f.min_txid, f.max_txid) for f in w.files(1)] == [(1, 4)]
    w.maint.run_task(w.entry, w.replica, 1)  # too early: the newest L1 file is after the boundary
    assert len(w.files(1)) == 1
    w.maint.run_task(w.entry, w.replica, SNAPSHOT_LEVEL)
    assert [f.max_txid for f in w.files(SNAPSHOT_LEVEL)] == [4]
    w.maint.run_task(w.entry, w.replica, SNAPSHOT_LEVEL)  # nothing new since: no second snapshot
    assert len(w.files(SNAPSHOT_LEVEL)) == 1
    for _ in range(3):
        w.commit()
    local_before = w.db.meta.l0_txids()
    w.now = time.time_ns() + 60 * S  # everything is now past l0-retention
    w.maint.run_task(w.entry, w.replica, 1)
    remote_l0 = [f.max_txid for f in w.files(0)]
    assert remote_l0 == [w.db.txid]  # compacted into L1 and old: only the newest stays
    assert w.db.meta.l0_txids() == [local_before[-1]]  # every replica has them: the meta dir keeps the newest
    assert w.restore() == w.states[w.db.txid]
    w.commit()  # replication goes on from the newest local file
    assert w.restore() == w.states[w.db.txid]


def test_local_files_stay_until_every_replica_has_them(writer, tmp_path):
    w = writer(l0_retention_ns=0)
    w.commit()
    behind = Replica(w.db, FileReplicaClient(str(tmp_path / "second")))
    behind.pos = 1
    w.entry.replicas.append(behind)
    for _ in range(3):
        w.commit()
    w.now = time.time_ns() + S
    w.maint.prune_local(w.entry)
    assert w.db.meta.l0_txids() == [2, 3, 4]  # the second replica still needs 2..4
    behind.sync()
    w.maint.prune_local(w.entry)
    assert w.db.meta.l0_txids() == [4]


def test_stray_temp_files_in_a_file_replica_are_removed(tmp_path):
    client = FileReplicaClient(str(tmp_path / "replica"))
    os.makedirs(client.level_dir(9))
    stray = os.path.join(client.level_dir(9), "0000000000000001-0000000000000005.ltx.tmp")
    with open(stray, "wb") as f:
        f.write(b"\0" * 1000)
    assert client.clean_temp() == 1 and not os.path.exists(stray)


def test_a_running_store_compacts_snapshots_and_expires(tmp_path):
    """Short intervals in a real Store: L1 and L2 compactions, snapshots and retention passes happen on
    their own; every TXID restores where files remain, the reference agrees on the latest state."""
    app = apsw.Connection(str(tmp_path / "app.db"))
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    db = Database(str(tmp_path / "app.db"), DBSettings(monitor_interval_s=0.02, checkpoint_interval_s=0))
    client = FileReplicaClient(str(tmp_path / "replica"))
    replica = Replica(db, client, ReplicaSettings(sync_interval_s=0.02))
    policy = Policy(levels=[Level(1, S), Level(2, 2 * S)], snapshot_interval_ns=3 * S, snapshot_retention_ns=4 * S,
                    l0_retention_ns=S, l0_retention_check_interval_ns=S // 2)
    store = Store([DBEntry(db, [replica])], shutdown_sync_timeout_s=5, policy=policy)
    store.open()
    try:
        write_for(app, 12, size=600)
    finally:
        store.close()
    want = _digest_conn(app)
    app.close()
    levels = {lv: list(client.ltx_files(lv)) for lv in (0, 1, 2, SNAPSHOT_LEVEL)}
    assert len(levels[1]) >= 2 and levels[2] and len(levels[SNAPSHOT_LEVEL]) >= 2
    assert levels[1][0].min_txid > 1, "snapshot retention removed nothing from L1"
    assert levels[0][0].min_txid > 1, "L0 retention removed nothing"
    assert len(db.meta.l0_txids()) < db.txid / 2, "the meta dir kept every L0 file"
    out, ref = tmp_path / "out.db", tmp_path / "ref.db"
    restore_files(client, calc_restore_plan(client), str(out))
    assert content_digest(out) == want
    r = run_ref("restore", "-o", str(ref), f"file://{client.path}")
    assert r.returncode == 0, r.stderr
    assert ref.read_bytes() == out.read_bytes()


def test_a_snapshot_being_encoded_does_not_hold_up_syncs(writer, tmp_path, monkeypatch):
    """The database lock is held only to plan a snapshot: syncs go on while it is encoded, and the
    checkpoint lock keeps anyone from copying into the database file until it is done."""
    import threading

    from litestream.replication.snapshot import upload_snapshot

    w = writer()
    for _ in range(3):
        w.commit()
    planned = w.db.txid
    real = w.db.syncer.encode_snapshot
    reading, go = threading.Event(), threading.Event()

    def slow(*args, **kwargs):
        reading.set()
        assert go.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(w.db.syncer, "encode_snapshot", slow)
    done: list = []
    t = threading.Thread(target=lambda: done.append(upload_snapshot(w.db, w.client)))
    t.start()
    assert reading.wait(10)
    w.commit()  # syncs and uploads while the snapshot is being read
    assert w.db.txid == planned + 1
    assert _app_checkpoint_busy(w.path)  # another process cannot copy meanwhile
    go.set()
    t.join(10)
    assert done and done[0].max_txid == planned
    assert not _app_checkpoint_busy(w.path)  # released
    w.client.delete_ltx_files([f for f in w.files(0) if f.max_txid <= planned])
    assert w.restore(planned) == w.states[planned]  # from the snapshot alone
    assert w.restore() == w.states[w.db.txid]


def _app_checkpoint_busy(path: str) -> bool:
    """PRAGMA wal_checkpoint(PASSIVE) in a process of its own (locks do not conflict within one)."""
    import subprocess
    import sys

    code = ("import apsw, sys; c = apsw.Connection(sys.argv[1]); "
            "print(c.execute('PRAGMA wal_checkpoint(PASSIVE)').fetchall()[0][0])")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True).stdout
    return out.strip() == "1"


def test_first_replication_is_stored_once_across_levels(writer):
    """Upstream #1407: the reference stores the first snapshot again at every level and as L9 (2.3x a
    1 GiB database). Here L1, L2 and the L9 snapshot of an unchanged database are the same file."""
    w = writer(levels=[Level(1, 10 * S), Level(2, 60 * S)])
    with w.app:
        w.app.executemany("INSERT INTO t(v) VALUES (randomblob(4000))", [()] * 500)
    w.db.sync()
    w.replica.sync()
    w.now += 3600 * S
    for task in (1, 2, SNAPSHOT_LEVEL):
        w.maint.run_task(w.entry, w.replica, task)
    assert [len(w.files(lv)) for lv in (1, 2, SNAPSHOT_LEVEL)] == [1, 1, 1]
    inodes, total, logical = set(), 0, 0
    for root, _, names in os.walk(w.client.path):
        for name in names:
            st = os.stat(os.path.join(root, name))
            logical += st.st_size
            if st.st_ino not in inodes:
                inodes.add(st.st_ino)
                total += st.st_blocks * 512
    db_size = w.app.execute("PRAGMA page_count").fetchall()[0][0] * w.app.execute("PRAGMA page_size").fetchall()[0][0]
    assert logical > 3 * db_size  # four names...
    assert total <= 1.1 * db_size, (total, db_size)  # ...one copy on disk


def _cli_restore(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "litestream", "restore", *args], capture_output=True, text=True,
                          timeout=120)


def _compacted(writer) -> Writer:
    w = writer()
    for _ in range(4):
        w.commit()
    Compactor(w.client).compact(1, 0)
    for _ in range(2):
        w.commit()
    w.maint.snapshot(w.entry, w.replica, force=True)
    w.client.delete_ltx_files(w.files(0)[:-1])
    return w


@pytest.mark.parametrize("damage", ["chain start gone", "txid gap", "corrupt snapshot", "replica gone"])
def test_damaged_compacted_replicas_fail_in_one_line_with_no_output(writer, tmp_path, damage):
    w = _compacted(writer)
    args = ["-o", str(tmp_path / "out.db"), f"file://{w.client.path}"]
    if damage == "chain start gone":
        w.client.delete_ltx_files(w.files(SNAPSHOT_LEVEL))
        os.remove(w.client.ltx_path(1, *(lambda f: (f.min_txid, f.max_txid))(w.files(1)[0])))
        want = "Error: no matching backup files available"  # nothing starts the chain any more
    elif damage == "txid gap":
        w.client.delete_ltx_files(w.files(SNAPSHOT_LEVEL))
        w.commit()
        w.commit()
        w.client.delete_ltx_files([w.files(0)[-2]])
        want = "Error: cannot calc restore plan: non-contiguous ltx files: have up to"
    elif damage == "corrupt snapshot":
        snap = w.files(SNAPSHOT_LEVEL)[0]
        path = w.client.ltx_path(SNAPSHOT_LEVEL, snap.min_txid, snap.max_txid)
        data = bytearray(open(path, "rb").read())  # noqa: SIM115
        data[len(data) // 2] ^= 0xFF
        os.chmod(path, 0o644)
        with open(path, "wb") as f:
            f.write(data)
        want = "Error: decode "
    else:
        args = ["-f", "-o", str(tmp_path / "out.db"), f"file://{tmp_path / 'nowhere'}"]
        want = "Error: no matching backup files available"
    r = _cli_restore(*args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith(want), r.stderr
    assert not [p for p in os.listdir(tmp_path) if p.startswith(("out.db", ".out.db"))]


def test_first_snapshot_takes_the_initial_image_and_levels_leave_it_out(writer):
    """The application keeps writing after the initial sync: the first snapshot pass stores the initial
    image as L9 [1, 1] (one inode with L0's), and L1 and L2 start after it, so the whole database is
    stored once however many levels there are; every restore still works, ours and by the plan the
    reference uses (snapshot, then files from its MaxTXID + 1)."""
    w = writer(levels=[Level(1, 10 * S), Level(2, 60 * S)], snapshot_interval_ns=24 * 3600 * S,
               l0_retention_ns=1 * S)
    with w.app:
        w.app.executemany("INSERT INTO t(v) VALUES (randomblob(4000))", [()] * 500)
    w.db.sync()
    w.replica.sync()
    w.states[w.db.txid] = _digest_conn(w.app)
    base = w.db.txid
    for _ in range(3):
        w.commit()
    w.maint.run_task(w.entry, w.replica, SNAPSHOT_LEVEL)
    assert [(f.min_txid, f.max_txid) for f in w.files(SNAPSHOT_LEVEL)] == [(1, base)]
    w.now += 3600 * S
    w.maint.run_task(w.entry, w.replica, 1)
    assert [(f.min_txid, f.max_txid) for f in w.files(1)] == [(base + 1, w.db.txid)]
    for _ in range(2):
        w.commit()
    w.now += 3600 * S
    w.maint.run_task(w.entry, w.replica, 1)
    w.maint.run_task(w.entry, w.replica, 2)
    assert [(f.min_txid, f.max_txid) for f in w.files(2)] == [(base + 1, w.db.txid)]
    # L0 retention removed the compacted L0 files, the initial image's L0 name included.
    assert [f.max_txid for f in w.files(0)] == [w.db.txid]
    l9 = w.files(SNAPSHOT_LEVEL)[0]
    size = os.stat(w.client.ltx_path(SNAPSHOT_LEVEL, 1, base)).st_size
    assert sum(f.size for lv in (1, 2) for f in w.files(lv)) < size / 10  # the levels hold deltas only
    assert l9.max_txid == base
    assert w.restore() == w.states[w.db.txid]
    assert w.restore(base) == w.states[base]
    for f in w.files(1):
        assert w.restore(f.max_txid) == w.states[f.max_txid]
    # A forced snapshot is a real one at the position, never the old image.
    w.maint.snapshot(w.entry, w.replica, force=True)
    assert max(f.max_txid for f in w.files(SNAPSHOT_LEVEL)) == w.db.txid


def test_tasks_wait_for_the_first_sync_and_then_run_snapshot_first(writer):
    """Before the first sync reaches the replica, maintenance tasks wait (the reference's DBNotReady);
    once it has, every waiting task runs, the snapshot first, so it takes the initial image and L1 leaves
    it out."""
    w = writer(levels=[Level(1, 10 * S)], snapshot_interval_ns=24 * 3600 * S)
    w.replica.pos = None
    ran = []
    w.maint.snapshot = lambda e, r, force=False: ran.append("snapshot")
    w.maint.compact = lambda e, r, level: ran.append(f"L{level}")
    w.maint.run_task(w.entry, w.replica, 1)
    w.maint.run_task(w.entry, w.replica, SNAPSHOT_LEVEL)
    assert ran == [] and w.maint._waiting[id(w.entry)] == {1, SNAPSHOT_LEVEL}
    w.commit()  # the first sync reaches the replica
    w.maint.run_task(w.entry, w.replica, 1)  # ready now: puts itself back with the waiting ones
    assert ran == [] and w.maint._due[id(w.entry)] == {1, SNAPSHOT_LEVEL}
    w.maint._run(w.entry)
    assert ran == ["snapshot", "L1"]


def test_an_upload_during_a_pass_that_found_nothing_is_compacted_at_the_next_tick(writer, monkeypatch):
    """A pass that finds nothing remembers the state it began in: an L0 file uploaded while it ran (after
    its listing) is compacted at the next tick, not left in L0 until the database changes again."""
    w = writer(levels=[Level(1, 10 * S)])
    for _ in range(2):
        w.commit()
    w.now += 11 * S
    w.maint.run_task(w.entry, w.replica, 1)
    assert [(f.min_txid, f.max_txid) for f in w.files(1)] == [(1, 2)]
    real = Compactor.compact

    def upload_meanwhile(self, level, source):
        w.commit()  # uploaded after this pass listed L0
        raise NoCompaction

    monkeypatch.setattr(Compactor, "compact", upload_meanwhile)
    w.now += 11 * S
    w.maint.run_task(w.entry, w.replica, 1)
    monkeypatch.setattr(Compactor, "compact", real)
    w.now += 11 * S
    w.maint.run_task(w.entry, w.replica, 1)
    assert [(f.min_txid, f.max_txid) for f in w.files(1)] == [(1, 2), (3, 3)]


def test_level_retention_lets_go_while_the_database_is_idle(writer):
    """levels[].retention runs on a pass that finds nothing to compact too: covered L1 files of an idle
    database go once they age, and the pass after that makes no requests."""
    w = writer(levels=[Level(1, 10 * S, retention_ns=5 * S), Level(2, 60 * S)])
    for _ in range(3):
        w.commit()
        w.now += 11 * S
        w.maint.run_task(w.entry, w.replica, 1)
    assert len(w.files(1)) == 3
    w.now += 60 * S
    w.maint.run_task(w.entry, w.replica, 2)
    assert [(f.min_txid, f.max_txid) for f in w.files(2)] == [(1, w.db.txid)]
    w.now += 11 * S  # no write since: L1 has nothing to compact, its files are old and covered
    w.maint.run_task(w.entry, w.replica, 1)
    assert [f.max_txid for f in w.files(1)] == [w.db.txid]  # the newest stays
    assert w.restore() == w.states[w.db.txid]
    calls = []
    real = w.client.ltx_files
    w.client.ltx_files = lambda *a, **k: calls.append(a) or real(*a, **k)
    w.now += 11 * S
    w.maint.run_task(w.entry, w.replica, 1)
    assert calls == [], "an idle level with nothing left to let go is not listed again"
