"""The running replicator (Store): wake-up on change, idle cost, upload errors and back-off, shutdown,
disk full."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time

import apsw
import pytest

from litestream.backends.base import BackendError
from litestream.backends.file import FileReplicaClient
from litestream.db.database import Database, DBSettings
from litestream.replica import Replica, ReplicaSettings
from litestream.restore import calc_restore_plan, restore_files
from litestream.store import DBEntry, Store
from tests.interop.workload import _digest_conn, content_digest


class CountingClient(FileReplicaClient):
    """A file replica that counts requests and can be told to fail."""

    def __init__(self, path):
        super().__init__(path)
        self.calls = 0
        self.fail = False
        self.lock = threading.Lock()

    def _count(self):
        with self.lock:
            self.calls += 1
        if self.fail:
            raise BackendError("replica unreachable (test)")

    def ltx_files(self, level, seek=0, use_metadata=False):
        self._count()
        return super().ltx_files(level, seek, use_metadata)

    def write_ltx_file(self, level, min_txid, max_txid, src, timestamp_ms):
        self._count()
        return super().write_ltx_file(level, min_txid, max_txid, src, timestamp_ms)


def make_app(path):
    app = apsw.Connection(str(path))
    app.set_busy_timeout(5000)
    app.execute("PRAGMA journal_mode=wal").fetchall()
    app.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
    return app


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def restored_digest(replica_dir, tmp_path):
    client = FileReplicaClient(str(replica_dir))
    out = tmp_path / f"check-{time.monotonic_ns()}.db"
    restore_files(client, calc_restore_plan(client), str(out))
    return content_digest(out)


@pytest.fixture
def running(tmp_path):
    app = make_app(tmp_path / "app.db")
    db = Database(str(tmp_path / "app.db"), DBSettings(monitor_interval_s=0.05, checkpoint_interval_s=0))
    client = CountingClient(str(tmp_path / "replica"))
    replica = Replica(db, client, ReplicaSettings(sync_interval_s=0.05))
    store = Store([DBEntry(db, [replica])], shutdown_sync_timeout_s=2, shutdown_sync_interval_s=0.05)
    store.open()
    yield app, db, client, replica, store
    if not store.closing.is_set():
        store.close()
    app.close()


def test_changes_are_replicated_promptly(running, tmp_path):
    app, db, _client, replica, _store = running
    assert wait_for(lambda: replica.pos == db.txid and db.txid >= 1)
    for i in range(5):
        with app:
            app.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
        assert wait_for(lambda: replica.pos == db.txid and restored_digest(tmp_path / "replica", tmp_path)
                        == _digest_conn(app), timeout=5)


def test_idle_database_costs_nothing(running):
    app, db, client, replica, _store = running
    assert wait_for(lambda: replica.pos == db.txid and db.txid >= 1)
    time.sleep(0.3)
    syncs, calls = db.stats.syncs, client.calls
    cpu = time.process_time()
    time.sleep(1.5)
    assert db.stats.syncs == syncs, "an idle database must not be polled"
    assert client.calls == calls, "an idle database must not make replica requests"
    assert time.process_time() - cpu < 0.05
    # ...and it wakes up on the next write.
    with app:
        app.execute("INSERT INTO t(v) VALUES ('wake')")
    assert wait_for(lambda: replica.pos == db.txid and db.stats.syncs > syncs)


def test_a_commit_published_in_the_wal_index_after_the_sync_looked_is_replicated(running, monkeypatch):
    """A writer appends its frames (the WAL event wakes us), then publishes the commit in the WAL index.
    A sync that reads the index in between stops at the old mxFrame, and no further WAL write comes to
    wake it: while the write lock was held, it must look again by itself."""
    from litestream.db import shm
    from litestream.db.sync import wal_size_bytes

    app, db, _client, replica, _store = running
    assert wait_for(lambda: replica.pos == db.txid and db.txid >= 1)
    time.sleep(0.2)
    stale = db.syncer.pos.end  # the index as it was before the commit below was published
    real_end, real_active = db.syncer._committed_end, shm.WalIndex.writer_active
    lagging = {"n": 2}  # the first looks after the write see the old index and a writer holding the lock

    def committed_end(raw_hdr, page_size):
        if lagging["n"] > 0:
            lagging["n"] -= 1
            return stale
        return real_end(raw_hdr, page_size)

    def writer_active(self):
        return True if lagging["n"] > 0 else real_active(self)

    monkeypatch.setattr(db.syncer, "_committed_end", committed_end)
    monkeypatch.setattr(shm.WalIndex, "writer_active", writer_active)
    txid = db.txid
    with app:
        app.execute("INSERT INTO t(v) VALUES ('published late')")
    assert stale < wal_size_bytes(db.page_size, db.wal_frames())
    assert wait_for(lambda: db.txid == txid + 1 and replica.pos == db.txid, timeout=5), \
        "the commit published after the sync looked was never replicated"
    assert lagging["n"] == 0


def test_the_wal_write_lock_of_another_process_is_seen_without_taking_it(tmp_path):
    from litestream.db import shm

    app = make_app(tmp_path / "w.db")
    fd = shm.open_fd(str(tmp_path / "w.db-shm"))
    try:
        assert not shm.write_lock_held(fd)
        child = subprocess.Popen(
            ["python", "-c", "import apsw, sys, time; c = apsw.Connection(sys.argv[1]); "
             "c.execute('BEGIN IMMEDIATE'); c.execute(\"INSERT INTO t(v) VALUES ('x')\"); print(flush=True); "
             "time.sleep(30)", str(tmp_path / "w.db")], stdout=subprocess.PIPE)
        try:
            child.stdout.readline()
            assert shm.write_lock_held(fd)
            assert shm.write_lock_held(fd)  # asking took nothing
        finally:
            child.kill()
            child.wait()
        assert not shm.write_lock_held(fd)
        with app:  # and the application was never locked out by a query
            app.execute("INSERT INTO t(v) VALUES ('y')")
    finally:
        os.close(fd)
        app.close()


def test_a_dead_writers_commit_past_the_wal_index_is_not_polled(running, monkeypatch):
    """A commit frame past mxFrame with no writer holding the lock is a transaction its killed writer
    never published: SQLite discards it, and we do not poll for it, except for LIVE_COMMIT_S after the
    WAL was written (a writer of this very process holds a lock we cannot see), with back-off."""
    from litestream.db import sync as sync_mod
    from tests.unit.test_replication import _append_ghost_commit

    monkeypatch.setattr(sync_mod, "LIVE_COMMIT_S", 0.5)
    _app, db, _client, replica, _store = running
    assert wait_for(lambda: replica.pos == db.txid and db.txid >= 1)
    txid = db.txid
    _append_ghost_commit(db.path + "-wal", db.page_size)  # wakes one sync
    time.sleep(0.5 + 1.5)  # the window, then the longest back-off (monitor-interval)
    syncs = db.stats.syncs
    time.sleep(1.0)
    assert db.stats.syncs == syncs and db.txid == txid and not db.index_behind


def test_quiet_database_keeps_no_spare_connections(tmp_path):
    """The checkpoint-interval checkpoint of a quiet database opens spare connections; with nothing new
    to replicate they are closed right away, not kept for IDLE_TRIM_S (100 quiet databases would hold
    hundreds of connections at once)."""
    app = make_app(tmp_path / "app.db")
    db = Database(str(tmp_path / "app.db"), DBSettings(monitor_interval_s=0.05, checkpoint_interval_s=0.3))
    replica = Replica(db, CountingClient(str(tmp_path / "replica")), ReplicaSettings(sync_interval_s=0.05))
    store = Store([DBEntry(db, [replica])], shutdown_sync_timeout_s=2)
    store.open()
    try:
        assert wait_for(lambda: replica.pos == db.txid and db.txid >= 1)  # the insert must come after it
        with app:
            app.execute("INSERT INTO t(v) VALUES ('x')")
        assert wait_for(lambda: replica.pos == db.txid and db.txid >= 2)
        assert wait_for(lambda: db.stats.checkpoints.get("RESTART", 0) >= 1, timeout=5)
        assert wait_for(lambda: not db.has_idle_connections(), timeout=2)  # well before IDLE_TRIM_S
    finally:
        store.close()
        app.close()


def test_replica_errors_back_off_and_recover(running, tmp_path):
    app, db, client, replica, _store = running
    assert wait_for(lambda: replica.pos == db.txid and db.txid >= 1)
    client.fail = True
    with app:
        app.execute("INSERT INTO t(v) VALUES ('while down')")
    assert wait_for(lambda: replica.errors >= 3, timeout=10)
    assert replica.pos is None  # re-read from the replica after an error
    assert replica.backoff_s() >= 0.8 * 0.2  # at least 4 sync intervals, less the jitter
    client.fail = False
    assert wait_for(lambda: replica.pos == db.txid, timeout=10)
    assert restored_digest(tmp_path / "replica", tmp_path) == _digest_conn(app)


def test_shutdown_syncs_everything(running, tmp_path):
    app, db, _client, _replica, store = running
    assert wait_for(lambda: db.txid >= 1)
    with app:
        app.executemany("INSERT INTO t(v) VALUES (?)", [(f"last {i}",) for i in range(50)])
    store.close()  # right away: the final sync must pick the write up
    assert restored_digest(tmp_path / "replica", tmp_path) == _digest_conn(app)


def test_a_replica_pass_before_the_first_sync_is_no_success(tmp_path):
    """The heartbeat counts a replica's last success: a pass with no data to hold yet (the database not
    synced once) must not count, or a ping goes out before anything was uploaded."""
    app = make_app(tmp_path / "app.db")
    db = Database(str(tmp_path / "app.db"), DBSettings(checkpoint_interval_s=0))
    replica = Replica(db, FileReplicaClient(str(tmp_path / "replica")))
    try:
        assert db.open()
        assert db.txid == 0
        assert replica.sync() == 0
        assert replica.last_success_ns == 0 and replica.errors == 0
        db.sync()
        assert replica.sync() == 1
        assert replica.last_success_ns > 0 and replica.pos == db.txid
    finally:
        db.close()
        app.close()


def test_database_created_later(tmp_path):
    path = tmp_path / "later.db"
    db = Database(str(path), DBSettings(monitor_interval_s=0.05))
    replica = Replica(db, FileReplicaClient(str(tmp_path / "replica")))
    store = Store([DBEntry(db, [replica])])
    store.open()
    try:
        time.sleep(0.2)
        assert not db.is_open
        app = make_app(path)
        with app:
            app.execute("INSERT INTO t(v) VALUES ('hello')")
        assert wait_for(lambda: replica.pos is not None and replica.pos >= 1 and replica.pos == db.txid)
    finally:
        store.close()
    assert restored_digest(tmp_path / "replica", tmp_path) == _digest_conn(app)
    app.close()


@contextlib.contextmanager
def small_filesystem(path, size="64k"):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_pauses_and_recovers(tmp_path):
    """The meta directory's disk fills up: the sync fails cleanly (no partial L0 left), replication
    resumes once there is room, and nothing is lost."""
    app = make_app(tmp_path / "app.db")
    with app:
        app.executemany("INSERT INTO t(v) VALUES (?)", [(os.urandom(200).hex(),) for _ in range(400)])
    with small_filesystem(tmp_path / "small", "2m") as small:
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # fill the filesystem completely
                f.write(b"\0" * 4096)
        db = Database(str(tmp_path / "app.db"), DBSettings(monitor_interval_s=0.05, meta_path=str(small / "meta")))
        replica = Replica(db, FileReplicaClient(str(tmp_path / "replica")))
        store = Store([DBEntry(db, [replica])])
        store.open()
        try:
            assert wait_for(lambda: db.stats.last_error is not None, timeout=10)
            assert "No space left" in db.stats.last_error or "space" in db.stats.last_error.lower()
            leftovers = [n for _, _, files in os.walk(small / "meta") for n in files]
            assert leftovers == [], leftovers
            filler.unlink()
            assert wait_for(lambda: replica.pos is not None and replica.pos >= 1 and replica.pos == db.txid, 20)
        finally:
            store.close()
    assert restored_digest(tmp_path / "replica", tmp_path) == _digest_conn(app)
    app.close()


def test_restore_into_full_disk_leaves_nothing(tmp_path):
    from litestream.restore import RestoreError

    app = make_app(tmp_path / "app.db")
    with app:
        app.executemany("INSERT INTO t(v) VALUES (?)", [(os.urandom(300).hex(),) for _ in range(300)])
    db = Database(str(tmp_path / "app.db"))
    store = Store([DBEntry(db, [Replica(db, FileReplicaClient(str(tmp_path / "replica")))])], background=False)
    store.open()
    store.sync_all_once()
    store.close()
    with small_filesystem(tmp_path / "small", "32k") as small:
        client = FileReplicaClient(str(tmp_path / "replica"))
        with pytest.raises(RestoreError, match="No space left"):
            restore_files(client, calc_restore_plan(client), str(small / "out.db"))
        assert os.listdir(small) == []
    app.close()
