"""One replicated database: lifecycle, sync (WAL -> L0), checkpoints, snapshots.

All work on one database is serialised by `lock`; the store's scheduler decides when it runs.

File descriptors on the database and its -shm file are opened once and closed only after SQLite's own
connections: closing any descriptor of a file drops every POSIX lock the process holds on it, including
the ones SQLite took for our read transactions.

Our read transaction pins the WAL at or before the replicated position, so no checkpoint can copy frames
we have not replicated into the database file, which is what lets the file serve as the source of old
page versions (see sync.py). One window escapes that: a read transaction begun when the database is
opened pins the WAL wherever it ends then, possibly past the replicated position. Until the first sync
has caught up with it, we hold SQLite's checkpoint lock so that other processes copy nothing meanwhile
(should the hold not be had, or be lost, the sync's guard notices and the file is re-based)."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestream import _ltxcore as core
from litestream import logs
from litestream.db import shm
from litestream.db.checkpoint import CheckpointPolicy
from litestream.db.conn import Connections, ConnError
from litestream.db.meta import MetaDir, default_meta_path
from litestream.db.sync import Syncer, SyncError, SyncResult, wal_size_bytes
from litestream.ltx import FLAG_NO_CHECKSUM, Header

SECOND = 1_000_000_000
# Restart checkpoints: catch-up rounds without the write lock before taking it (see _passive_checkpoint).
CATCH_UP_ROUNDS = 2
BARRIER_TAIL_FRAMES = 256


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _is_disk_full(e: BaseException) -> bool:
    """An error (or one it was raised from) that says the disk or quota is full."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if type(e).__name__ == "FullError":  # apsw: SQLITE_FULL
            return True
        if getattr(e, "kind", None) == "nospace":  # the LTX encoder's write failures (core.LTXError)
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


@dataclass
class DBSettings:
    monitor_interval_s: float = 1.0
    checkpoint_interval_s: float = 60.0
    busy_timeout_ms: int = 1000
    min_checkpoint_page_n: int = 1000
    truncate_page_n: int = 121359
    max_sync_wal_bytes: int = 64 << 20
    meta_path: str | None = None
    barrier_timeout_ms: int = 200


@dataclass
class DBStats:
    syncs: int = 0
    l0_files: int = 0
    snapshots: int = 0
    checkpoints: dict[str, int] = field(default_factory=dict)  # completed, per mode
    last_sync_ns: int = 0
    last_error: str | None = None
    # For the metrics (read at scrape time; see server/metrics.py).
    sync_count: int = 0  # calls of Database.sync, failed ones included
    sync_errors: int = 0
    sync_ns: int = 0  # time spent in Database.sync (checkpoints it ran included)
    failing_since_ns: int = 0  # wall time of the first of the failed syncs going on now (0: the last one worked)
    disk_full: bool = False  # ... for lack of disk space
    wal_bytes: int = 0  # WAL bytes copied into L0 files
    checkpoint_errors: dict[str, int] = field(default_factory=dict)  # per mode
    checkpoint_ns: dict[str, int] = field(default_factory=dict)  # per mode, failed ones included
    compaction_verify_errors: int = 0


