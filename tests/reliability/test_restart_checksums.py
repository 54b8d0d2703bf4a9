"""Database checksums across crashes: every place one is derived or carried, with the application in a
process of its own that checkpoints while the replicator is down and is killed with SIGKILL.

The regression (issue 7): the replicator is stopped, the application commits and checkpoints past the
replicated position, then it is killed as well. The next process to open the database rebuilds SQLite's
WAL index with nBackfill = 0, so the database file looked untouched; the replicator continued in the same
WAL generation and took the old versions of the pages the application had changed from the database file,
which held the new ones: the pages of its next L0 were right, its database checksum wrong, and our own
restore refused every TXID from there to the next snapshot.

Every test restores every TXID it wrote with our restore, which verifies the checksum chain and the final
checksum, and compares the rows with what was committed when the TXID was written."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import apsw
import pytest

from litestream import _ltxcore as core
from litestream.backends.file import FileReplicaClient
from litestream.db import shm
from litestream.db.database import Database, DBSettings
from litestream.ltx import Header
from litestream.replica import Replica
from litestream.restore import calc_restore_plan, restore_files
from litestream.store import DBEntry, Store
from tests.interop.workload import _digest_conn, content_digest, integrity_ok
from tests.refbin import run_ref
from tests.reliability.appproc import AppProcess

PAGE_SIZES = [512, 4096]
UNPROVEN_RESTART = "wal restarted by another process; unreplicated frames cannot be ruled out"


class Rig:
    """The replicator in this process (a Database, "killed" by closing it without a final sync while the
    application still has the database open), the application in its own process."""

    def __init__(self, tmp_path, page_size: int = 4096, rows: int = 300, **settings) -> None:
        self.tmp = tmp_path
        self.path = str(tmp_path / "app.db")
        self.page_size = page_size
        self.app = AppProcess(self.path, page_size)
        # Rows spread over many pages, all in the database file: updating early rows later touches pages
        # that no frame of the WAL holds, whose old versions can only come from the database file.
        self.app.insert(rows, size=max(64, page_size // 5))
        self.app.checkpoint("TRUNCATE")
        self.settings = DBSettings(**settings)
        self.db: Database | None = Database(self.path, self.settings)
        self.states: dict[int, str] = {}  # TXID -> content digest, for the last TXID of each sync
        self.snapshots: list[tuple[int, str]] = []

    def digest(self) -> str:
        conn = apsw.Connection(self.path)
        try:
            return _digest_conn(conn)
        finally:
            conn.close()

    def sync(self) -> list:
        results = self.db.sync()
        for r in results:
            if r.snapshot:
                self.snapshots.append((r.txid, r.reason))
        if results:
            self.states[results[-1].txid] = self.digest()
        return results

    def stop_replicator(self) -> None:
        self.db.close(final_sync=False)
        self.db = None

    def start_replicator(self) -> None:
        self.db = Database(self.path, self.settings)

    def kill_app(self) -> None:
        self.app.kill()

    def start_app(self) -> None:
        self.app = AppProcess(self.path, self.page_size)

    def stop_after_changes(self, first: int, last: int) -> int:
        """Sync, kill the replicator, then the application changes rows first..last; returns the TXID the
        replicator had reached."""
        self.sync()
        txid = self.db.txid
        self.stop_replicator()
        self.app.update(first, last)
        return txid

    def crash_both_after_app_checkpoint(self, first: int, last: int) -> None:
        """The replicator is killed, the application changes rows first..last (pages only the database file
        held), copies them into the database file with its own checkpoint and is killed as well; then the
        replicator starts again and syncs."""
        self.stop_replicator()
        self.app.update(first, last)
        self.app.checkpoint("PASSIVE")
        self.kill_app()
        self.start_replicator()
        self.sync()

    def resume_and_check(self, since: int) -> None:
        """After the crash: sync, let a new application write on, sync again; both tools restore every TXID,
        and nothing after `since` needed a snapshot (the WAL still held every frame)."""
        self.sync()
        if self.app.proc.poll() is not None:
            self.start_app()
        self.app.insert(2)
        self.sync()
        self.check_all(reference=True)
        assert self.snapshots_after(since) == []

    def resume_expecting_snapshot(self, since: int, reason: str) -> None:
        """After the crash: the replicator starts, its one file since `since` is a snapshot for `reason`,
        and every TXID restores."""
        self.start_replicator()
        self.sync()
        assert [r for _, r in self.snapshots_after(since)] == [reason]
        self.check_all()

    def snapshots_after(self, txid: int) -> list[tuple[int, str]]:
        return [s for s in self.snapshots if s[0] > txid]

    def check_all(self, reference: bool = False) -> None:
        """Every TXID restores (ours verifies every checksum), and the recorded ones hold exactly the rows."""
        client = FileReplicaClient(self.db.meta.path)
        assert self.states
        for txid in range(1, self.db.txid + 1):
            out = self.tmp / f"restore-{txid}.db"
            restore_files(client, calc_restore_plan(client, txid), str(out))
            if txid in self.states:
                assert content_digest(out) == self.states[txid], f"TXID {txid:x} holds other rows"
            assert integrity_ok(out), f"TXID {txid:x}"
            if reference:
                ref_out = self.tmp / f"ref-{txid}.db"
                r = run_ref("restore", "-txid", f"{txid:016x}", "-o", str(ref_out), f"file://{self.db.meta.path}")
                assert r.returncode == 0, r.stderr
                assert ref_out.read_bytes() == out.read_bytes(), f"TXID {txid:x}: the reference restores other bytes"
                ref_out.unlink()
            out.unlink()

    def close(self) -> None:
        if self.db is not None:
            self.db.close(final_sync=False)
        self.app.kill()


@pytest.fixture
def rig_factory(tmp_path):
    rigs = []

    def make(**kw):
        rigs.append(Rig(tmp_path, **kw))
        return rigs[-1]

    yield make
    for r in rigs:
        r.close()


def _copy_counters(path: str) -> tuple[int, int]:
    """(nBackfill, nBackfillAttempted) of SQLite's WAL index, read straight from the -shm file."""
    with open(path + "-shm", "rb") as f:
        data = f.read(136)
    return struct.unpack_from("=I", data, 96)[0], struct.unpack_from("=I", data, 128)[0]


