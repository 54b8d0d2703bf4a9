"""All databases of one `litestream replicate` process: when each one syncs, uploads and shuts down.

Work is event driven: a change to a database's WAL (inotify) schedules its sync, at most once per
monitor-interval; a new L0 file schedules the uploads of its replicas. An idle database has no timers
and no threads waking up, and makes no requests to its replicas. Errors back off exponentially."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field

from litestream import logs
from litestream.backends.base import AuthError, BackendError
from litestream.db.database import Database
from litestream.db.sync import SyncError
from litestream.fsutil import release_free_memory
from litestream.gofmt import Duration
from litestream.ltx import HEADER_SIZE, Header, LTXError, format_txid
from litestream.replica import MAX_BACKOFF_S, Replica
from litestream.replication.jobs import Maintenance, Policy
from litestream.scheduler import Scheduler, Timer
from litestream.watch import Watcher

log = logs.get_logger("store").with_attrs(system="store")
IDLE_TRIM_S = 10.0
RELEASE_DELAY_S = 5.0  # freed memory goes back to the OS this long after the first trim
RECHECK_S = 0.1  # how often a busy WAL is checked against the checkpoint threshold between syncs
INDEX_RECHECK_S = 0.0005  # first re-look at a commit not yet published in the WAL index (doubles)


@dataclass
class DBEntry:
    db: Database
    replicas: list[Replica]
    last_sync: float = 0.0
    pending: Timer | None = None
    checkpoint_timer: Timer | None = None
    trim_timer: Timer | None = None
    last_change: float = -1e9  # monotonic time of the last sync that found new frames
    errors: int = 0
    reported_auth_error: str | None = None  # the credential error last logged at ERROR (said once)
    ready: bool = False
    retry: Timer | None = None
    upload_retry: dict[int, Timer] = field(default_factory=dict)
    watched: bool = False  # a persistent inotify watch on the WAL exists
    armed: bool = True  # the next WAL event schedules a sync (reset by each event, set by each sync)
    behind: int = 0  # consecutive syncs that found a commit not yet published in the WAL index
    stopped: bool = False  # `litestream stop` (or unregister): closed, kept (or not) in the store
    source: str = "config"  # "config", "register" (control socket) or "dir" (directory replication)

    @property
    def path(self) -> str:
        return self.db.path

    def last_replica_sync_ns(self) -> int:
        """When data last reached a replica (0: never), as the reference's LastSuccessfulSyncAt."""
        return max((r.last_success_ns for r in self.replicas), default=0)


@dataclass
class SyncOutcome:
    """What `/sync` reports: the local TXID after the sync, the lowest replica position, and whether the
    sync made a new L0 file."""

    txid: int
    replicated_txid: int
    changed: bool


class DatabaseNotFound(Exception):
    pass


class DatabaseNotOpen(Exception):
    pass


