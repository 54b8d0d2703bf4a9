"""Make file replicas with the REAL `litestream replicate` and record what every TXID must restore to.

This is a library for interop tests, not a test module. The flow of `make_reference_replica`:

1. create `<workdir>/db.sqlite` with apsw (page size set before the first write, WAL mode), run the
   scenario's setup steps, checkpoint(TRUNCATE), keep a copy as `initial.sqlite`;
2. start the reference `litestream replicate` on a config written to `<workdir>/litestream.yml`
   (file replica in `<workdir>/replica`, fast monitor/sync intervals, short compaction levels,
   `l0-retention: 0s` so every L0 file stays);
3. run the scenario's steps with apsw while it runs, and work out which TXID first contains each
   committed step (see `_Pending.contained_in`), recording a content digest for every TXID;
4. stop the replicator with SIGTERM (it does a final sync), require exit code 0 and that the replica's
   L0 caught up with the local meta dir;
5. run the reference `restore` (and `restore -dry-run -json`) for the chosen TXIDs and for latest,
   recording the sha256 of each restored file; record `ltx -level all -json`.

Why TXID attribution needs care: Litestream makes one L0 file per sync, a sync can hold several
commits, and Litestream writes to the database itself (`_litestream_seq` after its checkpoints), so
"the first L0 file that appeared after my commit" is not always the one containing it: a sync that read
the WAL just before the commit can finish renaming its file just after. Instead each write step samples
the WAL position (salts, end of the last commit frame) while holding the write lock, and an L0 file
contains the step iff its header's WAL range ends beyond that position (or it is from a later WAL
generation). Content per TXID is then monotonic in the step index.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import signal
import struct
import subprocess
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import apsw

from tests.refbin import DEFAULT_VERSION, ref_env, reference_binary

DB_NAME = "db.sqlite"
PAGE_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
LOCK_PAGE_OFFSET = 1 << 30  # SQLite's pending-byte page: never stored in LTX, restored as zeros

StepKind = Literal["write", "checkpoint", "stop", "start", "sleep"]
VerifyMode = Literal["all", "latest", "none"]


class WorkloadError(RuntimeError):
    """The reference replicator or the workload did not behave as the scenario requires."""


# --------------------------------------------------------------------------------------------------
# Small helpers usable from any test


def txid_hex(txid: int) -> str:
    return f"{txid:016x}"


def ltx_name(min_txid: int, max_txid: int) -> str:
    return f"{min_txid:016x}-{max_txid:016x}.ltx"


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _run(conn: apsw.Connection, sql: str, bindings: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    # apsw executes statements lazily as the cursor is iterated: a statement after one that returns
    # rows (e.g. `PRAGMA journal_mode=WAL; CREATE ...`) would silently not run without draining.
    return list(conn.execute(sql, bindings) if bindings is not None else conn.execute(sql))


def _open_readonly(db_path: str | os.PathLike[str]) -> apsw.Connection:
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(path)
    wal = Path(f"{path}-wal")
    quoted = urllib.parse.quote(str(path.resolve()))
    # A restored or checkpointed file has no WAL: open it immutable so SQLite creates no -shm/-wal
    # sidecars next to it (a read-only open of a WAL-mode file otherwise leaves both behind).
    has_wal = wal.exists() and wal.stat().st_size > 0
    uri = f"file:{quoted}?mode=ro" if has_wal else f"file:{quoted}?immutable=1"
    return apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)


def _is_litestream_name(name: str | None) -> bool:
    return bool(name) and name.startswith("_litestream_")  # type: ignore[union-attr]


def _feed_row(h: Any, row: Iterable[Any]) -> None:
    parts: list[bytes] = []
    for v in row:
        if v is None:
            parts.append(b"N")
        elif isinstance(v, int):
            parts.append(b"I%d;" % v)
        elif isinstance(v, float):
            parts.append(b"F" + struct.pack(">d", v))
        elif isinstance(v, str):
            b = v.encode("utf-8", "surrogatepass")
            parts.append(b"T%d:" % len(b))
            parts.append(b)
        else:
            b = bytes(v)
            parts.append(b"B%d:" % len(b))
            parts.append(b)
    parts.append(b"\n")
    h.update(b"".join(parts))


def _digest_conn(conn: apsw.Connection) -> str:
    """Digest of the logical content: schema text and every row of every table, in a fixed order.

    Litestream's own tables (`_litestream_seq`, `_litestream_lock`) are left out: Litestream bumps
    `_litestream_seq` on its own schedule, so its value says nothing about the user's data. Root page
    numbers are left out too, since VACUUM renumbers them without changing content.
    """
    h = hashlib.sha256()
    _run(conn, "BEGIN")  # one read snapshot for the whole digest
    try:
        schema = _run(conn, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
        for typ, name, tbl, sql in schema:
            if _is_litestream_name(name) or _is_litestream_name(tbl) or name.startswith("sqlite_autoindex_"):
                continue
            _feed_row(h, ("schema", typ, name, tbl, sql))
        for typ, name, _tbl, sql in schema:
            virtual = (sql or "").upper().startswith("CREATE VIRTUAL")
            if typ != "table" or virtual or _is_litestream_name(name):
                continue
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                cur = conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid")
            except apsw.SQLError:  # WITHOUT ROWID: a plain scan is already in primary-key order
                cur = conn.execute(f"SELECT * FROM {quoted}")
            _feed_row(h, ("table", name))
            for row in cur:
                _feed_row(h, row)
    finally:
        _run(conn, "COMMIT")
    return h.hexdigest()


def content_digest(db_path: str | os.PathLike[str]) -> str:
    """sha256 over schema + all rows of all user tables (see `_digest_conn`); opens read-only."""
    conn = _open_readonly(db_path)
    try:
        return _digest_conn(conn)
    finally:
        conn.close()


def integrity_ok(db_path: str | os.PathLike[str]) -> bool:
    """True iff `PRAGMA integrity_check` answers exactly 'ok' (False if SQLite cannot even read it)."""
    conn = _open_readonly(db_path)
    try:
        return _run(conn, "PRAGMA integrity_check") == [("ok",)]
    except apsw.Error:  # e.g. CorruptError / NotADBError from a damaged header or schema
        return False
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------------
# Peeking at LTX headers and the WAL (just enough to attribute commits to TXIDs)

_LTX_HEADER = struct.Struct(">4sIIIQQqQqqIIQ")


@dataclass(frozen=True)
class LtxHeader:
    flags: int
    page_size: int
    commit: int
    min_txid: int
    max_txid: int
    timestamp_ms: int
    wal_offset: int
    wal_size: int
    wal_salt1: int
    wal_salt2: int
    file_size: int

    @property
    def wal_end(self) -> int:
        return self.wal_offset + self.wal_size

    @property
    def salts(self) -> tuple[int, int]:
        return (self.wal_salt1, self.wal_salt2)


def read_ltx_header(path: str | os.PathLike[str]) -> LtxHeader:
    with open(path, "rb") as fh:
        raw = fh.read(100)
        size = os.fstat(fh.fileno()).st_size
    if len(raw) < 100 or raw[:4] != b"LTX1":
        raise WorkloadError(f"{path}: not an LTX file ({len(raw)} header bytes, magic {raw[:4]!r})")
    (_magic, flags, page_size, commit, min_txid, max_txid, ts, _pre, wal_off, wal_size, s1, s2,
     _node) = _LTX_HEADER.unpack_from(raw)
    return LtxHeader(flags, page_size, commit, min_txid, max_txid, ts, wal_off, wal_size, s1, s2, size)


def read_ltx_page_numbers(path: str | os.PathLike[str]) -> list[int]:
    """Page numbers stored in an LTX file, from its page index (no page is decompressed)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(size - 24)
        (index_len,) = struct.unpack(">Q", fh.read(8))
        fh.seek(size - 24 - index_len)
        raw = fh.read(index_len)
    nums: list[int] = []
    pos = 0

    def uvarint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            b = raw[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7

    while (pgno := uvarint()) != 0:
        uvarint()  # frame offset
        uvarint()  # frame size
        nums.append(pgno)
    return nums


WalPosition = tuple[tuple[int, int] | None, int]  # (salts of the current generation or None, end offset)


class WalScanner:
    """End of the last committed frame of the current WAL generation, read from frame headers only.

    Frames are trusted by their salts alone (no checksum): stale frames of an older generation carry
    other salts, and frames of a rolled-back transaction carry no commit mark. Scanning resumes at the
    last commit end, not at the last frame read, because frames past it may be overwritten.
    """

    def __init__(self, wal_path: Path, page_size: int) -> None:
        self.wal_path = wal_path
        self.frame_size = 24 + page_size
        self._salts: tuple[int, int] | None = None
        self._end = 32

    def position(self) -> WalPosition:
        try:
            fh = open(self.wal_path, "rb")  # noqa: SIM115 - closed by the `with` below
        except FileNotFoundError:
            return None, 32
        with fh:
            hdr = fh.read(32)
            if len(hdr) < 32 or struct.unpack_from(">I", hdr)[0] not in (0x377F0682, 0x377F0683):
                return None, 32
            salts = struct.unpack_from(">II", hdr, 16)
            size = os.fstat(fh.fileno()).st_size
            if salts != self._salts or size < self._end:
                self._salts, self._end = salts, 32
            off = self._end
            while off + self.frame_size <= size:
                fh.seek(off)
                fhdr = fh.read(16)
                if len(fhdr) < 16:
                    break
                _pgno, commit, s1, s2 = struct.unpack(">IIII", fhdr)
                if (s1, s2) != salts:
                    break
                off += self.frame_size
                if commit:
                    self._end = off
            return salts, self._end


# --------------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Step:
    """One action of a scenario. Build them with the factory functions below."""

    label: str
    kind: StepKind = "write"
    sql: str = ""
    bindings: tuple[Any, ...] | None = None
    fn: Callable[[apsw.Connection], None] | None = None
    # Wrap the write in BEGIN IMMEDIATE/COMMIT. False for statements that cannot run in a transaction
    # (VACUUM, journal_mode changes) or functions that manage transactions themselves.
    in_transaction: bool = True
    # Wait until the replicator has this write in an L0 file before the next step (ignored while the
    # replicator is stopped). False lets consecutive writes batch into one TXID.
    wait: bool = True
    mode: str = ""  # checkpoint mode
    seconds: float = 0.0  # sleep
    check: bool = True  # with Scenario.check_txids == "steps": restore the TXID this write lands in


def sql_step(label: str, sql: str, *bindings: Any, wait: bool = True, in_transaction: bool = True,
             check: bool = True) -> Step:
    return Step(label, "write", sql=sql, bindings=tuple(bindings) if bindings else None, wait=wait,
                in_transaction=in_transaction, check=check)


def python_step(label: str, fn: Callable[[apsw.Connection], None], *, wait: bool = True,
                in_transaction: bool = True, check: bool = True) -> Step:
    return Step(label, "write", fn=fn, wait=wait, in_transaction=in_transaction, check=check)


def vacuum_step(label: str = "VACUUM") -> Step:
    return Step(label, "write", sql="VACUUM", in_transaction=False)


def checkpoint_step(mode: str = "PASSIVE", label: str | None = None) -> Step:
    """Application-side `PRAGMA wal_checkpoint(mode)` with no busy wait.

    While the replicator runs it holds a read transaction, so a TRUNCATE/RESTART cannot finish then
    (it returns busy=1 at once rather than blocking for the busy timeout); run those while stopped.
    """
    return Step(label or f"app wal_checkpoint({mode})", "checkpoint", mode=mode.upper())


def stop_step(label: str = "stop replicator (SIGTERM)") -> Step:
    return Step(label, "stop")


def start_step(label: str = "start replicator") -> Step:
    return Step(label, "start")


def sleep_step(seconds: float, label: str | None = None) -> Step:
    """Let compaction/snapshot levels tick so that mid-history TXIDs restore through L1/L2/L9 files."""
    return Step(label or f"sleep {seconds}s", "sleep", seconds=seconds)


@dataclass(frozen=True)
class Scenario:
    name: str
    page_size: int
    steps: tuple[Step, ...]
    setup: tuple[Step, ...] = ()  # run before the replicator first starts; produces no TXIDs
    # Deep-merged into the generated config (a None value deletes a key): top level, dbs[0], replica.
    global_config: Mapping[str, Any] = field(default_factory=dict)
    db_config: Mapping[str, Any] = field(default_factory=dict)
    replica_config: Mapping[str, Any] = field(default_factory=dict)
    # Which TXIDs to restore with the reference (latest is always restored as well): "all"; "steps"
    # (TXID 1 and the first TXID of every write step with check=True); a sample size; explicit TXIDs.
    check_txids: Literal["all", "steps"] | int | tuple[int, ...] = "all"
    # Also compute content_digest + integrity_check of the reference restores (costly for huge dbs).
    verify_restores: VerifyMode = "all"
    # Keep the restored files (in <workdir>/restores) instead of only their hashes.
    keep_restores: bool = False
    keep_db_copies: bool = True  # initial.sqlite and final.sqlite copies (else final = the source db)
    step_timeout: float = 30.0
    poll_interval: float = 0.001
    log_level: str = "debug"
    version: str = DEFAULT_VERSION


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = json.loads(json.dumps(v))  # deep copy of plain data
    return base


def build_config(scenario: Scenario, db_path: Path, replica_path: Path) -> dict[str, Any]:
    """The replicate config for a scenario (a plain dict; written as JSON, which YAML parsers accept)."""
    replica = _merge({"type": "file", "path": str(replica_path), "sync-interval": "20ms"},
                     scenario.replica_config)
    db = _merge({"path": str(db_path), "monitor-interval": "20ms", "checkpoint-interval": "1m",
                 "min-checkpoint-page-count": 1000}, scenario.db_config)
    db["replica"] = replica
    cfg = {
        "logging": {"level": scenario.log_level, "type": "text"},
        "levels": [{"interval": "1s"}, {"interval": "3s"}],
        "snapshot": {"interval": "2s", "retention": "24h"},
        "l0-retention": "0s",  # 0 disables L0 deletion: every TXID stays restorable from L0
    }
    _merge(cfg, scenario.global_config)
    cfg["dbs"] = [db]
    return cfg


def _rows_sql(table: str, n: int, expr: str) -> str:
    """INSERT of n rows generated by a recursive CTE; `expr` may use `value` (1..n)."""
    return (f"INSERT INTO {table}(v) SELECT {expr} FROM (WITH RECURSIVE g(value) AS "
            f"(SELECT 1 UNION ALL SELECT value+1 FROM g WHERE value<{n}) SELECT value FROM g)")


def _mixed_bytes(rng: random.Random, n: int) -> bytes:
    # Half random (incompressible), half repetitive, so LZ4 page compression sees both kinds.
    half = n // 2
    return rng.randbytes(half) + (b"litestream-" * (n // 11 + 1))[: n - half]


def page_size_scenario(page_size: int) -> Scenario:
    """Mixed workload at one page size: inserts, updates, deletes, overflow blobs, a WITHOUT ROWID
    table, an index, batched commits, Litestream's own checkpoints (small min-checkpoint-page-count),
    app-side PASSIVE and TRUNCATE checkpoints, a replicator stop/restart with writes while it is down,
    and a VACUUM that shrinks the file."""
    if page_size not in PAGE_SIZES:
        raise ValueError(f"page size {page_size} is not one of {PAGE_SIZES}")
    rng = random.Random(page_size)
    blob_len = 3 * page_size + 123  # always spills into overflow pages

    def insert_blobs(conn: apsw.Connection) -> None:
        for i in range(3):
            _run(conn, "INSERT INTO t(v, b) VALUES (?, ?)", (f"blob {i}", _mixed_bytes(rng, blob_len)))

    def rewrite_blob(conn: apsw.Connection) -> None:
        _run(conn, "UPDATE t SET b = ? WHERE id = (SELECT max(id) FROM t WHERE b IS NOT NULL)",
             (_mixed_bytes(rng, blob_len),))

    def kv_upserts(conn: apsw.Connection) -> None:
        for i in range(30):
            _run(conn, "INSERT INTO kv(k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
                 (f"key-{i:03d}", f"value {i} " + "x" * (i * 7)))

    setup = (
        sql_step("create tables + 10 rows",
                 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB);"
                 "CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;"
                 + _rows_sql("t", 10, "'initial ' || value")),
    )
    steps = (
        sql_step("insert 50 rows", _rows_sql("t", 50, "'row ' || value")),
        sql_step("update every 3rd row", "UPDATE t SET v = v || ' updated' WHERE id % 3 = 0"),
        python_step("insert 3 overflow blobs (db grows)", insert_blobs),
        python_step("kv upserts (WITHOUT ROWID)", kv_upserts),
        sql_step("batched txn A (not waited for)", "INSERT INTO t(v) VALUES ('batched A')", wait=False),
        sql_step("batched txn B", "UPDATE t SET v = 'batched B' WHERE id = 1"),
        sql_step("create index", "CREATE INDEX t_v ON t(v)"),
        sleep_step(1.1),
        checkpoint_step("PASSIVE"),
        # ~48 pages of WAL at any page size, so the replicator's own PASSIVE checkpoint (threshold 32
        # pages below) restarts the WAL and bumps _litestream_seq: TXIDs without user changes.
        sql_step("grow: ~48 pages of 200-byte rows (triggers Litestream checkpoints)",
                 _rows_sql("t", max(300, 48 * page_size // 200), "printf('%.200c', char(65 + value % 26))")),
        python_step("rewrite one blob in place", rewrite_blob),
        stop_step(),
        sql_step("insert while stopped", _rows_sql("t", 20, "'offline ' || value")),
        sql_step("update while stopped", "UPDATE kv SET v = upper(v) WHERE k < 'key-010'"),
        checkpoint_step("TRUNCATE", "app wal_checkpoint(TRUNCATE) while stopped"),
        sql_step("insert after truncate while stopped", "INSERT INTO t(v) VALUES ('after truncate')"),
        start_step(),
        sql_step("delete blobs", "DELETE FROM t WHERE b IS NOT NULL"),
        sql_step("delete half of the rows", "DELETE FROM t WHERE id % 2 = 0 AND id > 20"),
        sleep_step(1.1),
        vacuum_step("VACUUM (file shrinks, commit decreases)"),
        sql_step("insert 20 rows after vacuum", _rows_sql("t", 20, "'post-vacuum ' || value")),
        checkpoint_step("PASSIVE"),
        sql_step("kv delete", "DELETE FROM kv WHERE k > 'key-020'"),
        sql_step("final update", "UPDATE t SET v = 'last' WHERE id = 2"),
    )
    return Scenario(name=f"ps{page_size}", page_size=page_size, setup=setup, steps=steps,
                    db_config={"min-checkpoint-page-count": 32})


def all_page_size_scenarios() -> list[Scenario]:
    return [page_size_scenario(ps) for ps in PAGE_SIZES]


def vacuum_shrink_scenario(page_size: int = 4096) -> Scenario:
    """Grow, delete most rows and VACUUM (commit drops sharply), convert to auto_vacuum=INCREMENTAL,
    grow again and shrink with incremental_vacuum, then VACUUM once more."""
    rng = random.Random(7)

    def fill(n: int, size: int) -> Callable[[apsw.Connection], None]:
        def go(conn: apsw.Connection) -> None:
            for i in range(n):
                _run(conn, "INSERT INTO t(v, b) VALUES (?, ?)", (f"fill {i}", _mixed_bytes(rng, size)))
        return go

    setup = (sql_step("create table", "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)"),)
    steps = (
        python_step("insert 300 rows with 2 KiB blobs", fill(300, 2048)),
        sql_step("index", "CREATE INDEX t_v ON t(v)"),
        sleep_step(1.1),
        sql_step("delete 90%", "DELETE FROM t WHERE id % 10 != 0"),
        vacuum_step("VACUUM shrink"),
        sql_step("insert 5 rows", _rows_sql("t", 5, "'small ' || value")),
        sql_step("auto_vacuum=INCREMENTAL", "PRAGMA auto_vacuum = INCREMENTAL", in_transaction=False),
        vacuum_step("VACUUM (applies auto_vacuum)"),
        python_step("insert 200 rows with 1 KiB blobs", fill(200, 1024)),
        sleep_step(1.1),
        sql_step("delete the new rows", "DELETE FROM t WHERE v LIKE 'fill %' AND id > 300"),
        sql_step("incremental_vacuum (shrinks inside a write transaction)", "PRAGMA incremental_vacuum"),
        sql_step("insert after incremental vacuum", "INSERT INTO t(v) VALUES ('after incremental')"),
        vacuum_step("final VACUUM"),
        sql_step("final update", "UPDATE t SET v = 'last' WHERE id = (SELECT min(id) FROM t)"),
    )
    return Scenario(name=f"vacuum-shrink-ps{page_size}", page_size=page_size, setup=setup, steps=steps,
                    db_config={"min-checkpoint-page-count": 64})


def long_history_scenario(n_txids: int = 3000, page_size: int = 4096, sample: int = 48) -> Scenario:
    """`n_txids` small committed transactions, each waited for, so each becomes its own TXID (plus the
    TXIDs of Litestream's own checkpoints). A fast monitor interval keeps this at ~5 ms per commit."""
    rng = random.Random(3000)
    steps: list[Step] = []
    for i in range(1, n_txids + 1):
        if i % 50 == 0:
            steps.append(sql_step(f"txn {i}: delete", "DELETE FROM h WHERE id IN "
                                  "(SELECT id FROM h WHERE id % 7 = ? LIMIT 3)", i % 7))
        elif i % 7 == 0:
            # Target an existing row: an UPDATE matching nothing writes no WAL frame and no TXID.
            steps.append(sql_step(f"txn {i}: update", "UPDATE h SET v = ? WHERE id = "
                                  "(SELECT id FROM h WHERE id >= ? ORDER BY id LIMIT 1)",
                                  f"updated {i}", rng.randint(1, i // 2)))
        else:
            steps.append(sql_step(f"txn {i}: insert", "INSERT INTO h(v) VALUES (?)",
                                  f"row {i} " + "z" * rng.randint(0, 300)))
    setup = (sql_step("create table", "CREATE TABLE h(id INTEGER PRIMARY KEY, v TEXT)"),)
    return Scenario(name=f"long-history-{n_txids}", page_size=page_size, setup=setup, steps=tuple(steps),
                    db_config={"monitor-interval": "5ms"}, replica_config={"sync-interval": "10ms"},
                    check_txids=sample, log_level="info")


def mixed_long_scenario(n: int = 2000) -> Scenario:
    """Thousands of mixed transactions: inserts, updates, deletes, overflow blobs; app checkpoints while
    we run; a replicator restart with writes and an app TRUNCATE while it is down; a VACUUM."""
    rng = random.Random(n)

    def blob(conn: apsw.Connection) -> None:
        conn.execute("INSERT INTO m(v, b) VALUES (?, ?)", ("blob", rng.randbytes(9000)))

    steps = []
    for i in range(1, n + 1):
        if i == n // 2:
            steps += [stop_step(), sql_step("insert while stopped", "INSERT INTO m(v) VALUES ('offline')"),
                      checkpoint_step("TRUNCATE", "app TRUNCATE while stopped"),
                      sql_step("update while stopped", "UPDATE m SET v = v || '+' WHERE id % 11 = 0"), start_step()]
        elif i == 3 * n // 4:
            steps.append(vacuum_step())
        elif i % 400 == 0:
            steps.append(checkpoint_step("PASSIVE", f"app PASSIVE checkpoint at {i}"))
        elif i % 97 == 0:
            steps.append(python_step(f"txn {i}: overflow blob", blob))
        elif i % 31 == 0:
            steps.append(sql_step(f"txn {i}: delete", "DELETE FROM m WHERE id IN (SELECT id FROM m WHERE id % 5 = ? "
                                  "LIMIT 4)", i % 5))
        elif i % 5 == 0:
            steps.append(sql_step(f"txn {i}: update", "UPDATE m SET v = ? WHERE id = (SELECT max(id) FROM m)",
                                  f"updated {i}"))
        else:
            steps.append(sql_step(f"txn {i}: insert", "INSERT INTO m(v) VALUES (?)", f"row {i} " * rng.randint(1, 40)))
    setup = (sql_step("create table", "CREATE TABLE m(id INTEGER PRIMARY KEY, v TEXT, b BLOB)"),)
    return Scenario(name=f"mixed-{n}", page_size=4096, setup=setup, steps=tuple(steps),
                    db_config={"monitor-interval": "5ms", "min-checkpoint-page-count": 64},
                    replica_config={"sync-interval": "10ms"}, check_txids=60, log_level="info")


def large_db_scenario(target_bytes: int = int(1.1 * 2**30)) -> Scenario:
    """A database larger than 1 GiB (page size 4096), so the lock page at byte offset 1 GiB exists, with
    mixed random/zero/hex blobs; after replication starts, a few small writes, some of them on pages
    beyond the lock page and on rows whose overflow chains straddle it."""
    page_size = 4096
    row_bytes = 64 * 1024
    lock_page = LOCK_PAGE_OFFSET // page_size + 1

    def fill(conn: apsw.Connection) -> None:
        # Fill without a journal: a 1 GiB WAL that is then checkpointed would double the writes.
        _run(conn, "PRAGMA journal_mode=OFF")
        _run(conn, "PRAGMA synchronous=OFF")
        _run(conn, "CREATE TABLE big(id INTEGER PRIMARY KEY, kind INTEGER, b BLOB)")
        _run(conn, "CREATE TABLE small(k TEXT PRIMARY KEY, v TEXT)")
        _run(conn, "INSERT INTO small VALUES ('a', 'one'), ('b', 'two')")
        batch = 1024
        while _run(conn, "PRAGMA page_count")[0][0] * page_size < target_bytes:
            _run(conn, "BEGIN")
            # kind 0/1: random (incompressible), 2: zeros, 3: hex text of random bytes
            _run(conn, "INSERT INTO big(kind, b) SELECT value % 4, CASE value % 4 "
                       f"WHEN 2 THEN zeroblob({row_bytes}) "
                       f"WHEN 3 THEN CAST(hex(randomblob({row_bytes // 2})) AS BLOB) "
                       f"ELSE randomblob({row_bytes}) END "
                       f"FROM (WITH RECURSIVE g(value) AS (SELECT 1 UNION ALL SELECT value+1 FROM g "
                       f"WHERE value<{batch}) SELECT value FROM g)")
            _run(conn, "COMMIT")
        _run(conn, "PRAGMA synchronous=FULL")
        if _run(conn, "PRAGMA journal_mode=WAL") != [("wal",)]:
            raise WorkloadError("could not switch the filled database back to WAL")

    # Rows are appended in id order, so ids near (lock_page / page_count) * max_id sit around 1 GiB.
    near_lock = (f"(SELECT CAST((SELECT max(id) FROM big) * {lock_page}.0 / "
                 "(SELECT page_count FROM pragma_page_count()) AS INTEGER))")
    steps = (
        sql_step("update a row at the start of the file", "UPDATE big SET kind = 10, b = randomblob(100) "
                 "WHERE id = 1", check=False),
        sql_step("rewrite 8 rows whose pages straddle the lock page",
                 f"UPDATE big SET kind = 11, b = randomblob({row_bytes}) "
                 f"WHERE id BETWEEN {near_lock} - 4 AND {near_lock} + 3"),
        sql_step("update the last 3 rows (pages beyond the lock page)",
                 f"UPDATE big SET kind = 12, b = zeroblob({row_bytes}) "
                 "WHERE id > (SELECT max(id) - 3 FROM big)"),
        sql_step("small table update", "UPDATE small SET v = 'changed' WHERE k = 'a'",
                 check=False),
        sql_step("insert 4 rows (file grows)", f"INSERT INTO big(kind, b) SELECT 13, randomblob({row_bytes}) "
                 "FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4)", check=False),
        sql_step("delete a row beyond the lock page", "DELETE FROM big WHERE id = (SELECT max(id) - 10 "
                 "FROM big)", check=False),
    )
    return Scenario(name=f"large-{target_bytes}", page_size=page_size, setup=(
        python_step("fill to target size", fill, in_transaction=False),), steps=steps,
        # One startup snapshot only: every L9 pass would otherwise rewrite the whole ~1 GiB.
        global_config={"snapshot": {"interval": "1h"}},
        # Each check costs a ~12 s restore of ~1.1 GiB plus hashing: check the initial snapshot, the
        # lock-page rows, the pages beyond it, and latest (which equals the last TXID).
        check_txids="steps", verify_restores="latest", keep_db_copies=False, step_timeout=900.0,
        log_level="info", poll_interval=0.005)


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class TxidRecord:
    txid: int
    content_digest: str  # digest of the source db's content at the moment this TXID was synced
    l0: LtxHeader | None = None  # header of the L0 file (None for the "latest" pseudo-record)
    ref_sha256: str | None = None  # sha256 of the reference `restore -txid` output, if checked
    ref_digest: str | None = None  # content_digest of that output (if verified)
    ref_integrity_ok: bool | None = None
    plan: dict[str, Any] | None = None  # `restore -dry-run -json` output
    restored_path: Path | None = None  # only if the scenario keeps restores

    @property
    def hex(self) -> str:
        return txid_hex(self.txid)


@dataclass
class StepResult:
    label: str
    kind: str
    seconds: float
    replicator_running: bool
    first_txid: int | None = None  # first TXID whose L0 contains this write
    note: str = ""
    check: bool = False


@dataclass
class GeneratedReplica:
    scenario: Scenario
    workdir: Path
    db_path: Path
    replica_path: Path
    meta_path: Path
    config_path: Path
    log_path: Path
    page_size: int
    records: list[TxidRecord]  # one per TXID 1..max_txid; ref_* fields filled for the checked ones
    latest: TxidRecord  # restore without -txid
    ltx_json: list[dict[str, Any]]
    plans: dict[str, dict[str, Any]]  # 16-hex TXID or "latest" -> dry-run plan
    final_db_path: Path  # source db after the replicator stopped and wal_checkpoint(TRUNCATE)
    final_db_sha256: str
    initial_db_path: Path | None
    steps: list[StepResult]
    timings: dict[str, float]
    sizes: dict[str, int]

    @property
    def replica_url(self) -> str:
        return "file://" + str(self.replica_path)

    @property
    def max_txid(self) -> int:
        return self.records[-1].txid

    @property
    def expectations(self) -> list[tuple[int, str, str]]:
        """(txid, content_digest, reference restore sha256) for every checked TXID."""
        return [(r.txid, r.content_digest, r.ref_sha256) for r in self.checked]  # type: ignore[misc]

    @property
    def checked(self) -> list[TxidRecord]:
        """Records restored with the reference binary (those with a ref_sha256)."""
        return [r for r in self.records if r.ref_sha256 is not None]

    def record(self, txid: int) -> TxidRecord:
        rec = self.records[txid - 1]
        assert rec.txid == txid
        return rec

    def restore_args(self, out: str | os.PathLike[str], txid: int | None = None,
                     source: str | None = None) -> list[str]:
        """Arguments for `litestream restore` of this replica (same for ours and the reference)."""
        args = ["restore", "-o", str(out)]
        if txid is not None:
            args += ["-txid", txid_hex(txid)]
        return [*args, source or self.replica_url]

    def copy_replica(self, dst: str | os.PathLike[str]) -> Path:
        """Copy the replica tree, keeping mtimes (a file replica's CreatedAt is the file mtime)."""
        return Path(shutil.copytree(self.replica_path, dst, copy_function=shutil.copy2))

    def cleanup(self) -> None:
        """Delete everything generated (the large scenario leaves several GiB behind)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def manifest(self) -> dict[str, Any]:
        def rec(r: TxidRecord) -> dict[str, Any]:
            d = {k: v for k, v in dataclasses.asdict(r).items() if k not in ("plan",)}
            d["txid"] = r.hex
            d["restored_path"] = str(r.restored_path) if r.restored_path else None
            return d
        return {
            "scenario": self.scenario.name, "page_size": self.page_size, "litestream": self.scenario.version,
            "replica": str(self.replica_path), "db": str(self.db_path), "config": str(self.config_path),
            "final_db": str(self.final_db_path), "final_db_sha256": self.final_db_sha256,
            "records": [rec(r) for r in self.records], "latest": rec(self.latest),
            "steps": [dataclasses.asdict(s) for s in self.steps], "ltx": self.ltx_json,
            "plans": self.plans, "timings": self.timings, "sizes": self.sizes,
        }


# --------------------------------------------------------------------------------------------------
# Replicator process


def _tail(path: Path, n: int = 60) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 64 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(lines[-n:])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test process dies without cleaning up (SIGKILL,
    # a crashed interpreter), the kernel sends SIGTERM so no replicator keeps writing in the background.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Replicator:
    """One `litestream replicate` process at a time, logging to a file shared across restarts."""

    def __init__(self, argv: Sequence[str], config_path: Path, log_path: Path) -> None:
        self.argv = list(argv)
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None

    def error(self, msg: str) -> WorkloadError:
        return WorkloadError(f"{msg}\n--- tail of {self.log_path} ---\n{_tail(self.log_path)}")

    def start(self) -> None:
        assert self.proc is None, "replicator already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"=== workload: start #{self.starts} at {time.time():.3f} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*self.argv, "replicate", "-no-expand-env", "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=ref_env(),
                preexec_fn=_die_with_parent)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            rc = self.proc.returncode
            self.proc = None
            raise self.error(f"litestream replicate exited unexpectedly with code {rc}")

    def stop(self, timeout: float = 120.0) -> None:
        assert self.proc is not None, "replicator not running"
        proc = self.proc
        self.check_alive()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self.error(f"litestream replicate did not exit within {timeout}s of SIGTERM") from None
        self.proc = None
        with open(self.log_path, "ab") as log:
            log.write(f"=== workload: exited with {rc} at {time.time():.3f} ===\n".encode())
        if rc != 0:
            raise self.error(f"litestream replicate exited with code {rc} after SIGTERM")

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            self.proc = None


# --------------------------------------------------------------------------------------------------
# Workload runner


@dataclass
class _Pending:
    """A committed write not yet seen in any L0 file."""

    wal_before: WalPosition  # WAL position sampled under the write lock, before the write
    max_txid_before: int  # every L0 file up to this TXID was renamed before the write
    digest: str
    result: StepResult

    def contained_in(self, hdr: LtxHeader) -> bool:
        if hdr.max_txid <= self.max_txid_before:
            return False
        salts, end = self.wal_before
        if salts is None:  # the WAL was empty: any L0 that read WAL frames read ours or later ones
            return hdr.wal_end > 32
        if hdr.salts != salts:
            # A different generation in a file renamed after our write lock was held can only be a
            # later one (a restart needs a writer, and we were the next writer), which has our commit
            # either in its WAL or already checkpointed into the db file.
            return True
        return hdr.wal_end > end


class _Runner:
    def __init__(self, workdir: Path, scenario: Scenario, replicator_argv: Sequence[str] | None) -> None:
        self.scn = scenario
        self.workdir = workdir
        self.db_path = workdir / DB_NAME
        self.replica_path = workdir / "replica"
        self.meta_path = workdir / f".{DB_NAME}-litestream"
        self.l0_dir = self.meta_path / "ltx" / "0"
        self.config_path = workdir / "litestream.yml"
        self.log_path = workdir / "litestream.log"
        self.binary = reference_binary(scenario.version)
        self.rep = _Replicator(replicator_argv or [str(self.binary)], self.config_path, self.log_path)
        self.conn: apsw.Connection | None = None
        self.wal = WalScanner(Path(f"{self.db_path}-wal"), scenario.page_size)
        self.pending: deque[_Pending] = deque()
        self.headers: list[LtxHeader] = []  # index = txid - 1
        self.digests: list[str] = []
        self.current_digest = ""
        self.steps: list[StepResult] = []
        self.timings: dict[str, float] = {}

    # -- TXID bookkeeping ------------------------------------------------------------------------

    @property
    def max_txid(self) -> int:
        return len(self.headers)

    def _advance(self) -> int:
        """Read headers of L0 files that appeared since the last call and attribute content to them."""
        while True:
            txid = len(self.headers) + 1
            try:
                hdr = read_ltx_header(self.l0_dir / ltx_name(txid, txid))
            except FileNotFoundError:
                return txid - 1
            if hdr.min_txid != txid or hdr.max_txid != txid or hdr.page_size != self.scn.page_size:
                raise self.rep.error(f"unexpected L0 header for TXID {txid}: {hdr}")
            while self.pending and self.pending[0].contained_in(hdr):
                p = self.pending.popleft()
                p.result.first_txid = txid
                self.current_digest = p.digest
            self.headers.append(hdr)
            self.digests.append(self.current_digest)

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._advance()
            if done():
                return
            self.rep.check_alive()
            if time.monotonic() > deadline:
                pend = [p.result.label for p in self.pending]
                raise self.rep.error(
                    f"[{self.scn.name}] timed out after {timeout}s waiting for {what}; local L0 max TXID "
                    f"{self.max_txid}, WAL position {self.wal.position()}, uncaptured writes {pend}")
            time.sleep(self.scn.poll_interval)

    def _replica_l0_max(self) -> int:
        best = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.replica_path / "ltx" / "0") as it:
            for e in it:
                if e.name.endswith(".ltx") and len(e.name) == 37:
                    best = max(best, int(e.name[17:33], 16))
        return best

    # -- steps -----------------------------------------------------------------------------------

    def _write(self, step: Step, res: StepResult) -> None:
        conn = self.conn
        assert conn is not None
        if step.in_transaction:
            _run(conn, "BEGIN IMMEDIATE")  # hold the write lock while sampling the WAL position
        try:
            before = self.wal.position()
            max_before = self._advance()
            if step.sql:
                _run(conn, step.sql, step.bindings)
            if step.fn is not None:
                step.fn(conn)
            if step.in_transaction:
                _run(conn, "COMMIT")
        except BaseException:
            if not conn.getautocommit():
                _run(conn, "ROLLBACK")
            raise
        after = self.wal.position()
        digest = _digest_conn(conn)
        if after == before:
            # No frame was written (e.g. an UPDATE matching no rows): there is nothing to capture.
            res.note = "no WAL frames written"
            return
        self.pending.append(_Pending(before, max_before, digest, res))
        if step.wait and self.rep.running:
            self._wait(f"an L0 file containing step {step.label!r}", lambda: not self.pending,
                       self.scn.step_timeout)

    def _checkpoint(self, step: Step, res: StepResult) -> None:
        conn = self.conn
        assert conn is not None
        conn.setbusytimeout(0)  # never sit out the busy timeout behind the replicator's read lock
        try:
            busy, log, ckpt = _run(conn, f"PRAGMA wal_checkpoint({step.mode})")[0]
        finally:
            conn.setbusytimeout(10_000)
        res.note = f"busy={busy} log={log} checkpointed={ckpt}"

    def _start(self, res: StepResult) -> None:
        first = self.rep.starts == 0
        self.rep.start()
        if first:  # TXID 1 is the initial snapshot; make it precede the first step's write
            self._wait("the initial snapshot L0 (TXID 1)", lambda: self.max_txid >= 1, self.scn.step_timeout)
        elif self.pending:
            self._wait("L0 files for writes made while stopped", lambda: not self.pending,
                       self.scn.step_timeout)
        res.first_txid = self.max_txid or None

    def _stop(self, final: bool) -> None:
        self.rep.stop(timeout=max(120.0, self.scn.step_timeout))
        self._advance()
        if final and self.pending:
            raise self.rep.error(f"[{self.scn.name}] after the final sync no L0 file contains "
                                 f"{[p.result.label for p in self.pending]}")
        self._wait("the replica's L0 to catch up with the local meta dir",
                   lambda: self._replica_l0_max() >= self.max_txid, self.scn.step_timeout)

    # -- main ------------------------------------------------------------------------------------

    def _create_db(self) -> None:
        conn = apsw.Connection(str(self.db_path))
        conn.setbusytimeout(10_000)
        self.conn = conn
        _run(conn, f"PRAGMA page_size={self.scn.page_size}")  # before the first write
        if _run(conn, "PRAGMA journal_mode=WAL") != [("wal",)]:
            raise WorkloadError("could not enable WAL mode")
        for step in self.scn.setup:
            if step.kind != "write":
                raise WorkloadError(f"setup step {step.label!r} must be a write, not {step.kind}")
            if step.in_transaction:
                _run(conn, "BEGIN IMMEDIATE")
            if step.sql:
                _run(conn, step.sql, step.bindings)
            if step.fn is not None:
                step.fn(conn)
            if step.in_transaction:
                _run(conn, "COMMIT")
        got = _run(conn, "PRAGMA page_size")[0][0]
        if got != self.scn.page_size:
            raise WorkloadError(f"page size is {got}, wanted {self.scn.page_size}")
        busy = _run(conn, "PRAGMA wal_checkpoint(TRUNCATE)")[0][0]
        if busy:
            raise WorkloadError("checkpoint(TRUNCATE) after setup was busy")
        self.current_digest = _digest_conn(conn)

    def run(self) -> GeneratedReplica:
        scn = self.scn
        t0 = time.monotonic()
        self._create_db()
        initial: Path | None = None
        if scn.keep_db_copies:
            initial = self.workdir / "initial.sqlite"
            shutil.copyfile(self.db_path, initial)
        self.config_path.write_text(json.dumps(build_config(scn, self.db_path, self.replica_path), indent=2)
                                    + "\n")
        self.timings["setup"] = time.monotonic() - t0

        t1 = time.monotonic()
        start_res = StepResult("start replicator", "start", 0.0, False)
        self._start(start_res)
        start_res.seconds = time.monotonic() - t1
        self.steps.append(start_res)
        for step in scn.steps:
            ts = time.monotonic()
            res = StepResult(step.label, step.kind, 0.0, self.rep.running, check=step.check)
            if step.kind == "write":
                self._write(step, res)
            elif step.kind == "checkpoint":
                self._checkpoint(step, res)
            elif step.kind == "sleep":
                time.sleep(step.seconds)
            elif step.kind == "stop":
                self._stop(final=False)
            elif step.kind == "start":
                self._start(res)
            else:
                raise WorkloadError(f"unknown step kind {step.kind!r}")
            if self.rep.running:
                self.rep.check_alive()
            res.seconds = time.monotonic() - ts
            self.steps.append(res)
        if not self.rep.running:
            self._start(StepResult("final start", "start", 0.0, False))
        self._stop(final=True)
        self.timings["replicate"] = time.monotonic() - t1

        final_db = self._finalize_source()
        gen = self._reference_restores(final_db, initial)
        gen.timings["total"] = time.monotonic() - t0
        (self.workdir / "generated.json").write_text(json.dumps(gen.manifest(), indent=1, default=str))
        return gen

    def _finalize_source(self) -> Path:
        conn = self.conn
        assert conn is not None
        busy = _run(conn, "PRAGMA wal_checkpoint(TRUNCATE)")[0][0]
        if busy:
            raise WorkloadError("final checkpoint(TRUNCATE) of the source db was busy")
        conn.close()
        self.conn = None
        if not self.scn.keep_db_copies:
            return self.db_path
        final = self.workdir / "final.sqlite"
        shutil.copyfile(self.db_path, final)
        return final

    def _choose_txids(self) -> list[int]:
        n = self.max_txid
        chk = self.scn.check_txids
        if chk == "all":
            return list(range(1, n + 1))
        if isinstance(chk, tuple):
            return sorted({t for t in chk if 1 <= t <= n})
        if chk == "steps":
            return sorted({1} | {s.first_txid for s in self.steps
                                 if s.kind == "write" and s.check and s.first_txid is not None})
        # A sample: the ends, an even spread, and TXIDs that start a WAL generation (restarts,
        # checkpoints, snapshots after a truncation), which are where restores go wrong.
        picks = {1, 2, 3, n - 2, n - 1, n}
        picks.update(round(1 + i * (n - 1) / max(1, chk - 1)) for i in range(chk))
        starts = [h.max_txid for h in self.headers if h.wal_offset == 32 and h.max_txid > 1]
        picks.update(starts[:: max(1, math.ceil(len(starts) / max(1, chk // 4)))])
        return sorted(t for t in picks if 1 <= t <= n)

    def _ref(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True, env=ref_env(),
                              timeout=timeout)
        if proc.returncode != 0:
            raise WorkloadError(f"[{self.scn.name}] reference `litestream {' '.join(args)}` exited "
                                f"{proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def _restore_one(self, rec: TxidRecord, txid: int | None, verify: bool, out_dir: Path) -> None:
        url = "file://" + str(self.replica_path)
        name = "latest" if txid is None else txid_hex(txid)
        out = out_dir / f"{name}.sqlite"
        sel = [] if txid is None else ["-txid", txid_hex(txid)]
        rec.plan = json.loads(self._ref("restore", "-dry-run", "-json", "-o", str(out), *sel, url).stdout)
        self._ref("restore", "-o", str(out), *sel, url)
        rec.ref_sha256 = sha256_file(out)
        if verify:
            rec.ref_digest = content_digest(out)
            rec.ref_integrity_ok = integrity_ok(out)
        if self.scn.keep_restores:
            rec.restored_path = out
        else:
            out.unlink()

    def _reference_restores(self, final_db: Path, initial: Path | None) -> GeneratedReplica:
        scn = self.scn
        t0 = time.monotonic()
        out_dir = self.workdir / "restores"
        out_dir.mkdir()
        pairs = zip(self.headers, self.digests, strict=True)
        records = [TxidRecord(t, d, h) for t, (h, d) in enumerate(pairs, start=1)]
        for txid in self._choose_txids():
            self._restore_one(records[txid - 1], txid, scn.verify_restores == "all", out_dir)
        latest = TxidRecord(self.max_txid, records[-1].content_digest)
        self._restore_one(latest, None, scn.verify_restores != "none", out_dir)
        if not scn.keep_restores:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        plans = {r.hex: r.plan for r in records if r.plan is not None}
        plans["latest"] = latest.plan  # type: ignore[assignment]
        ltx_json = json.loads(
            self._ref("ltx", "-level", "all", "-json", "file://" + str(self.replica_path)).stdout)
        self.timings["restores"] = time.monotonic() - t0

        def du(p: Path) -> int:
            return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0

        sizes = {"db": self.db_path.stat().st_size, "replica": du(self.replica_path),
                 "meta": du(self.meta_path), "restores": du(out_dir), "log": self.log_path.stat().st_size}
        return GeneratedReplica(
            scenario=scn, workdir=self.workdir, db_path=self.db_path, replica_path=self.replica_path,
            meta_path=self.meta_path, config_path=self.config_path, log_path=self.log_path,
            page_size=scn.page_size, records=records, latest=latest, ltx_json=ltx_json, plans=plans,
            final_db_path=final_db, final_db_sha256=sha256_file(final_db), initial_db_path=initial,
            steps=self.steps, timings=dict(self.timings), sizes=sizes)

    def close(self) -> None:
        self.rep.kill()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


@contextlib.contextmanager
def _runner(workdir: Path, scenario: Scenario, replicator_argv: Sequence[str] | None) -> Iterator[_Runner]:
    runner = _Runner(workdir, scenario, replicator_argv)
    try:
        yield runner
    finally:
        runner.close()  # the replicator never outlives a failed (or finished) generation


def make_reference_replica(workdir: str | os.PathLike[str], scenario: Scenario, *,
                           replicator_argv: Sequence[str] | None = None) -> GeneratedReplica:
    """Run `scenario` against the real `litestream replicate` in the fresh directory `workdir`.

    `replicator_argv` replaces the reference binary as the replicator only (e.g.
    `[sys.executable, "-m", "litestream"]` to check OUR replicas with reference restores); it must keep
    local L0 files in `<dir>/.<db>-litestream/ltx/0/` like the reference does. Restores, plans and the
    `ltx` listing always come from the reference binary.
    """
    wd = Path(workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    if any(wd.iterdir()):
        raise WorkloadError(f"{wd} is not empty; make_reference_replica needs a fresh directory")
    with _runner(wd, scenario, replicator_argv) as runner:
        return runner.run()


_CACHE: dict[str, GeneratedReplica] = {}


def cached_reference_replica(tmp_path_factory: Any, scenario: Scenario) -> GeneratedReplica:
    """`make_reference_replica` once per scenario name per test session (tmp_path_factory's basetemp).

    Treat the result as read-only; copy the replica (`copy_replica`) before anything writes to it.
    """
    gen = _CACHE.get(scenario.name)
    if gen is None:
        gen = make_reference_replica(tmp_path_factory.mktemp(f"ref-{scenario.name}"), scenario)
        _CACHE[scenario.name] = gen
    return gen