# ------------------------------------------------------------------------------------------ the regression

@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("app_dies", ["idle", "mid-transaction"])
def test_app_checkpoints_past_our_position_then_both_are_killed(rig_factory, page_size, app_dies):
    rig = rig_factory(page_size=page_size)
    rig.sync()
    rig.app.insert(3)
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()  # killed: nothing pins the WAL any more
    rig.app.update(1, 40)  # early pages, which only the database file held
    if app_dies == "mid-transaction":
        # A reader of the application keeps the checkpoint partial, so the next transaction goes on in the
        # same WAL generation; it spills uncommitted frames into the WAL and dies before its commit.
        rig.app.hold_reader()
        rig.app.update(41, 60)
        busy, log, done = rig.app.checkpoint("PASSIVE")
        assert 0 < done < log
        rig.app.spill()
    else:
        busy, log, done = rig.app.checkpoint("PASSIVE")
        assert busy == 0 and done == log
    rig.kill_app()
    rig.start_replicator()
    assert rig.db.open()
    backfill, attempted = _copy_counters(rig.path)
    assert backfill == 0 and attempted > 0  # the index was rebuilt: nBackfill says nothing any more
    rig.resume_and_check(before)  # the checksum was computed afresh from the database file


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_wal_restarted_and_checkpointed_by_the_app_then_both_are_killed(rig_factory, page_size):
    """The same through the proof that the old generation ended at our position (its frames are still in
    the WAL past the shorter new generation): the new generation's frames reached the database file."""
    rig = rig_factory(page_size=page_size)
    rig.app.insert(100)  # a long generation the replicator never sees on its own
    rig.app.checkpoint("PASSIVE")
    rig.app.update(1, 5)  # restarts the WAL: a short generation, the long one's frames remain past it
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    rig.app.update(6, 8)  # restarts the WAL again
    rig.app.checkpoint("PASSIVE")  # and copies the new generation into the database file
    rig.kill_app()
    rig.start_replicator()
    rig.resume_and_check(before)