class Store:
    def __init__(self, entries: list[DBEntry], shutdown_sync_timeout_s: float = 30.0,
                 shutdown_sync_interval_s: float = 0.5, background: bool = True,
                 policy: Policy | None = None) -> None:
        """policy: compaction, snapshots and retention (None: none of them run, only L0 replication)."""
        self.entries = entries
        self.policy = policy
        self.maintenance: Maintenance | None = None
        self.shutdown_sync_timeout_s = shutdown_sync_timeout_s
        self.shutdown_sync_interval_s = shutdown_sync_interval_s
        self.background = background
        self.scheduler: Scheduler | None = None
        self.watcher: Watcher | None = None
        self.closing = threading.Event()
        self.abort_shutdown = threading.Event()
        # add/remove come from the control socket and the directory watcher while jobs run; readers take
        # a snapshot of the list (list(self.entries)) instead of holding the lock.
        self._lock = threading.RLock()
        self._release_lock = threading.Lock()
        self._release_pending = False
        self._by_path: dict[str, DBEntry] = {e.db.path: e for e in entries}
        self.uploaded = threading.Condition()  # notified after every replica upload (sync -wait)

    # ------------------------------------------------------------------------------------------ open

    def open(self) -> None:
        workers = min(4, max(2, len(self.entries)))
        self.scheduler = Scheduler(workers, heavy_workers=min(2, os.cpu_count() or 1))
        if self.background:
            self.watcher = Watcher()
        if self.policy is not None:
            self.maintenance = Maintenance(self.scheduler, self.entries, self.policy, self.closing)
        for e in list(self.entries):
            self._wire(e)
        if self.maintenance is not None and self.background:
            self.maintenance.start()  # first, so each database gets its first runs as it becomes ready
        for e in list(self.entries):
            if self.background:
                # The local part here, so every database is set up for replication (WAL mode, our tables)
                # when open() returns; asking its replicas for their position in the workers: a slow or
                # unreachable server (the SDK retries one call for over a minute) must neither hold the
                # others back nor keep replicate from answering a signal. A failure is the worker's to
                # report and retry.
                with contextlib.suppress(SyncError, OSError, LTXError):
                    e.db.open()
                self._retry_init(e)
            else:
                self._init(e)

    def _wire(self, e: DBEntry) -> None:
        for r in e.replicas:
            e.db.listeners.append(lambda r=r, e=e: self._trigger_upload(e, r))
            clean = getattr(r.client, "clean_temp", None)
            if clean is not None:
                clean()  # uploads a crash cut short (this process owns the replica from now on)

    # ------------------------------------------------------------------------------- add / remove

    def find(self, path: str) -> DBEntry | None:
        with self._lock:
            return self._by_path.get(path)

    def add(self, e: DBEntry) -> bool:
        """Start replicating one more database (register, directory replication). False: its path is
        already in the store."""
        with self._lock:
            if e.db.path in self._by_path or self.closing.is_set():
                return False
            self._by_path[e.db.path] = e
            self.entries.append(e)
        self._wire(e)
        if self.scheduler is not None:
            self._init(e)
        return True

    def remove(self, path: str, timeout_s: float | None = None) -> DBEntry | None:
        """Stop replicating a database (with a final sync and upload) and forget it. None: not there."""
        with self._lock:
            e = self._by_path.pop(path, None)
            if e is None:
                return None
            self.entries.remove(e)
        self._shut(e, timeout_s)
        if self.maintenance is not None:
            self.maintenance.forget(e)
        return e

    def stop_db(self, e: DBEntry, timeout_s: float | None = None) -> bool:
        """`litestream stop`: final sync and upload, then close; the entry stays (list shows it stopped).
        False when it was not running."""
        if e.stopped:
            return False
        self._shut(e, timeout_s)
        return True

    def start_db(self, e: DBEntry) -> bool:
        """`litestream start`: open a stopped database again. False when it was running already."""
        if not e.stopped:
            return False
        e.stopped = False
        e.db.closed = False
        e.errors = 0
        if self.scheduler is not None:
            self._init(e)
        return True

    def is_open(self, e: DBEntry) -> bool:
        return not e.stopped and e.db.is_open

    def _shut(self, e: DBEntry, timeout_s: float | None) -> None:
        e.stopped = True
        was_ready, e.ready = e.ready, False
        for t in (e.pending, e.checkpoint_timer, e.trim_timer, e.retry, *e.upload_retry.values()):
            if t is not None:
                t.cancel()
        e.upload_retry.clear()
        if self.watcher is not None:
            self.watcher.remove(e.db.wal_path)
            self.watcher.remove_dir(os.path.dirname(e.db.path) or ".", os.path.basename(e.db.path))
            e.watched = False
        if self.scheduler is not None:
            # A sync, upload or maintenance job still running finishes first (the database stays open).
            keys = [("sync", id(e)), ("maintenance", id(e)), *(("upload", id(r)) for r in e.replicas)]
            self.scheduler.wait_keys(keys, timeout=60)
        if was_ready:
            try:
                e.db.sync()
            except (SyncError, OSError, LTXError) as ex:
                log.error("final sync failed", db=os.path.basename(e.db.path), error=str(ex))
            self._final_upload(e, self.shutdown_sync_timeout_s if timeout_s is None else timeout_s)
        e.db.close(final_sync=False)

    # ------------------------------------------------------------------------------- sync on demand

    def sync_db(self, e: DBEntry, wait: bool = False, timeout_s: float = 30.0) -> SyncOutcome:
        """`litestream sync`: sync the WAL now; with wait, until every replica holds the TXID. The wait
        rides on the upload the new L0 file already scheduled (or one already due), so it costs no
        extra request."""
        if e.stopped or not e.ready or not e.db.is_open:
            raise DatabaseNotOpen(e.db.path)
        before = e.db.txid
        self.scheduler.trigger(("sync", id(e)), lambda: self._sync_job(e))
        deadline = time.monotonic() + timeout_s
        # The sync runs as the usual job (one at a time per database); wait for it to have run.
        self.scheduler.wait_keys([("sync", id(e))], timeout=max(0.0, deadline - time.monotonic()))
        txid = e.db.txid
        if wait:
            with self.uploaded:
                while self.replicated_txid(e) < txid:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"timed out waiting for replica to reach txid {format_txid(txid)}")
                    if not any(t is not None for t in e.upload_retry.values()):
                        for r in e.replicas:
                            if (r.pos or 0) < txid:
                                self._trigger_upload(e, r)
                    self.uploaded.wait(min(left, 1.0))
        return SyncOutcome(txid, self.replicated_txid(e), txid > before)

    @staticmethod
    def replicated_txid(e: DBEntry) -> int:
        """The lowest replica position (what every replica holds)."""
        return min((r.pos or 0 for r in e.replicas), default=0)

    def _init(self, e: DBEntry) -> None:
        e.retry = None
        try:
            opened = e.db.open()
        except (SyncError, OSError, LTXError) as ex:
            self._failed(e, "cannot open database", ex, lambda: self._init(e))
            return
        if not opened:
            self._wait_for_file(e)
            return
        try:
            self._catch_up(e)
        except (BackendError, OSError, LTXError, SyncError) as ex:
            self._failed(e, "cannot check replicas", ex, lambda: self._init(e))
            return
        started = e.ready is False and self.maintenance is not None and self.maintenance.started
        e.ready = True
        e.errors = 0
        for r in e.replicas:
            self._log_replica(e, r)
        if started and self.background:
            self.maintenance.ready(e)
        if self.background:
            self._trigger_sync(e)
            for r in e.replicas:
                self._trigger_upload(e, r)

    def _log_replica(self, e: DBEntry, r: Replica) -> None:
        attrs = {"type": r.client.type, "sync-interval": Duration(int(r.settings.sync_interval_s * 1e9))}
        path = getattr(r.client, "path", None)
        if path:
            attrs["path"] = path
        logs.info("replicating to", *[x for kv in attrs.items() for x in kv])

    def _wait_for_file(self, e: DBEntry) -> None:
        """The database does not exist yet: wait for it to appear (inotify on its directory, else poll)."""
        if not self.background:
            return
        directory, name = os.path.split(e.db.path)
        if self.watcher is not None and self.watcher.add_dir(directory or ".", name, lambda: self._retry_init(e)):
            if os.path.exists(e.db.path):  # created between the check and the watch
                self._retry_init(e)
            return
        e.retry = self.scheduler.call_later(e.db.settings.monitor_interval_s or 1.0, lambda: self._init(e))

    def _retry_init(self, e: DBEntry) -> None:
        if not e.ready and not self.closing.is_set():
            self.scheduler.trigger(("init", id(e)), lambda: self._init(e) if not e.ready else None)

    def _catch_up(self, e: DBEntry) -> None:
        """A database behind its replica (restored, or its local state reset): continue from the replica's
        newest L0, like the reference; the next sync proves it can go on or takes a snapshot."""
        if not e.replicas:
            return
        best, best_txid = None, 0
        for r in e.replicas:
            try:
                txid = r.position()
            except BackendError as ex:
                ex.replica = r.client.type  # type: ignore[attr-defined]  # named in the log line
                raise
            if txid > best_txid:
                best, best_txid = r, txid
        db = e.db
        with db.lock:
            if best is None or best_txid <= db.txid:
                return
            log.info("detected database behind replica", db=os.path.basename(db.path),
                     **{"txid.db": format_txid(db.txid), "txid.replica": format_txid(best_txid)})
            db.meta.reset()
            db.meta.ensure()

            def fetch(fd: int) -> None:
                with best.client.open_ltx_file(0, best_txid, best_txid) as src:
                    while chunk := src.read(1 << 20):
                        os.write(fd, chunk)

            db.meta.write_l0(best_txid, fetch)
            with open(db.meta.l0_path(best_txid), "rb") as f:
                ts = Header.decode(f.read(HEADER_SIZE)).timestamp
            os.utime(db.meta.l0_path(best_txid), ns=(ts * 1_000_000,) * 2)
            db.syncer.load()
            log.info("fetched latest L0 file from replica", db=os.path.basename(db.path), txid=format_txid(best_txid))

    def _failed(self, e: DBEntry, what: str, ex: Exception, again) -> None:
        e.errors += 1
        delay = min(MAX_BACKOFF_S, (e.db.settings.monitor_interval_s or 1.0) * 2 ** (e.errors - 1))
        hint = getattr(ex, "hint", None)
        replica = getattr(ex, "replica", None)
        attrs = {"db": os.path.basename(e.db.path), **({"replica": replica} if replica else {}), "error": str(ex),
                 **({"hint": hint} if hint else {})}
        _log_failure(e, ex, what, f"{what}: replica access denied; check its credentials and permissions", attrs)
        e.db.stats.last_error = str(ex)
        if self.background and not self.closing.is_set():
            e.retry = self.scheduler.call_later(delay, again)

    # ------------------------------------------------------------------------------------------ sync

    def _wal_event(self, e: DBEntry) -> None:
        # Only the first write after a sync matters; the sync will see all the others.
        if not e.armed:
            return
        e.armed = False
        self._on_change(e)

    def _on_change(self, e: DBEntry) -> None:
        e.pending = None
        if self.closing.is_set():
            return
        interval = e.db.settings.monitor_interval_s
        if interval <= 0:
            return  # monitor-interval 0: no background syncing, as in the reference
        due = e.last_sync + interval
        now = time.monotonic()
        # A fast writer fills the WAL long before the next tick; letting it grow makes every commit of the
        # application pay for it (its autocheckpoint rescans the tail), so sync and checkpoint right away.
        if now >= due or e.db.checkpoint_due():
            self._trigger_sync(e)
        elif e.pending is None:
            e.pending = self.scheduler.call_at(min(due, now + RECHECK_S), lambda: self._on_change(e))

    def _trigger_sync(self, e: DBEntry) -> None:
        e.pending = None
        self.scheduler.trigger(("sync", id(e)), lambda: self._sync_job(e))

    def _arm(self, e: DBEntry) -> bool:
        """Let the next WAL change schedule a sync (adding the watch the first time)."""
        e.armed = True
        if not e.watched and self.watcher is not None:
            e.watched = self.watcher.add_file(e.db.wal_path, lambda: self._wal_event(e))
        return e.watched

    def _sync_job(self, e: DBEntry) -> None:
        if self.closing.is_set() or not e.ready or e.stopped:
            return
        e.last_sync = time.monotonic()
        # Re-arm before reading the WAL, so a write that lands during the sync schedules the next one.
        armed = self._arm(e)
        try:
            results = e.db.sync()
        except (SyncError, OSError, LTXError) as ex:
            self._failed(e, "sync error", ex, lambda: self._trigger_sync(e))
            return
        e.errors = 0
        if e.db.index_behind and e.db.settings.monitor_interval_s > 0:
            # The writer publishes its commit in the WAL index after its last WAL write, so no event will
            # come for it: look again, soon at first (it is usually a matter of microseconds).
            e.behind += 1
            delay = min(e.db.settings.monitor_interval_s, INDEX_RECHECK_S * 2 ** min(e.behind, 16))
            e.pending = self.scheduler.call_later(delay, lambda: self._trigger_sync(e))
        else:
            e.behind = 0
        if not armed and e.db.settings.monitor_interval_s > 0:
            e.pending = self.scheduler.call_later(e.db.settings.monitor_interval_s, lambda: self._trigger_sync(e))
        now = time.monotonic()
        busy = bool(results) and now - e.last_change < IDLE_TRIM_S
        if results:
            e.last_change = now
        if e.db.has_idle_connections():
            # Drop the connections a busy period kept once the database has been quiet for a while, or at
            # once after a sync that is not part of a busy period: nothing new (the checkpoint-interval
            # checkpoint of a quiet database), or the first change in a while (the initial sync at start, a
            # database written now and then). With many databases, keeping them all for IDLE_TRIM_S adds up.
            if e.trim_timer is not None:
                e.trim_timer.cancel()
                e.trim_timer = None
            if busy:
                e.trim_timer = self.scheduler.call_later(IDLE_TRIM_S, lambda: self._trim(e))
            else:
                self._trim(e)
        if results and e.db.settings.checkpoint_interval_s > 0:
            if e.checkpoint_timer is not None:
                e.checkpoint_timer.cancel()
            e.checkpoint_timer = self.scheduler.call_later(e.db.settings.checkpoint_interval_s + 0.5,
                                                           lambda: self._trigger_sync(e))

    def _trim(self, e: DBEntry) -> None:
        e.db.trim()
        # Freed connection memory stays in the allocator's arenas. malloc_trim walks every arena, so with
        # many databases quieting down one after another it runs at most once per RELEASE_DELAY_S, for
        # all of them.
        with self._release_lock:
            if self._release_pending:
                return
            self._release_pending = True
        self.scheduler.call_later(RELEASE_DELAY_S, self._release_memory)

    def _release_memory(self) -> None:
        with self._release_lock:
            self._release_pending = False
        release_free_memory()

    # ---------------------------------------------------------------------------------------- upload

    def _trigger_upload(self, e: DBEntry, r: Replica) -> None:
        if self.background and self.scheduler is not None:
            self.scheduler.trigger(("upload", id(r)), lambda: self._upload_job(e, r))

    def _upload_job(self, e: DBEntry, r: Replica) -> None:
        if self.closing.is_set() or e.stopped:
            return
        try:
            r.sync()
        except (BackendError, OSError, LTXError, SyncError) as ex:
            self._notify_uploaded()
            delay = r.backoff_s()
            attrs = {"db": os.path.basename(e.db.path), "replica": r.client.type, "error": str(ex),
                     "retry_in": Duration(int(delay * 1e9))}
            _log_failure(r, ex, "replica sync error", "replica access denied; check its credentials and permissions",
                         attrs)
            e.upload_retry[id(r)] = self.scheduler.call_later(delay, lambda: self._trigger_upload(e, r))
            return
        e.upload_retry.pop(id(r), None)
        self._notify_uploaded()
        if r.reported_auth_error is not None:
            r.reported_auth_error = None
            log.info("replica access restored", db=os.path.basename(e.db.path), replica=r.client.type)
        if r.pos is not None and r.pos < e.db.txid:
            self._trigger_upload(e, r)  # more than one batch behind

    def _notify_uploaded(self) -> None:
        with self.uploaded:
            self.uploaded.notify_all()

    # ------------------------------------------------------------------------------------ once/close

    def sync_all_once(self) -> None:
        """-once: sync every database and upload everything, in the foreground."""
        for e in list(self.entries):
            if not e.ready:
                continue
            e.db.sync()
            for r in e.replicas:
                while (r.pos or 0) < e.db.txid or r.pos is None:
                    if r.sync() == 0 and (r.pos or 0) >= e.db.txid:
                        break

    def close(self) -> None:
        """Final sync of every database and a final upload retried until shutdown-sync-timeout."""
        self.closing.set()
        # Past shutdown-sync-timeout (or at a second Ctrl+C) the SDKs stop retrying, so a call stuck in
        # their back-off against an unreachable server cannot hold the shutdown for minutes.
        threading.Thread(target=self._give_up_at_deadline, name="litestream-shutdown-deadline",
                         daemon=True).start()
        if self.watcher is not None:
            self.watcher.close()
        if self.scheduler is not None:
            self.scheduler.wait_idle(timeout=60)
        for e in list(self.entries):
            if e.ready and not e.stopped:
                try:
                    e.db.sync()
                except (SyncError, OSError, LTXError) as ex:
                    log.error("final sync failed", db=os.path.basename(e.db.path), error=str(ex))
                self._final_upload(e, self.shutdown_sync_timeout_s)
            e.db.close(final_sync=False)
        if self.scheduler is not None:
            self.scheduler.stop()

    def _give_up_at_deadline(self) -> None:
        self.abort_shutdown.wait(self.shutdown_sync_timeout_s)
        for e in list(self.entries):
            for r in e.replicas:
                stop = getattr(r.client, "stop_retrying", None)
                if stop is not None:
                    stop()

    def _final_upload(self, e: DBEntry, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for r in e.replicas:
            while True:
                try:
                    r.sync()
                    if r.pos is not None and r.pos >= e.db.txid:
                        break
                    continue
                except (BackendError, OSError, LTXError, SyncError) as ex:
                    if self.abort_shutdown.is_set() or time.monotonic() >= deadline:
                        log.error("shutdown sync failed", db=os.path.basename(e.db.path), replica=r.client.type,
                                  error=str(ex))
                        break
                    log.warn("shutdown sync failed, retrying (press Ctrl+C again to skip)",
                             db=os.path.basename(e.db.path), error=str(ex))
                    self.abort_shutdown.wait(self.shutdown_sync_interval_s)
                    if self.abort_shutdown.is_set():
                        log.warn("shutdown sync skipped by user interrupt")
                        break


def _log_failure(holder, ex: Exception, msg: str, denied_msg: str, attrs: dict) -> None:
    """A failure at ERROR; a credential or permission error (which no retry fixes) only the first time it
    is seen on this holder (a database or replica), then at DEBUG until it changes or is fixed."""
    if not isinstance(ex, AuthError):
        log.error(msg, **attrs)
    elif holder.reported_auth_error != str(ex):
        holder.reported_auth_error = str(ex)
        log.error(denied_msg, **attrs)
    else:
        log.debug(msg, **attrs)
