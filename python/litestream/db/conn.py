"""Litestream's own SQLite connections to one database (apsw, never the stdlib sqlite3).

Like the reference: WAL mode, wal_autocheckpoint off, SQLITE_FCNTL_PERSIST_WAL, the `_litestream_seq` and
`_litestream_lock` tables (same SQL, so restored databases match), a long-running read transaction that
keeps other connections from checkpointing past what has been replicated, and a barrier (the write lock)
taken around our own checkpoints.

Two read connections take turns holding that read transaction: a fresh one is begun before the old one is
released, so at every moment some read transaction pins the WAL at or before the replicated position.
SQLite never copies WAL frames newer than the oldest reader's snapshot into the database file, so the
database file only ever holds replicated content while we run."""

from __future__ import annotations

import ctypes

import apsw

SQLITE_FCNTL_PERSIST_WAL = 10

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


class Connections:
    def __init__(self, path: str, busy_timeout_ms: int, wal_size_limit: int = -1) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.wal_size_limit = wal_size_limit
        self.writer: apsw.Connection | None = None
        self.checkpointer: apsw.Connection | None = None
        self.readers: list[apsw.Connection] = []
        self.active_reader: int | None = None
        self.page_size = 0

    def _connect(self) -> apsw.Connection:
        conn = apsw.Connection(self.path, flags=apsw.SQLITE_OPEN_READWRITE)
        conn.set_busy_timeout(self.busy_timeout_ms)
        _query(conn, "PRAGMA wal_autocheckpoint = 0")
        _persist_wal(conn)
        return conn

    def open(self) -> None:
        try:
            self.writer = self._connect()
            mode = _query(self.writer, "PRAGMA journal_mode = wal")[0][0]
            if str(mode).lower() != "wal":
                raise ConnError(f'enable wal failed, mode="{mode}"')
            # Our own restarts of the WAL (after our checkpoints) trim the file back to this size.
            if self.wal_size_limit >= 0:
                _query(self.writer, f"PRAGMA journal_size_limit = {int(self.wal_size_limit)}")
            _query(self.writer, CREATE_SEQ)
            _query(self.writer, CREATE_LOCK)
            self.page_size = int(_query(self.writer, "PRAGMA page_size")[0][0])
            self.checkpointer = self._connect()
            self.readers = [self._connect(), self._connect()]
            self.begin_read(0)
        except apsw.Error as e:
            self.close()
            raise ConnError(f"{type(e).__name__}: {e}") from None

    # ----------------------------------------------------------------------------- read transactions

    def begin_read(self, i: int) -> None:
        conn = self.readers[i]
        if conn.in_transaction:
            return
        _query(conn, "BEGIN")
        _query(conn, "SELECT COUNT(1) FROM _litestream_seq")
        if self.active_reader is None:
            self.active_reader = i

    def end_read(self, i: int) -> None:
        conn = self.readers[i]
        if conn.in_transaction:
            _query(conn, "ROLLBACK")
        if self.active_reader == i:
            self.active_reader = None

    def start_rotation(self) -> int:
        """Begin a read transaction on the spare reader (its snapshot is the current WAL end) while the
        current one stays; returns the spare's index. Call finish_rotation after syncing past it."""
        spare = 1 - (self.active_reader or 0) if self.active_reader is not None else 0
        self.begin_read(spare)
        return spare

    def finish_rotation(self, spare: int) -> None:
        old = self.active_reader
        if old is not None and old != spare:
            self.end_read(old)
        self.active_reader = spare

    def release_reads(self) -> None:
        for i in range(len(self.readers)):
            self.end_read(i)

    # ------------------------------------------------------------------------------------------ writes

    def bump_seq(self) -> None:
        with self.writer:
            _query(self.writer, BUMP_SEQ)

    def try_barrier(self, timeout_ms: int) -> bool:
        """Take the write lock (BEGIN IMMEDIATE) within timeout_ms; False if writers kept it busy."""
        self.writer.set_busy_timeout(timeout_ms)
        try:
            _query(self.writer, "BEGIN IMMEDIATE")
            return True
        except apsw.BusyError:
            return False
        finally:
            self.writer.set_busy_timeout(self.busy_timeout_ms)

    def end_barrier(self) -> None:
        if self.writer is not None and self.writer.in_transaction:
            _query(self.writer, "ROLLBACK")

    def checkpoint(self, mode: str) -> tuple[int, int, int]:
        """PRAGMA wal_checkpoint(mode) on the checkpoint connection: (busy, log frames, checkpointed)."""
        row = _query(self.checkpointer, f"PRAGMA wal_checkpoint({mode})")[0]
        return int(row[0]), int(row[1]), int(row[2])

    def close(self) -> None:
        for conn in [*self.readers, self.checkpointer, self.writer]:
            if conn is None:
                continue
            try:
                if conn.in_transaction:
                    _query(conn, "ROLLBACK")
                conn.close()
            except apsw.Error:
                pass
        self.readers = []
        self.writer = self.checkpointer = None
        self.active_reader = None