@pytest.mark.parametrize("app_killed", [False, True])
def test_wal_restarted_while_stopped_takes_a_snapshot_even_with_the_old_tail_in_the_file(rig_factory, app_killed):
    """While we were stopped the application committed more, checkpointed it all and restarted the WAL.
    The old generation's frames past our position may still be in the file, but they prove nothing: the
    new generation overwrites them as it grows (while we would be reading them), and a transaction whose
    writer died between writing its commit frame and updating the WAL index looks committed in the file
    although SQLite discarded it. So this takes a snapshot, and every TXID restores."""
    rig = rig_factory()
    rig.app.update(1, 300)  # an earlier, longer generation: the old chain ends at a frame of it, not at EOF
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    rig.app.update(1, 1)  # restarts the WAL
    rig.sync()
    rig.app.update(1, 150)  # our position ends far into the WAL
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    rig.app.update(151, 160)  # the tail we never saw
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    rig.app.update(161, 162)  # restarts the WAL: a short new generation
    if app_killed:
        rig.app.checkpoint("PASSIVE")
        rig.kill_app()
    rig.resume_expecting_snapshot(before, UNPROVEN_RESTART)


def test_old_generations_tail_ending_at_the_end_of_the_file_takes_a_snapshot(rig_factory):
    """A chain that ends where the file ends proves nothing: journal_size_limit may have cut it there."""
    rig = rig_factory()
    rig.sync()
    rig.app.update(1, 150)  # a fresh WAL: this generation is the longest, the file ends with it
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    rig.app.update(151, 160)
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    rig.app.update(161, 162)
    rig.resume_expecting_snapshot(before, UNPROVEN_RESTART)


def test_wal_restarted_past_our_position_takes_a_snapshot(rig_factory):
    """The new generation has overwritten our last frame: what followed it cannot be read any more."""
    rig = rig_factory()
    rig.sync()
    rig.app.update(1, 20)
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    rig.app.update(21, 30)
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    rig.app.update(1, 200)  # restarts the WAL and writes far past our old position
    rig.resume_expecting_snapshot(before, UNPROVEN_RESTART)


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_wal_restarted_by_the_app_while_a_snapshot_reads_its_frames(rig_factory, monkeypatch, page_size):
    """Found by the crash loop at 512-byte pages: the replicator starts on a WAL the application has
    copied completely into the database file, so its read transaction sits on read mark 0, which does not
    stop the WAL from restarting. While the snapshot (the restart was not ours) reads the frames of that
    generation, the application's next commit restarts the WAL and overwrites them: a snapshot mixing two
    generations, which integrity_check rejected. The snapshot must notice and be taken again."""
    rig = rig_factory(page_size=page_size)
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    rig.app.update(1, 150)  # restarts the WAL: a generation the replicator has not seen
    assert rig.app.checkpoint("PASSIVE")[0] == 0  # and copies all of it: the next commit restarts again
    rig.start_replicator()
    real = rig.db.meta.write_l0
    overwrote = []

    def write_l0(txid, write, *args, **kwargs):
        if not overwrote:
            overwrote.append(txid)
            rig.app.update(151, 160)  # a new generation, written over the frames the snapshot reads
        return real(txid, write, *args, **kwargs)

    monkeypatch.setattr(rig.db.meta, "write_l0", write_l0)
    rig.sync()
    monkeypatch.undo()
    assert overwrote and rig.snapshots_after(before)
    rig.check_all(reference=True)