class Database:
    def __init__(self, path: str, settings: DBSettings | None = None) -> None:
        self.path = path
        self.settings = settings or DBSettings()
        self.meta = MetaDir(self.settings.meta_path or default_meta_path(path))
        self.log = logs.get_logger("db").with_attrs(db=os.path.basename(path))
        self.lock = threading.RLock()
        self.syncer = Syncer(path, self.meta, self.log, self.settings.max_sync_wal_bytes)
        self.policy = CheckpointPolicy(self.settings.min_checkpoint_page_n,
                                       self.settings.truncate_page_n or 121359,
                                       self.settings.checkpoint_interval_s)
        self.conns: Connections | None = None
        self.db_fd: int | None = None
        self.wal_fd: int | None = None
        self.shm_fd: int | None = None
        self.idx = shm.WalIndex()
        self.pin_ahead = False  # our read transaction may pin the WAL past the replicated position
        self.listeners: list[Callable[[], None]] = []
        self.stats = DBStats()
        self.synced_since_checkpoint = False
        self.repin = False  # our read transaction sits on read mark 0: move it at the next change
        self.closed = False
        self._rate_mark: tuple[float, int] | None = None  # (monotonic time, WAL frames) at the last sync
        self._take_over = False  # our checkpoints hold the checkpoint lock (see writer_outpaces_interval)

    # ------------------------------------------------------------------------------------- lifecycle

    @property
    def wal_path(self) -> str:
        return self.path + "-wal"

    @property
    def is_open(self) -> bool:
        return self.conns is not None

    @property
    def txid(self) -> int:
        return self.syncer.txid

    @property
    def page_size(self) -> int:
        return self.syncer.page_size

    @property
    def index_behind(self) -> bool:
        """The last sync saw a commit in the WAL that its live writer had not yet published in the index."""
        return self.syncer.index_behind

    def open(self) -> bool:
        """Initialise replication if the database file exists (False: not there yet, try again later)."""
        with self.lock:
            if self.conns is not None:
                return True
            if not os.path.exists(self.path):
                return False
            self.meta.ensure()
            self.meta.clean_temp()
            conns = Connections(self.path, self.settings.busy_timeout_ms, -1)
            try:
                conns.open()
            except ConnError as e:
                raise SyncError(f"open database {self.path}: {e}") from None
            self.conns = conns
            try:
                ps = conns.page_size
                conns.wal_size_limit = wal_size_bytes(ps, self.settings.min_checkpoint_page_n)
                self.db_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                self.wal_fd = os.open(self.wal_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self.shm_fd = shm.open_fd(self.path + "-shm")
                self.idx = shm.WalIndex(self.shm_fd)
                self.pin_ahead = True  # the reader began wherever the WAL ends now
                self.syncer.page_size = ps
                self.syncer.idx = self.idx
                self.syncer.lock_wait_s = self.settings.busy_timeout_ms / 1000
                self.syncer.load()
                self._ensure_wal()
                conns.trim()  # the connections opening needed are not needed any more
            except BaseException:
                self._close_handles()
                raise
            logs.info("initialized db", path=self.path)
            return True

    def wal_frames(self) -> int:
        """Frames in the current WAL generation (from the WAL index, without locks; 0 when unknown).
        Cheap enough to call on every change notification."""
        if self.shm_fd is None or self.wal_fd is None:
            return 0
        try:
            hdr = os.pread(self.wal_fd, 32, 0)
        except OSError:
            return 0
        info = self.idx.info(hdr)
        return info.mx_frame if info is not None else 0

    def checkpoint_due(self) -> bool:
        """The WAL has grown to where it should start over (see checkpoint.py)."""
        return self.repin or self.wal_frames() >= self.policy.restart_page_n

    def _ensure_wal(self) -> None:
        """The WAL must have a valid header before we can read positions from it: write a transaction."""
        if os.fstat(self.wal_fd).st_size < 32 or core.wal_header_parse(os.pread(self.wal_fd, 32, 0)) is None:
            self.conns.bump_seq()

    def _close_handles(self) -> None:
        if self.conns is not None:
            self.conns.close()
            self.conns = None
        for name in ("wal_fd", "shm_fd", "db_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        self.idx = shm.WalIndex()
        self.syncer.idx = self.idx

    def close(self, final_sync: bool = True) -> None:
        with self.lock:
            if self.conns is not None and final_sync:
                try:
                    self.sync()
                except (SyncError, OSError, core.LTXError) as e:
                    self.log.error("final sync failed", error=str(e))
            self._close_handles()
            self.closed = True

    # ------------------------------------------------------------------------------------------ sync

    def sync(self, checkpoint: bool = True) -> list[SyncResult]:
        """Copy everything committed in the WAL into L0 files (several when the WAL is large), then
        checkpoint if the policy says so."""
        with self.lock:
            t0 = time.monotonic_ns()
            try:
                results = self._sync(checkpoint)
            except BaseException as e:
                self.stats.sync_errors += 1
                self.stats.failing_since_ns = self.stats.failing_since_ns or time.time_ns()
                self.stats.disk_full = _is_disk_full(e)
                raise
            else:
                self.stats.failing_since_ns = 0
                self.stats.disk_full = False
            finally:
                self.stats.sync_count += 1
                self.stats.sync_ns += time.monotonic_ns() - t0
            return results

    def _sync(self, checkpoint: bool) -> list[SyncResult]:
        with self.lock:
            if self.conns is None and not self.open():
                return []
            results: list[SyncResult] = []
            # A checkpoint that will follow moves our read transaction anyway: do it with this sync.
            frames = self.wal_frames()
            due = checkpoint and frames and self.policy.decide(self.page_size, wal_size_bytes(self.page_size, frames),
                                                               False, 0.0) in ("PASSIVE", "RESTART")
            self._take_over = self.writer_outpaces_interval(frames)
            if due:
                self._hold_checkpoint_lock()
            try:
                if self.repin or due:
                    # After our restart checkpoint the read transaction sits on read mark 0 (taken while the
                    # WAL was fully copied), which blocks all copying: every autocheckpoint of the
                    # application would then rescan the whole WAL on every commit. Move it onto the new
                    # generation.
                    self.conns.rotate(lambda: results.extend(self._sync_all()))
                    self.repin = self.repin and not results
                else:
                    # Otherwise the pin stays where it is: with nothing it could copy, the application's
                    # autocheckpoint costs it next to nothing; our own checkpoints move the pin and copy.
                    results = self._sync_all()
                if checkpoint and not (results and results[-1].limited):
                    self.checkpoint_if_needed(pinned=bool(due))
            finally:
                self.idx.release()
            return results

    def _sync_all(self) -> list[SyncResult]:
        self._ensure_wal()
        took = self.pin_ahead and not self.idx.held and self.idx.hold(self.settings.busy_timeout_ms / 1000)
        results = []
        try:
            while True:
                r = self.syncer.sync(self.wal_fd, self.db_fd)
                if r is None:
                    break
                results.append(r)
                self._after_write(r)
                if not r.limited:
                    break
            self.pin_ahead = False  # replicated up to the end of the WAL, past where the reader began
        finally:
            if took:
                self.idx.release()
        self.stats.syncs += 1
        self.stats.last_sync_ns = time.time_ns()
        return results

    def _after_write(self, r: SyncResult) -> None:
        self.stats.l0_files += 1
        self.stats.wal_bytes += r.wal_size
        self.synced_since_checkpoint = True
        if r.snapshot:
            self.stats.snapshots += 1
            self.log.info("snapshot written to l0", txid=f"{r.txid:016x}", reason=r.reason, size=r.size)
        else:
            self.log.debug("sync", txid=f"{r.txid:016x}", offset=r.wal_offset, size=r.wal_size, pages=r.pages)
        for fn in self.listeners:
            fn()

    def has_idle_connections(self) -> bool:
        return self.conns is not None and self.conns.idle_count > 0

    def trim(self) -> None:
        """Close connections kept for a busy period (called once the database has been idle a while)."""
        with self.lock:
            if self.conns is not None:
                self.conns.trim()

    def force_snapshot(self, reason: str) -> None:
        with self.lock:
            self.syncer.force_snapshot = reason

    # ------------------------------------------------------------------------------------ checkpoints

    def checkpoint_if_needed(self, pinned: bool = False) -> str | None:
        pos = self.syncer.pos
        if self.idx.pinned:
            return None  # a snapshot is being read from the database file: nothing may be copied into it
        if pos is None or not self.page_size or self.syncer.sealed is not None:
            return None  # sealed: checkpointed completely, waiting for the next write to restart the WAL
        try:
            since_write = time.time() - os.fstat(self.db_fd).st_mtime
        except OSError:
            since_write = 0.0
        mode = self.policy.decide(self.page_size, pos.end, self.synced_since_checkpoint, since_write)
        if mode is None:
            return None
        if mode == "TRUNCATE":
            self.checkpoint("RESTART")
            if self.syncer.pos.end < wal_size_bytes(self.page_size, self.policy.truncate_page_n):
                return "RESTART"
        self.checkpoint(mode, pinned)
        return mode

    def checkpoint(self, mode: str, pinned: bool = False) -> None:
        """Checkpoint without losing a frame: everything is replicated first, and the WAL can only restart
        at a point we have replicated (see conn.py for how the read transactions pin it). pinned: the
        caller has just synced with a fresh pin, so the first phase need not move it again."""
        with self.lock:
            if self.conns is None:
                return
            t0 = time.monotonic_ns()
            try:
                if not pinned:
                    self._sync_all()
                conns = self.conns
                if mode in ("PASSIVE", "RESTART"):
                    busy, log, done = self._passive_checkpoint(conns, restart=mode == "RESTART", pinned=pinned)
                else:
                    # TRUNCATE cannot run while we hold the write lock, so frames committed between our last
                    # sync and the checkpoint could go straight into the database file; the next sync only
                    # continues if the database checksum shows that did not happen.
                    busy, log, done = self._checkpoint_unpinned(conns, lambda c: conns.checkpoint_on(c, mode))
            except BaseException:
                self.stats.checkpoint_errors[mode] = self.stats.checkpoint_errors.get(mode, 0) + 1
                raise
            finally:
                self.idx.release()
                self.stats.checkpoint_ns[mode] = self.stats.checkpoint_ns.get(mode, 0) + time.monotonic_ns() - t0
            self.stats.checkpoints[mode] = self.stats.checkpoints.get(mode, 0) + 1
            self.synced_since_checkpoint = False
            self.log.debug("checkpoint", mode=mode, busy=busy, log=log, checkpointed=done)

    @staticmethod
    def _checkpoint_unpinned(conns: Connections, run: Callable[[Any], tuple[int, int, int]]) -> tuple[int, int, int]:
        """Run a checkpoint that must go past our pin: our read transaction ends for the call."""
        conns.end_read()
        try:
            with conns.spare() as c:
                return run(c)
        finally:
            conns.begin_read()

    def _checkpoint_retrying(self, conns: Connections, c) -> tuple[int, int, int]:
        """PASSIVE never waits, and the application's own autocheckpoint often holds the checkpoint lock for
        a moment: retry briefly."""
        deadline = time.monotonic() + self.settings.barrier_timeout_ms / 1000
        while True:
            busy, log, done = conns.checkpoint_on(c, "PASSIVE")
            if not busy or time.monotonic() >= deadline:
                return busy, log, done
            time.sleep(0.001)

    def writer_outpaces_interval(self, frames: int) -> bool:
        """Whether writers fill the WAL to the restart threshold within one monitor-interval (measured
        between syncs). Such a writer pays for every copy that lands in its commit path, so our checkpoints
        take the copying over (holding SQLite's checkpoint lock, shm.py). A slower one keeps SQLite's usual division of
        labour: its autocheckpoint copies what our pin releases, which costs it nothing it would notice,
        keeps the replicator's own CPU use small, and leaves the application's checkpoints unhindered."""
        now = time.monotonic()
        prev, self._rate_mark = self._rate_mark, (now, frames)
        interval = self.settings.monitor_interval_s
        if prev is None or now <= prev[0] or interval <= 0:
            return False
        grown = frames - prev[1] if frames >= prev[1] else frames  # smaller: the WAL restarted in between
        return grown / (now - prev[0]) * interval >= self.policy.restart_page_n

    def _hold_checkpoint_lock(self) -> None:
        """From before our pin moves until our checkpoint ends, when taking the copying over."""
        if self._take_over:
            self.idx.hold()

    def _unsynced_frames(self) -> int:
        pos = self.syncer.pos
        if pos is None or not self.page_size:
            return 0
        return max(0, self.wal_frames() - (pos.end - wal_size_bytes(self.page_size, 0)) // (24 + self.page_size))

    def _pin_and_copy(self, conns: Connections, move_pin: bool) -> tuple[int, int, int]:
        """Optionally move our pin to a replicated point at the end of the WAL, then copy up to it."""
        if move_pin:
            self._hold_checkpoint_lock()
            conns.rotate(self._sync_all)
        with conns.spare() as c:
            return self._checkpoint_retrying(conns, c)

    def _passive_checkpoint(self, conns: Connections, restart: bool, pinned: bool = False) -> tuple[int, int, int]:
        """First, without any lock: pin the WAL at a point we have replicated and copy everything up to it
        into the database file (the bulk of the work). Then, for a restart, under the write lock:
        replicate and copy the little that came in meanwhile; when that completes, the next write
        restarts the WAL from the start."""
        t1 = time.monotonic()
        busy, log, done = self._pin_and_copy(conns, move_pin=not pinned)
        if not restart:
            return busy, log, done
        # Writers kept going during the copy; what they wrote is what the barrier would have to replicate
        # and copy with them locked out. Catch up without the lock while that shrinks.
        for _ in range(CATCH_UP_ROUNDS):
            if self._unsynced_frames() <= BARRIER_TAIL_FRAMES:
                break
            busy, log, done = self._pin_and_copy(conns, move_pin=True)
        t2 = time.monotonic()
        with conns.writer() as w:
            if not conns.try_barrier(w, self.settings.barrier_timeout_ms, self.settings.busy_timeout_ms):
                self.log.debug("checkpoint barrier busy; the wal restarts at a later checkpoint")
                return busy, log, done
            t3 = time.monotonic()
            try:
                tail = self._sync_all()  # writers are locked out: this reaches the true end of the WAL
                t4 = time.monotonic()
                busy, log, done = self._checkpoint_unpinned(conns, lambda c: self._checkpoint_retrying(conns, c))
            finally:
                w.execute("ROLLBACK").fetchall()
        t5 = time.monotonic()
        self.log.debug("checkpoint phases", copy_ms=ms(t2 - t1), acquire_ms=ms(t3 - t2),
                       tail_sync_ms=ms(t4 - t3), tail_copy_ms=ms(t5 - t4), tail_pages=sum(r.pages for r in tail))
        if not busy and log == done:
            # Everything is in the database file: the next write restarts the WAL. Unlike the reference we
            # do not force that with a write of our own, which would cost an L0 file and an upload per
            # checkpoint; the sync after the restart continues at offset 32.
            self.syncer.seal()
            self.repin = True
        return busy, log, done

    # -------------------------------------------------------------------------------------- snapshots

    def write_snapshot(self, fd: int) -> Header:
        """A full snapshot LTX file (MinTXID 1, MaxTXID = current position) of the replicated state.

        The database lock is held only to plan it: the encoding, which reads the whole database, runs while
        syncs go on, with SQLite's checkpoint lock keeping the database file as planned (our own
        checkpoints wait, the application's return busy)."""
        with self.lock:
            if self.conns is None and not self.open():
                raise SyncError(f"database does not exist: {self.path}")
            # The lock first, then the plan: a checkpoint in between would move the copy counters the plan
            # records, and the guard after encoding would throw the snapshot away.
            if not self.idx.pin(self.settings.busy_timeout_ms / 1000):
                raise SyncError("another process holds the checkpoint lock; the snapshot is taken later")
            try:
                self._sync_all()
                plan = self.syncer.plan_snapshot(self.wal_fd)
            except BaseException:
                self.idx.unpin()
                raise
            walfd, dbfd = self.wal_fd, self.db_fd
        try:
            header, drift = self.syncer.encode_snapshot(plan, fd, walfd, dbfd, FLAG_NO_CHECKSUM)
        finally:
            with self.lock:
                self.idx.unpin()
        if drift:
            with self.lock:
                self.syncer.force_snapshot = "database checksum drifted"
        return header
