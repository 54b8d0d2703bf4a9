"""Litestream's own SQLite connections to one database (apsw, never the stdlib sqlite3).

Like the reference: WAL mode, wal_autocheckpoint off, SQLITE_FCNTL_PERSIST_WAL, the `_litestream_seq` and
`_litestream_lock` tables (same SQL, so restored databases match), a long-running read transaction that
keeps other connections from checkpointing past what has been replicated, and a barrier (the write lock)
taken around our own checkpoints.

Only the read connection stays open; connections for writes, checkpoints and read-transaction rotation
are opened for the moment they are needed (a SQLite connection costs ~100 KiB, which adds up with many
databases). Closing them is safe while the reader holds its locks: SQLite shares POSIX locks between
connections of one process and keeps descriptors that still have locks.

Rotation: a fresh read transaction begins on a spare connection before the old one ends, so at every
moment some read transaction pins the WAL at or before the replicated position. SQLite never copies WAL
frames newer than the oldest reader's snapshot into the database file, so the database file only ever
holds replicated content while we run."""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Callable, Iterator

import apsw

SQLITE_FCNTL_PERSIST_WAL = 10
STATEMENT_CACHE = 8
BARRIER_POLL_S = 0.0002

CREATE_SEQ = "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);"
CREATE_LOCK = "CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);"
BUMP_SEQ = "INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET seq = seq + 1"


class ConnError(Exception):
    pass


def _persist_wal(conn: apsw.Connection) -> None:
    flag = ctypes.c_int(1)
    conn.file_control("main", SQLITE_FCNTL_PERSIST_WAL, ctypes.addressof(flag))


def _query(conn: apsw.Connection, sql: str) -> list[tuple]:
    return list(conn.execute(sql))


def _begin_read(conn: apsw.Connection) -> None:
    _query(conn, "BEGIN")
    _query(conn, "SELECT COUNT(1) FROM _litestream_seq")


def _end(conn: apsw.Connection) -> None:
    if conn.in_transaction:
        _query(conn, "ROLLBACK")


class Connections:
    def __init__(self, path: str, busy_timeout_ms: int, wal_size_limit: int = -1) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.wal_size_limit = wal_size_limit
        self.reader: apsw.Connection | None = None
        self.page_size = 0
        self._idle: list[apsw.Connection] = []  # short-lived connections kept while the database is busy

    def _connect(self) -> apsw.Connection:
        conn = apsw.Connection(self.path, flags=apsw.SQLITE_OPEN_READWRITE, statementcachesize=STATEMENT_CACHE)
        try:
            conn.set_busy_timeout(self.busy_timeout_ms)
            _query(conn, "PRAGMA cache_size = -64")
            _query(conn, "PRAGMA wal_autocheckpoint = 0")
            _persist_wal(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def open(self) -> None:
        try:
            with self.writer() as w:
                mode = _query(w, "PRAGMA journal_mode = wal")[0][0]
                if str(mode).lower() != "wal":
                    raise ConnError(f'enable wal failed, mode="{mode}"')
                _query(w, CREATE_SEQ)
                _query(w, CREATE_LOCK)
                self.page_size = int(_query(w, "PRAGMA page_size")[0][0])
            self.reader = self._connect()
            _begin_read(self.reader)
        except apsw.Error as e:
            self.close()
            raise ConnError(f"{type(e).__name__}: {e}") from None

    # ------------------------------------------------------------------------------ short-lived ones

    @contextlib.contextmanager
    def spare(self) -> Iterator[apsw.Connection]:
        """A connection for the moment: writes, checkpoints, rotation. Returned to a small pool that
        trim() empties once the database is idle again."""
        conn = self._idle.pop() if self._idle else self._connect()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            try:
                _end(conn)
            except apsw.Error:
                ok = False
            self._release(conn, ok)

    @contextlib.contextmanager
    def writer(self) -> Iterator[apsw.Connection]:
        """A connection for writes. Our own restarts of the WAL trim the file to wal_size_limit."""
        with self.spare() as conn:
            if self.wal_size_limit >= 0:
                _query(conn, f"PRAGMA journal_size_limit = {int(self.wal_size_limit)}")
            yield conn

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def trim(self) -> None:
        while self._idle:
            with contextlib.suppress(apsw.Error):
                self._idle.pop().close()

    # ----------------------------------------------------------------------------- read transaction

    def end_read(self) -> None:
        if self.reader is not None:
            _end(self.reader)

    def begin_read(self) -> None:
        if self.reader is not None and not self.reader.in_transaction:
            _begin_read(self.reader)

    def rotate(self, sync: Callable[[], object]) -> None:
        """Move the read transaction forward without the WAL ever being pinned past what is replicated:
        a pooled connection pins the current end, sync() replicates past it, then it becomes the reader
        and the old pin is let go. One sync, no gap."""
        conn = self._idle.pop() if self._idle else self._connect()
        try:
            _begin_read(conn)
            sync()
        except BaseException:
            with contextlib.suppress(apsw.Error):
                _end(conn)
            self._idle.append(conn)
            raise
        old, self.reader = self.reader, conn
        if old is not None:
            try:
                _end(old)
                self._release(old, True)
            except apsw.Error:
                old.close()

    def _release(self, conn: apsw.Connection, reusable: bool) -> None:
        """Back to the pool (at most two kept), or closed."""
        if reusable and len(self._idle) < 2:
            self._idle.append(conn)
        else:
            conn.close()

    # ----------------------------------------------------------------------------------------- writes

    def bump_seq(self) -> None:
        with self.writer() as w, w:
            _query(w, BUMP_SEQ)

    @staticmethod
    def try_barrier(conn: apsw.Connection, timeout_ms: int, busy_timeout_ms: int) -> bool:
        """Take the write lock (BEGIN IMMEDIATE) within timeout_ms; False if writers kept it busy.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries; a busy writer holds the lock
        almost all the time and frees it for microseconds between transactions, so those sleeps mostly
        miss the gaps, and every millisecond spent waiting is more WAL to copy while writers are locked
        out. Poll every BARRIER_POLL_S instead."""
        deadline = time.monotonic() + timeout_ms / 1000

        def retry(_calls: int) -> bool:
            if time.monotonic() >= deadline:
                return False
            time.sleep(BARRIER_POLL_S)
            return True

        conn.set_busy_handler(retry)
        try:
            _query(conn, "BEGIN IMMEDIATE")
            return True
        except apsw.BusyError:
            return False
        finally:
            conn.set_busy_timeout(busy_timeout_ms)

    @staticmethod
    def checkpoint_on(conn: apsw.Connection, mode: str) -> tuple[int, int, int]:
        """PRAGMA wal_checkpoint(mode): (busy, log frames, checkpointed frames)."""
        row = _query(conn, f"PRAGMA wal_checkpoint({mode})")[0]
        return int(row[0]), int(row[1]), int(row[2])

    def close(self) -> None:
        self.trim()
        if self.reader is not None:
            with contextlib.suppress(apsw.Error):
                _end(self.reader)
                self.reader.close()
            self.reader = None