def test_wal_truncated_at_restart_cuts_the_tail_and_takes_a_snapshot(rig_factory):
    """journal_size_limit truncates the WAL file when it restarts: the old generation's chain then ends at
    the end of the file, which proves nothing (frames may have been cut off)."""
    rig = rig_factory()
    rig.sync()
    rig.app.update(1, 150)
    rig.sync()
    before = rig.db.txid
    wal_end = rig.db.syncer.pos.end
    rig.stop_replicator()
    rig.app.update(151, 170)  # the tail
    assert rig.app.checkpoint("PASSIVE")[0] == 0
    frame = 24 + rig.page_size
    rig.app.sql(f"PRAGMA journal_size_limit={wal_end + 3 * frame}")
    rig.app.update(171, 171)  # restarts the WAL, and its commit truncates the file inside the tail
    assert os.path.getsize(rig.path + "-wal") == wal_end + 3 * frame
    rig.resume_expecting_snapshot(before, UNPROVEN_RESTART)


def test_both_killed_without_app_checkpoint_continues_incrementally(rig_factory):
    """After a recovery the WAL index cannot vouch for the database file even when nothing was copied;
    the checksum is then recomputed from the file, without a snapshot."""
    rig = rig_factory()
    before = rig.stop_after_changes(1, 30)
    rig.kill_app()
    rig.start_replicator()
    rig.sync()
    rig.check_all()
    assert rig.snapshots_after(before) == []


# ----------------------------------------------------------------------------- the database file, live

def _hook_checksum_pages(monkeypatch, action):
    """Run action() the first time a sync reads old page versions (between its proof and its write)."""
    real = core.checksum_pages
    fired = []

    def hooked(*args):
        if not fired:
            fired.append(action())
        return real(*args)

    monkeypatch.setattr(core, "checksum_pages", hooked)
    return fired


def test_app_checkpoint_between_open_and_first_sync(rig_factory):
    """Our read transaction begins wherever the WAL ends when the database is opened, past the replicated
    position: the application may copy its unreplicated frames into the database file before our first
    sync. The WAL index shows it; the checksum is recomputed."""
    rig = rig_factory()
    before = rig.stop_after_changes(1, 30)
    rig.start_replicator()
    assert rig.db.open()
    assert rig.app.checkpoint("PASSIVE")[0] == 0  # nothing holds it off yet: our pin is past the new frames
    rig.sync()
    rig.check_all()
    assert rig.snapshots_after(before) == []


def test_app_checkpoint_during_first_sync_is_held_off(rig_factory, monkeypatch):
    """While our read transaction may sit past the replicated position, other processes' checkpoints must
    copy nothing: we hold SQLite's checkpoint lock until the first sync has caught up."""
    rig = rig_factory()
    before = rig.stop_after_changes(1, 30)
    rig.start_replicator()
    fired = _hook_checksum_pages(monkeypatch, lambda: rig.app.checkpoint("PASSIVE"))
    rig.sync()
    assert fired and fired[0][0] == 1 and fired[0][2] <= 0  # the application's checkpoint was busy, copied nothing
    assert rig.snapshots_after(before) == []
    monkeypatch.undo()
    assert rig.app.checkpoint("PASSIVE")[0] == 0  # and is not held off any longer
    rig.check_all()


def test_lost_lock_and_app_checkpoint_during_sync_discards_the_file(rig_factory, monkeypatch, capsys):
    """Without the lock (another process kept it, or SQLite in our process let it go), a checkpoint that
    copies frames past our position while the L0 file is encoded is caught before the file is renamed
    into place; the sync is then re-based (its checksum computed from the whole state), not snapshotted."""
    rig = rig_factory()
    before = rig.stop_after_changes(1, 30)
    rig.start_replicator()
    monkeypatch.setattr(shm.WalIndex, "hold", lambda self, wait_s=0.0: False)
    fired = _hook_checksum_pages(monkeypatch, lambda: rig.app.checkpoint("PASSIVE"))
    capsys.readouterr()
    rig.sync()
    assert fired and fired[0][0] == 0 and fired[0][2] > 0  # the checkpoint copied frames under us
    out = capsys.readouterr().out
    assert "database file changed during sync" in out and "database checksum recomputed" in out
    assert rig.snapshots_after(before) == [] and rig.db.txid == before + 1
    assert not [n for n in os.listdir(rig.db.meta.level_dir(0)) if n.endswith(".tmp")]
    monkeypatch.undo()
    rig.app.insert(1)
    rig.sync()
    rig.check_all()


