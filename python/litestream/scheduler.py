"""The one scheduler for per-database jobs: a timer heap and a small worker pool.

A job has a key; a key never runs twice at once, and triggering it while it runs makes it run once more
afterwards (triggers coalesce). Jobs run in named pools: "sync" (WAL syncs, uploads: short and latency
sensitive) and "heavy" (compaction, snapshots, retention: long), each with its own workers, so a long
compaction never delays a sync. Idle means no thread wakes up: timers sleep on a condition until the
earliest deadline, workers on a queue."""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable, Hashable

from litestream import logs

log = logs.get_logger("scheduler")


class Timer:
    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


SYNC_POOL = "sync"
HEAVY_POOL = "heavy"


class Scheduler:
    def __init__(self, workers: int = 4, heavy_workers: int = 1) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._queues: dict[str, queue.SimpleQueue] = {SYNC_POOL: queue.SimpleQueue(), HEAVY_POOL: queue.SimpleQueue()}
        self._state: dict[Hashable, str] = {}  # key -> "queued" | "running" | "rerun"
        self._jobs: dict[Hashable, tuple[str, Callable[[], None]]] = {}
        self._stopped = False
        self._threads = [threading.Thread(target=self._timer_loop, name="litestream-timers", daemon=True)]
        self._pools = [SYNC_POOL] * max(1, workers) + [HEAVY_POOL] * max(1, heavy_workers)
        self._threads += [threading.Thread(target=self._worker, args=(pool,), name=f"litestream-{pool}-{i}",
                                           daemon=True) for i, pool in enumerate(self._pools)]
        self._idle = threading.Condition()
        self._busy = 0
        self._local = threading.local()  # the key of the job running in this worker thread
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------------------------------ timers

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self.call_at(time.monotonic() + max(0.0, delay), fn)

    def call_at(self, when: float, fn: Callable[[], None]) -> Timer:
        t = Timer(when, fn)
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), t))
            self._cond.notify()
        return t

    def _timer_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, t = heapq.heappop(self._heap)
            if not t.cancelled:
                try:
                    t.fn()
                except Exception as e:  # a timer callback must never kill the timer thread
                    log.error("timer callback failed", error=repr(e))

    # -------------------------------------------------------------------------------------------- jobs

    def trigger(self, key: Hashable, fn: Callable[[], None], pool: str = SYNC_POOL) -> None:
        """Run fn for key soon in `pool`; coalesces with a queued or running job of the same key."""
        with self._cond:
            if self._stopped:
                return
            self._jobs[key] = (pool, fn)
            state = self._state.get(key)
            if state == "running":
                self._state[key] = "rerun"
                return
            if state in ("queued", "rerun"):
                return
            self._state[key] = "queued"
        self._queues[pool].put(key)

    def _worker(self, pool: str) -> None:
        q = self._queues[pool]
        while True:
            key = q.get()
            if key is None:
                return
            with self._cond:
                self._state[key] = "running"
                _, fn = self._jobs[key]
            with self._idle:
                self._busy += 1
            self._local.key = key
            try:
                fn()
            except Exception as e:  # the job owner handles its errors; this only keeps the worker alive
                log.error("job failed", job=str(key), error=repr(e))
            finally:
                self._local.key = None
                with self._cond:
                    again = self._state.get(key) == "rerun"
                    if again:
                        self._state[key] = "queued"
                    else:
                        self._state.pop(key, None)
                if again:
                    self._queues[self._jobs[key][0]].put(key)
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (tests, -once)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while True:
                with self._cond:
                    pending = bool(self._state)
                if not pending and self._busy == 0:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(0.05 if remaining is None else min(0.05, remaining))

    def wait_keys(self, keys: list[Hashable], timeout: float | None = None) -> bool:
        """Block until none of these jobs is queued or running (stop/unregister of one database)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while True:
                with self._cond:
                    pending = any(k in self._state for k in keys)
                if not pending:
                    return True
                if threading.current_thread().name.startswith("litestream-") and self._running_here(keys):
                    return True  # called from the job itself: waiting would never end
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(0.05 if remaining is None else min(0.05, remaining))

    def _running_here(self, keys: list[Hashable]) -> bool:
        return getattr(self._local, "key", None) in keys

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for pool in self._pools:
            self._queues[pool].put(None)
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=30)
