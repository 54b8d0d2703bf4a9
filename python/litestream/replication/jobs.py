"""Compaction, snapshots and retention as periodic jobs on the one scheduler.

One timer per level for the whole process (not per database, so thousands of idle databases cost no
timers), scheduled as the reference does: the first run at start, then at each wall-clock multiple of
the level's interval (UTC). A timer marks the task due on every ready database and triggers that
database's one maintenance job in the scheduler's heavy pool: at most one maintenance job per database
at a time, a bounded number per process, never in the way of a WAL sync or an upload. A job runs its
due tasks in order (lower levels first, then the snapshot, then L0 retention) for every replica of its
database, each replica with its own levels and retention."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from litestream import logs
from litestream.backends.base import BackendError
from litestream.db.sync import SyncError
from litestream.ltx import SNAPSHOT_LEVEL, LTXError, format_txid
from litestream.replication.compactor import Compactor, NoCompaction, max_file
from litestream.replication.retention import (
    NEVER,
    Deleter,
    enforce_level_retention,
    enforce_retention_by_txid,
    enforce_snapshot_retention,
    l0_plan,
)
from litestream.replication.snapshot import upload_snapshot
from litestream.scheduler import HEAVY_POOL, Scheduler

log = logs.get_logger("store")

L0_RETENTION = "l0-retention"
LOCAL_PRUNE = "local-l0-prune"  # a memo key of prune_local
RETRY_MAX_S = 60.0  # a failed task is taken again after 1 s, 2 s, ... at most this, whatever its interval
_FAILURES = (BackendError, OSError, LTXError, SyncError)


@dataclass(frozen=True)
class Level:
    level: int  # 1..8, or SNAPSHOT_LEVEL
    interval_ns: int
    retention_ns: int | None = None  # levels[].retention: None keeps every file a higher level has not covered


@dataclass
class Policy:
    """The global `levels:`, `snapshot:`, `l0-retention*` and `retention.enabled` settings."""

    levels: list[Level] = field(default_factory=list)  # compaction levels, L1 first
    snapshot_interval_ns: int = 24 * 3600 * 10**9
    snapshot_retention_ns: int = 24 * 3600 * 10**9
    l0_retention_ns: int = 5 * 60 * 10**9
    l0_retention_check_interval_ns: int = 15 * 10**9
    retention_enabled: bool = True

    def schedules(self) -> list[Level]:
        return [*self.levels, Level(SNAPSHOT_LEVEL, self.snapshot_interval_ns)]


# How recent a full image [1, N] must be to serve as a replica's first snapshot although the database has
# moved on: the initial sync wrote it seconds before the first snapshot pass; an older one would make the
# first snapshot stale.
FRESH_BASE_NS = 5 * 60 * 10**9
DB_INIT_TIMEOUT_NS = 30 * 10**9


def prev_boundary_ns(now_ns: int, interval_ns: int) -> int:
    """time.Truncate(interval) for a UTC wall clock: the latest multiple of interval at or before now."""
    return now_ns - now_ns % interval_ns


class Maintenance:
    """The maintenance jobs of every database of a Store. `entries` are the Store's DBEntry objects."""

    def __init__(self, scheduler: Scheduler, entries: list, policy: Policy, closing: threading.Event,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.scheduler = scheduler
        self.entries = entries
        self.policy = policy
        self.closing = closing
        self.now_ns = now_ns
        self._due: dict[int, set] = {}
        self._lock = threading.Lock()
        self.started = False
        self._failures: dict[tuple, int] = {}  # consecutive failures per (database, replica, task)
        self._not_ready: dict[tuple, int] = {}  # when a task first found its database not ready
        self._waiting: dict[int, set] = {}  # tasks of a database that is not ready, retried together
        # Idle costs nothing: a task that found no work remembers the state it saw and until when that
        # answer holds; while both hold, its ticks make no requests at all.
        self._quiet: dict[tuple, tuple[tuple, int]] = {}
        self._writes: dict[tuple, int] = {}  # files written or deleted per (database, replica)

    # --------------------------------------------------------------------------------------- timers

    def start(self) -> None:
        self.started = True
        for lv in self.policy.schedules():
            if lv.interval_ns > 0:
                self._tick(lv.level, lv.interval_ns)
        if self.policy.l0_retention_ns > 0 and self.policy.l0_retention_check_interval_ns > 0:
            self._tick_l0()

    def _tick(self, task: int, interval_ns: int) -> None:
        if self.closing.is_set():
            return
        self.mark_due(task)
        now = self.now_ns()
        delay = (prev_boundary_ns(now, interval_ns) + interval_ns - now) / 1e9
        self.scheduler.call_later(delay, lambda: self._tick(task, interval_ns))

    def _tick_l0(self) -> None:
        if self.closing.is_set():
            return
        # Every check interval (15 s) for every database: those whose replicas and local L0 files have not
        # changed since their last pass found nothing and can find nothing yet, so they get no job at all.
        self.mark_due(L0_RETENTION, [e for e in self.entries if not self._l0_quiet(e)])
        self.scheduler.call_later(self.policy.l0_retention_check_interval_ns / 1e9, self._tick_l0)

    def mark_due(self, task: int | str, entries: list | None = None) -> None:
        for e in entries if entries is not None else self.entries:
            if not e.ready:
                continue  # a database that is not open yet gets its first runs when it is (see ready())
            with self._lock:
                self._due.setdefault(id(e), set()).add(task)
            self.scheduler.trigger(("maintenance", id(e)), lambda e=e: self._run(e), pool=HEAVY_POOL)

    def ready(self, e) -> None:
        """A database became ready after start: its first runs are now, as at start."""
        for lv in self.policy.schedules():
            if lv.interval_ns > 0:
                self.mark_due(lv.level, [e])

    # ----------------------------------------------------------------------------------------- jobs

    def forget(self, e) -> None:
        """A database left the store: drop what was kept for it."""
        with self._lock:
            self._due.pop(id(e), None)
            self._waiting.pop(id(e), None)
        for d in (self._failures, self._not_ready, self._quiet, self._writes):
            for k in [k for k in d if k[0] == id(e)]:
                d.pop(k, None)

    def _run(self, e) -> None:
        while not self.closing.is_set() and not getattr(e, "stopped", False):
            with self._lock:
                due = self._due.get(id(e))
                if not due:
                    return
                task = min(due, key=_task_order)
                due.discard(task)
            for r in e.replicas:
                if self.closing.is_set():
                    return
                self.run_task(e, r, task)

    def run_task(self, e, r, task: int | str) -> None:
        name = os.path.basename(e.db.path)
        key = (id(e), id(r), task)
        if task != L0_RETENTION and (not self._ready_for(e, r, task, key) or self._requeue_waiting(e, task)):
            return
        try:
            if task == L0_RETENTION:
                self.l0_retention(e, r)
            elif task == SNAPSHOT_LEVEL:
                self.snapshot(e, r)
                self.snapshot_retention(e, r)
            else:
                if self.compact(e, r, task) is not None and task == 1:
                    self.l0_retention(e, r)
        except SyncError as ex:
            # The database moved or another process is checkpointing: not a failure, the task is simply
            # taken again shortly instead of at the next interval (24h for snapshots by default).
            log.warn("snapshot deferred", db=name, replica=r.name, reason=str(ex))
            self._retry(e, task, key)
        except _FAILURES as ex:
            what = {L0_RETENTION: "l0 retention enforcement failed", SNAPSHOT_LEVEL: "snapshot failed"}
            log.error(what.get(task, "compaction failed"), db=name, replica=r.name, level=_level_attr(task),
                      error=str(ex))
            self._retry(e, task, key)
        else:
            self._failures.pop(key, None)

    def _ready_for(self, e, r, task: int | str, key: tuple) -> bool:
        """The reference's DBNotReady: a database without a page size is retried every second, with a
        warning after 30 s. Here also one whose first sync has not reached this replica yet: the first
        snapshot pass at start would otherwise find nothing to take, or encode the database while the
        initial image is on its way."""
        if e.db.page_size and e.db.txid and r.pos:
            self._not_ready.pop(key, None)
            return True
        first = self._not_ready.setdefault(key, self.now_ns())
        if self.now_ns() - first > DB_INIT_TIMEOUT_NS:
            self._not_ready.pop(key, None)
            log.warn("timeout waiting for db initialization", level=_level_attr(task), dbs=f"[{e.db.path}]",
                     timeout="30s", hint="database may have corrupted local state or blocked transactions; "
                     "try removing -litestream directory and restarting")
            return False
        with self._lock:
            waiting = self._waiting.setdefault(id(e), set())
            schedule = not waiting
            waiting.add(task)
        if schedule and self.scheduler is not None and not self.closing.is_set():
            self.scheduler.call_later(1.0, lambda: self._wake_waiting(e))
        return False

    def _requeue_waiting(self, e, task: int | str) -> bool:
        """The database is ready and tasks wait for it: all of them, this one included, are due now and run
        in their order. True when this one was put back."""
        with self._lock:
            waiting = self._waiting.pop(id(e), None)
            if not waiting:
                return False
            self._due.setdefault(id(e), set()).update(waiting | {task})
        return True

    def _wake_waiting(self, e) -> None:
        """Every task that waited for the database is due again at once, so they run in their order (the
        snapshot before the levels) instead of in the order their retries happen to fire."""
        with self._lock:
            tasks = self._waiting.pop(id(e), set())
            if not tasks:
                return
            self._due.setdefault(id(e), set()).update(tasks)
        self.scheduler.trigger(("maintenance", id(e)), lambda: self._run(e), pool=HEAVY_POOL)

    def _retry(self, e, task: int | str, key: tuple) -> None:
        n = self._failures[key] = self._failures.get(key, 0) + 1
        if self.scheduler is not None and not self.closing.is_set():
            self.scheduler.call_later(min(RETRY_MAX_S, 2.0 ** (n - 1)), lambda: self.mark_due(task, [e]))

    def _too_early(self, r, level: int, interval_ns: int) -> bool:
        """The level's newest file was made after the previous boundary (ErrCompactionTooEarly)."""
        newest = max_file(r.client, level)
        return newest is not None and newest.created_at_ns > prev_boundary_ns(self.now_ns(), interval_ns)

    def compact(self, e, r, level: int):
        lv = next((x for x in self.policy.levels if x.level == level), None)
        if lv is None or e.db.page_size == 0:
            return None
        name = os.path.basename(e.db.path)
        before = self._state(e, r)
        if self._is_quiet(e, r, level, before):
            log.debug("no compaction", db=name, level=level)
            return None
        if self._too_early(r, level, lv.interval_ns):
            log.debug("no compaction", db=name, level=level, reason="too early")
            return None
        try:
            info = Compactor(r.client, self._local_opener(e)).compact(level, level - 1)
        except NoCompaction:
            log.debug("no compaction", db=name, level=level)
            # Nothing new to compact until something is uploaded or written; levels[].retention may still
            # let files go: covered since by a higher level (a write, which changes the state) or aged (its
            # wake-up). An idle database's old files go too, not only at the next write.
            self._set_quiet(e, r, level, before, self._level_retention(e, r, lv))
            return None
        self._wrote(e, r)
        log.info("compaction complete", db=name, replica=r.name, level=level,
                 **{"txid.min": format_txid(info.min_txid), "txid.max": format_txid(info.max_txid)}, size=info.size)
        self._level_retention(e, r, lv)
        return info

    def _level_retention(self, e, r, lv: Level) -> int:
        """levels[].retention for the level; when to look again (see enforce_level_retention)."""
        if lv.retention_ns is None:
            return NEVER
        higher = [x.level for x in self.policy.levels if x.level > lv.level]
        deleter = self._deleter(r)
        wake = enforce_level_retention(r.client, deleter, lv.level, lv.retention_ns, higher, self.now_ns())
        if deleter.deleted:
            self._wrote(e, r)
        return wake

    def snapshot(self, e, r, force: bool = False):
        if e.db.page_size == 0 or e.db.txid == 0:
            return None
        if not force:
            before = self._state(e, r)
            if self._is_quiet(e, r, SNAPSHOT_LEVEL, before):
                return None
            if self._too_early(r, SNAPSHOT_LEVEL, self.policy.snapshot_interval_ns):
                return None
            newest = max_file(r.client, SNAPSHOT_LEVEL)
            if newest is not None and newest.max_txid >= e.db.txid:
                self._set_quiet(e, r, SNAPSHOT_LEVEL, before)
                return None
        info = self._snapshot_from_levels(e, r, exact=force) or upload_snapshot(e.db, r.client)
        self._wrote(e, r)
        log.info("snapshot complete", db=os.path.basename(e.db.path), replica=r.name,
                 txid=format_txid(info.max_txid), size=info.size)
        return info

    def _snapshot_from_levels(self, e, r, exact: bool = False):
        """A file [1, N] of a lower level is a snapshot at N already (a snapshot, or a merge starting with
        one, holds every page): store it again as the L9 file (the file backend hard-links it) instead of
        reading and uploading the whole database once more, when N is the database's position, or when
        the replica has no snapshot yet and the file was written moments ago (the initial sync's full
        image, which the first snapshot pass at start would otherwise duplicate while the application
        keeps writing). exact: only at the database's position (-force-snapshot)."""
        images = []
        for level in (0, *(lv.level for lv in self.policy.levels)):
            first = next(iter(r.client.ltx_files(level, 0, False)), None)
            if first is not None and first.min_txid == 1 and first.max_txid <= e.db.txid:
                images.append(first)
        if not images:
            return None
        best = max(images, key=lambda i: i.max_txid)
        if best.max_txid != e.db.txid and (exact or max_file(r.client, SNAPSHOT_LEVEL) is not None
                                           or best.created_at_ns < self.now_ns() - FRESH_BASE_NS):
            return None
        return Compactor(r.client).copy(best, SNAPSHOT_LEVEL)

    def snapshot_retention(self, e, r) -> None:
        retention = r.settings.retention_ns
        if retention is None:
            retention = self.policy.snapshot_retention_ns
        before = self._state(e, r)
        if self._is_quiet(e, r, "snapshot-retention", before):
            return
        deleter = self._deleter(r)
        floor = enforce_snapshot_retention(r.client, deleter, retention, self.now_ns())
        for lv in self.policy.levels:
            enforce_retention_by_txid(r.client, deleter, lv.level, floor)
        # The next pass can only find something once the oldest snapshot (never the newest) ages out.
        snaps = sorted(i.created_at_ns for i in r.client.ltx_files(SNAPSHOT_LEVEL, 0, False))
        self._set_quiet(e, r, "snapshot-retention", before, snaps[0] + retention if len(snaps) > 1 else NEVER)

    # ------------------------------------------------------------------------------------ idle guard

    def _state(self, e, r) -> tuple:
        return (r.pos, e.db.txid, self._writes.get((id(e), id(r)), 0))

    def _wrote(self, e, r) -> None:
        k = (id(e), id(r))
        self._writes[k] = self._writes.get(k, 0) + 1

    def _is_quiet(self, e, r, task: int | str, state: tuple | None = None) -> bool:
        return self._holds((id(e), id(r), task), state if state is not None else self._state(e, r))

    def _holds(self, key: tuple, state: tuple) -> bool:
        """The memo under key was taken in this state and has not expired."""
        memo = self._quiet.get(key)
        return memo is not None and memo[0] == state and self.now_ns() < memo[1]

    def _set_quiet(self, e, r, task: int | str, before: tuple, until_ns: int = NEVER) -> None:
        """Nothing to do for task until the state changes from before, taken when the job began: an upload
        or a commit while it ran (which it may not have seen) changes the state, so the next tick looks.
        Its own deletes are counted in: one database's jobs run one at a time, so the count moved only
        by what this job did, which it saw."""
        pos, txid, _ = before
        self._quiet[(id(e), id(r), task)] = ((pos, txid, self._writes.get((id(e), id(r)), 0)), until_ns)

    def l0_retention(self, e, r) -> None:
        before = self._state(e, r)
        if not self._is_quiet(e, r, L0_RETENTION, before):
            plan = l0_plan(r.client, self.policy.l0_retention_ns, self.now_ns())
            if plan.doomed:
                self._deleter(r).delete(plan.doomed)
                self._wrote(e, r)
            if plan.counts is not None:
                r.l0_counts = plan.counts
            self._set_quiet(e, r, L0_RETENTION, before, plan.wake_ns)
        self.prune_local(e)

    def _local_state(self, e) -> tuple:
        return (tuple(r.pos for r in e.replicas), e.db.txid)

    def _l0_quiet(self, e) -> bool:
        """Neither a replica's L0 retention nor the local prune can find anything before its memo expires."""
        if not all(self._is_quiet(e, r, L0_RETENTION) for r in e.replicas):
            return False
        return self._holds((id(e), 0, LOCAL_PRUNE), self._local_state(e))

    def prune_local(self, e) -> None:
        """Local L0 files go once every replica has them and l0-retention has passed; the newest stays (it is
        where replication resumes after a restart)."""
        positions = [r.pos for r in e.replicas]
        if not positions or any(p is None for p in positions):
            return
        key, state = (id(e), 0, LOCAL_PRUNE), self._local_state(e)
        if self._holds(key, state):
            return  # nothing moved and no file has aged enough since the last listing
        now = self.now_ns()
        upto = min(positions)
        threshold = now - self.policy.l0_retention_ns
        meta = e.db.meta
        wake = NEVER  # until the state changes: every file left is the newest or not on every replica yet
        for t in meta.l0_txids()[:-1]:
            if t > upto:
                break
            path = meta.l0_path(t)
            try:
                mtime = os.stat(path).st_mtime_ns
                if mtime > threshold:
                    wake = mtime + self.policy.l0_retention_ns
                    break
                os.remove(path)
            except FileNotFoundError:
                continue
        self._quiet[key] = (state, wake)

    def _deleter(self, r) -> Deleter:
        return Deleter(r.client, self.policy.retention_enabled)

    @staticmethod
    def _local_opener(e) -> Callable[[int, int, int], str | None]:
        def local(level: int, min_txid: int, max_txid: int) -> str | None:
            return e.db.meta.l0_path(min_txid) if level == 0 and min_txid == max_txid else None
        return local


def _task_order(task: int | str) -> int:
    # The snapshot goes first: at start it can take the initial sync's image as it is, and the first
    # compactions then leave that image out (Compactor._past_snapshot) instead of copying it per level.
    if task == SNAPSHOT_LEVEL:
        return 0
    return 100 if task == L0_RETENTION else int(task)


def _level_attr(task: int | str) -> int:
    return 0 if task == L0_RETENTION else int(task)