def test_wal_restarted_during_a_rebase_takes_a_snapshot(rig_factory, monkeypatch):
    """If even the re-based file's guard fails (here: the WAL index no longer matches the WAL header it was
    planned with, as after a restart of the WAL), the sync takes a snapshot."""
    rig = rig_factory()
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    rig.app.update(1, 20)
    rig.app.checkpoint("PASSIVE")
    rig.kill_app()
    rig.start_replicator()
    real = shm.WalIndex.info
    calls = []

    def info(self, wal_header):
        calls.append(1)
        return None if len(calls) > 1 else real(self, wal_header)  # vouches for nothing after the plan

    monkeypatch.setattr(shm.WalIndex, "info", info)
    rig.sync()
    monkeypatch.undo()
    assert [reason for _, reason in rig.snapshots_after(before)] == ["database file changed during sync"]
    rig.check_all()


@pytest.mark.parametrize("both_killed", [False, True])
def test_split_backlog_after_restart(rig_factory, monkeypatch, both_killed):
    """A backlog larger than max-sync-wal-bytes is written as several L0 files cut at commit boundaries;
    each takes old versions from the file the one before it left. The application's checkpoints between
    them must not copy frames past the file being written (held off), and after a recovery the checksum
    of the whole state is computed once, over the whole backlog."""
    rig = rig_factory(max_sync_wal_bytes=64 * 1024)
    rig.sync()
    before = rig.db.txid
    rig.stop_replicator()
    for i in range(30):
        rig.app.update(1 + 10 * i, 10 + 10 * i)
    if both_killed:
        rig.app.checkpoint("PASSIVE")
        rig.kill_app()
    rig.start_replicator()
    results = []
    if not both_killed:
        results = _hook_checksum_pages(monkeypatch, lambda: rig.app.checkpoint("PASSIVE"))
    written = rig.sync()
    assert rig.snapshots_after(before) == []
    if both_killed:
        assert len(written) == 1  # re-based: one file up to the end of the WAL
    else:
        assert len(written) > 3 and results[0][0] == 1
    monkeypatch.undo()
    rig.check_all()


# ----------------------------------------------------------------------- restored, reset and healed

def _store(path: str, replica_dir, settings: DBSettings | None = None) -> Store:
    db = Database(path, settings or DBSettings())
    return Store([DBEntry(db, [Replica(db, FileReplicaClient(str(replica_dir)))])], background=False)


def _restore_latest(replica_dir, out) -> None:
    client = FileReplicaClient(str(replica_dir))
    restore_files(client, calc_restore_plan(client), str(out))


@pytest.mark.parametrize("app_killed", [False, True])
def test_restored_database_changed_before_replication_resumes(tmp_path, app_killed):
    """A database behind its replica (restored from it) continues from the replica's newest L0 only when
    the checksum shows the file is that state; here the application has written and checkpointed first."""
    src = tmp_path / "src.db"
    app = AppProcess(str(src))
    app.insert(100)
    replica = tmp_path / "replica"
    store = _store(str(src), replica)
    store.open()
    store.sync_all_once()
    store.close()
    app.kill()
    restored = tmp_path / "restored.db"
    _restore_latest(replica, restored)
    app = AppProcess(str(restored))
    app.update(1, 20)
    app.checkpoint("PASSIVE")
    if app_killed:
        app.kill()
        app = AppProcess(str(restored))
    store = _store(str(restored), replica)
    store.open()
    store.sync_all_once()
    db = store.entries[0].db
    assert db.stats.snapshots == 1
    conn = apsw.Connection(str(restored))
    want = _digest_conn(conn)
    conn.close()
    store.close()
    out = tmp_path / "final.db"
    _restore_latest(replica, out)
    assert content_digest(out) == want
    app.kill()


def test_reset_after_both_killed(tmp_path):
    """`litestream reset` drops the local state; replication continues from the replica's newest L0 in the
    same WAL generation, which the application had checkpointed past before both were killed."""
    rig = Rig(tmp_path)
    replica = tmp_path / "replica"
    rig.db.close(final_sync=False)
    store = _store(rig.path, replica)
    store.open()
    store.sync_all_once()
    rig.app.insert(3)
    store.sync_all_once()
    txid = store.entries[0].db.txid
    store.entries[0].db.close(final_sync=False)  # killed
    rig.app.update(1, 40)
    rig.app.checkpoint("PASSIVE")
    rig.kill_app()
    r = subprocess.run([sys.executable, "-m", "litestream", "reset", rig.path], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    store = _store(rig.path, replica)
    store.open()
    rig.start_app()
    rig.app.insert(1)
    store.sync_all_once()
    db = store.entries[0].db
    assert db.txid > txid and db.stats.snapshots == 0
    conn = apsw.Connection(rig.path)
    want = _digest_conn(conn)
    conn.close()
    store.close()
    out = tmp_path / "final.db"
    _restore_latest(replica, out)
    assert content_digest(out) == want
    rig.app.kill()


def test_snapshot_for_a_replica_after_both_killed(rig_factory, tmp_path):
    """A replica that needs files we no longer have locally gets a snapshot of the current state built
    from this generation's frames and the database file: after a recovery too."""
    rig = rig_factory()
    rig.sync()
    rig.crash_both_after_app_checkpoint(1, 40)
    for t in range(1, rig.db.txid):
        os.remove(rig.db.meta.l0_path(t))  # as L0 retention will
    late = tmp_path / "late"
    Replica(rig.db, FileReplicaClient(str(late))).sync()
    want = rig.digest()
    out = tmp_path / "late.db"
    _restore_latest(late, out)
    assert content_digest(out) == want


def test_drift_is_reported_and_rebased_with_a_snapshot(rig_factory, tmp_path, capsys):
    """Should the running checksum ever be wrong, the next full computation (a snapshot) says so at ERROR
    and the next file is a snapshot, so that the replica restores again."""
    rig = rig_factory()
    rig.sync()
    rig.app.insert(2)
    rig.sync()
    rig.db.syncer.db_sum ^= 0x1234  # a bug we cannot have, simulated
    fd = os.open(str(tmp_path / "snap.ltx"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        rig.db.write_snapshot(fd)
    finally:
        os.close(fd)
    assert "level=ERROR" in capsys.readouterr().out
    rig.app.insert(1)
    before = rig.db.txid
    rig.sync()
    assert [reason for _, reason in rig.snapshots_after(before)] == ["database checksum drifted"]
    client = FileReplicaClient(rig.db.meta.path)
    out = tmp_path / "latest.db"
    restore_files(client, calc_restore_plan(client), str(out))
    assert content_digest(out) == rig.digest()


def test_leftover_temp_files_are_removed_on_open(rig_factory):
    rig = rig_factory()
    rig.sync()
    rig.stop_replicator()
    meta = Database(rig.path).meta
    junk = [meta.l0_path(99) + ".tmp", os.path.join(meta.path, "snapshot-1-2.ltx.tmp")]
    for p in junk:
        with open(p, "wb") as f:
            f.write(b"torn")
    rig.app.insert(1)
    rig.start_replicator()
    rig.sync()
    assert not any(os.path.exists(p) for p in junk)
    rig.check_all()


def _header_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(100)


def test_header_of_rebased_file_chains(rig_factory):
    """The re-based file's pre-apply checksum is the recorded one, its post-apply the recomputed state."""
    from litestream.db.checksums import decode_reserved

    rig = rig_factory()
    rig.sync()
    prev = decode_reserved(_header_bytes(rig.db.meta.l0_path(rig.db.txid))).post_apply
    rig.crash_both_after_app_checkpoint(1, 10)
    raw = _header_bytes(rig.db.meta.l0_path(rig.db.txid))
    sums = decode_reserved(raw)
    assert sums.pre_apply == prev and Header.decode(raw).min_txid == rig.db.txid
    rig.check_all()  # restores verify the post-apply value against the restored database
