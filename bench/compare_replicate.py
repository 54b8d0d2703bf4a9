#!/usr/bin/env python3
"""Replication overhead of our `litestream replicate` against the reference binary, on the same workloads.

    python bench/compare_replicate.py cpu      [--duration 30] [--rate 1000] [--warmup 5]
    python bench/compare_replicate.py idle     [--window 60] [--settle 5] [--dbs 1,100]
    python bench/compare_replicate.py maxrate  [--duration 60] [--blob-size 4096]
    python bench/compare_replicate.py lag      [--duration 60] [--rate 100]
    python bench/compare_replicate.py all      (everything with the defaults above)
    common: [--quick] [--runs 1] [--only ours|reference] [--keep] [--tmpdir DIR] [--json OUT]

Both replicators get the same YAML config (file replica, monitor-interval 1s, sync-interval 1s, everything
else at its default) and run with their working directory in a fresh temp dir; the reference with
ref_env(), ours as `sys.executable -m litestream`. Implementations alternate (which goes first changes
every run) and os.sync() runs before each run, so writeback of one run is not charged to the next.

* cpu: a writer process (apsw, busy_timeout 5 s, synchronous NORMAL) commits small transactions (one
  INSERT of 200 bytes of text + one UPDATE) at a steady --rate for --duration seconds. The replicator's
  CPU seconds (each process's CPU-time clock, clock_gettime of clock_getcpuclockid(pid): nanoseconds,
  all threads; summed over the process tree, plus cutime+cstime of reaped children) are sampled --warmup
  seconds after the writer starts and again when it stops: start-up, the initial snapshot and shutdown
  are excluded. Reported per 1000 transactions committed in that window.
* idle: 1 and 100 small databases in one config. Once every replica holds its first L0 file and --settle
  seconds have passed, CPU is measured over --window seconds; RSS is VmRSS at the end and VmHWM (peak,
  start-up included), summed over the process tree. VmHWM belongs to the address space that execve
  creates, so unlike ru_maxrss it is not inherited from this (larger) process and needs no launcher.
* maxrate: a writer inserting --blob-size random blobs, one per transaction, as fast as it can for
  --duration seconds, first with no replicator (the baseline), then under each replicator; each on a
  fresh database. The WAL file size is sampled every 100 ms. Reported: throughput and its ratio to the
  baseline, the WAL's largest and final size, the replica's backlog when the writer stops and how long
  the replicator then needs to cover the last commit (its lag at the end).
* lag: a writer at --rate commits one row holding its commit time per transaction; for each transaction
  the time until an L0 file covering it appears in the replica (below); p50/p90/p99/max.

How "replicated" is decided (lag, and the catch-up of cpu/maxrate): after every COMMIT the writer reads
the WAL-index header from the -shm file (mxFrame and the two salts; both copies, used when they agree), so
each transaction is known as (WAL salts, WAL end offset = 32 + mxFrame * (24 + page size)). If another
connection commits or restarts the WAL in between, this is a later position, so the error is an
overestimate of the lag. A thread of
this process lists <replica>/ltx/0 every 5 ms (50 ms outside `lag`) and reads the 100-byte header of each
new L0 file: bytes 48..63 are WALOffset and WALSize (big-endian), 64..71 the WAL salts (the same bytes as
in the WAL header and the -shm). A transaction is replicated at the first time an L0 file was seen whose
salts are its own and whose WALOffset + WALSize reaches its end offset, or one from a later WAL generation
(salt-1 is incremented at every WAL restart; neither replicator restarts the WAL before syncing its
tail). A WAL restart therefore needs no special case; a snapshot L0 (offset 32) covers its whole range.
The time seen is an upper bound, within one polling interval, of when the file was renamed into place.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import apsw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.refbin import ref_env, reference_binary  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = 4096
WAL_HEADER = 32
MIB = 1 << 20
L0_NAME = re.compile(r"[0-9a-f]{16}-[0-9a-f]{16}\.ltx")
FIRST_L0 = "0000000000000001-0000000000000001.ltx"
SCHEMA = """
    CREATE TABLE t(id INTEGER PRIMARY KEY, ts REAL NOT NULL, v BLOB NOT NULL);
    CREATE TABLE counters(id INTEGER PRIMARY KEY, n INTEGER NOT NULL, ts REAL NOT NULL);"""


class BenchError(Exception):
    pass


# ------------------------------------------------------------------------------------ process accounting


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].decode().split()


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(int(name))
            if f is not None:
                children.setdefault(int(f[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def process_cpu(pid: int, stat: list[str]) -> float:
    """CPU seconds of a process: its CPU-time clock (nanoseconds, all threads, exited ones included) where
    readable, else utime+stime in clock ticks; plus cutime+cstime (children it has reaped)."""
    try:
        own = time.clock_gettime((~pid << 3) | 2)  # the process CPUCLOCK_SCHED clock, as clock_getcpuclockid()
    except OSError:
        own = (int(stat[11]) + int(stat[12])) / CLK_TCK
    return own + (int(stat[13]) + int(stat[14])) / CLK_TCK


@dataclass
class Usage:
    cpu: float  # CPU seconds of the whole tree (threads, and children reaped by it, included)
    rss_kib: int  # VmRSS summed over the tree
    hwm_kib: int  # VmHWM summed over the tree


def tree_usage(pid: int) -> Usage:
    cpu, rss, hwm = 0.0, 0, 0
    for p in process_tree(pid):
        f = _stat_fields(p)
        if f is None:
            continue
        cpu += process_cpu(p, f)
        try:
            with open(f"/proc/{p}/status") as st:
                for line in st:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return Usage(cpu, rss, hwm)


# ----------------------------------------------------------------------------------------- replicators


@dataclass
class Impl:
    name: str
    argv: list[str]
    env: dict[str, str]


def sources_fingerprint() -> str:
    """Which version of ours was measured (others edit the sources while benchmarks run): a sha256 over
    python/litestream and src, and the newest modification time among them."""
    h = hashlib.sha256()
    newest = 0.0
    files = sorted(p for root in (REPO / "python" / "litestream", REPO / "src") if root.exists()
                   for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".c", ".h"))
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
        newest = max(newest, p.stat().st_mtime)
    return f"{h.hexdigest()[:12]} (newest file {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(newest))})"


def implementations(only: str | None) -> list[Impl]:
    impls = [Impl("reference", [str(reference_binary())], ref_env()),
             Impl("ours", [sys.executable, "-m", "litestream"], dict(os.environ))]
    return [i for i in impls if only in (None, i.name)]


def ordered(impls: list[Impl], run: int) -> list[Impl]:
    return impls if run % 2 == 0 else impls[::-1]


class Replicator:
    """`litestream replicate -config CFG`, in its own session; always killed on exit."""

    def __init__(self, impl: Impl, config: Path, work: Path) -> None:
        self.impl = impl
        self.config = config
        self.work = work
        self.log_path = work / f"{impl.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Replicator:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*self.impl.argv, "replicate", "-config", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.impl.env, cwd=self.work, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def check(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise BenchError(f"{self.impl.name} replicator exited with {self.proc.returncode}:\n{self.log_tail()}")

    def usage(self) -> Usage:
        self.check()
        return tree_usage(self.pid)

    def stop(self, timeout: float = 120.0) -> float:
        """SIGTERM (final sync and upload), then SIGKILL after timeout; returns the shutdown time."""
        assert self.proc is not None
        t = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.impl.name}: no exit {timeout:.0f}s after SIGTERM, killing", file=sys.stderr)
        self._kill()
        return time.monotonic() - t

    def _kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def __exit__(self, *exc: object) -> None:
        self._kill()


# ----------------------------------------------------------------------------------- databases, configs


def pragmas(conn: apsw.Connection, *settings: str) -> None:
    """One statement each, read to the end: with several statements in one execute(), apsw runs the next
    only when the rows of the previous one have been read, so `PRAGMA a=1; PRAGMA b=2` may never set b."""
    for s in settings:
        conn.execute(f"PRAGMA {s}").fetchall()


def make_db(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    conn = apsw.Connection(str(path))
    pragmas(conn, f"page_size={PAGE_SIZE}", "journal_mode=WAL")
    conn.execute(SCHEMA)
    with conn:
        conn.executemany("INSERT INTO t(ts, v) VALUES(?, ?)",
                         [(time.time(), rng.randbytes(100).hex()) for _ in range(rows)])
        conn.executemany("INSERT INTO counters VALUES(?, 0, 0)", [(i,) for i in range(1, 101)])
    conn.close()  # the last connection: checkpoints and deletes the WAL


def write_config(path: Path, pairs: list[tuple[Path, Path]]) -> None:
    lines = ["dbs:"]
    for db, replica in pairs:
        lines += [f"  - path: {json.dumps(str(db))}",
                  "    monitor-interval: 1s",
                  "    replica:",
                  "      type: file",
                  f"      path: {json.dumps(str(replica))}",
                  "      sync-interval: 1s"]
    path.write_text("\n".join(lines) + "\n")


def wait_initial(r: Replicator, replicas: list[Path], timeout: float) -> float:
    """Wait until every replica holds its first L0 file; returns the seconds since the replicator started."""
    t0 = time.monotonic()
    todo = list(replicas)
    while todo:
        r.check()
        todo = [p for p in todo if not (p / "ltx" / "0" / FIRST_L0).exists()]
        if todo and time.monotonic() - t0 > timeout:
            raise BenchError(f"{r.impl.name}: {len(todo)} replicas without {FIRST_L0} after {timeout:.0f}s:\n"
                             f"{r.log_tail()}")
        if todo:
            time.sleep(0.02)
    return time.monotonic() - t0


def sleep_until(t: float) -> None:
    while (d := t - time.monotonic()) > 0:
        time.sleep(d)


# ------------------------------------------------------------------------------- replica L0 file watch


@dataclass(frozen=True)
class L0File:
    txid: int
    seen: float  # monotonic time it was first listed
    salts: bytes  # the 8 salt bytes as in the WAL header
    wal_offset: int
    wal_end: int


def later_generation(salts: bytes, than: bytes) -> bool:
    d = (int.from_bytes(salts[:4], "big") - int.from_bytes(than[:4], "big")) & 0xFFFFFFFF
    return 0 < d < (1 << 31)


class ReplicaWatch(threading.Thread):
    """Polls <replica>/ltx/0 and remembers when each L0 file first appeared, with its WAL range."""

    def __init__(self, ltx0: Path, interval: float) -> None:
        super().__init__(daemon=True, name="replica-watch")
        self.dir = ltx0
        self.interval = interval
        self.files: dict[str, L0File] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.poll()
            self.stopped.wait(self.interval)

    def poll(self) -> None:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return
        now = time.monotonic()
        for name in names:
            if name in self.files or not L0_NAME.fullmatch(name):
                continue
            try:
                with open(self.dir / name, "rb") as f:
                    h = f.read(100)
            except FileNotFoundError:
                continue
            if len(h) < 100 or h[:4] != b"LTX1":
                continue  # not complete yet: next poll
            off, size = int.from_bytes(h[48:56], "big"), int.from_bytes(h[56:64], "big")
            with self.lock:
                self.files[name] = L0File(int.from_bytes(h[24:32], "big"), now, h[64:72], off, off + size)

    def snapshot(self) -> list[L0File]:
        with self.lock:
            return sorted(self.files.values(), key=lambda f: f.seen)

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(5)


class Coverage:
    """When a WAL position (salts, end offset) was first covered by an L0 file in the replica."""

    def __init__(self, files: list[L0File]) -> None:
        self.gens: dict[bytes, tuple[list[float], list[int]]] = {}  # salts -> (seen times, running max end)
        for f in sorted(files, key=lambda f: f.seen):
            seen, ends = self.gens.setdefault(f.salts, ([], []))
            seen.append(f.seen)
            ends.append(max(f.wal_end, ends[-1] if ends else 0))

    def time(self, salts: bytes, end: int) -> float | None:
        best: float | None = None
        for g, (seen, ends) in self.gens.items():
            t: float | None = None
            if g == salts:
                i = bisect.bisect_left(ends, end)
                t = seen[i] if i < len(ends) else None
            elif later_generation(g, salts):
                t = seen[0]
            if t is not None and (best is None or t < best):
                best = t
        return best

    def backlog(self, salts: bytes, end: int, before: float) -> tuple[int, bool]:
        """WAL bytes of generation `salts` below `end` not covered by files seen before `before`, and whether
        files of that generation were seen at all (if not, the backlog is a lower bound)."""
        t = self.time(salts, end)
        if t is not None and t <= before:
            return 0, True
        seen, ends = self.gens.get(salts, ([], []))
        i = bisect.bisect_right(seen, before)
        covered = ends[i - 1] if i else WAL_HEADER
        return max(0, end - covered), i > 0


def wait_covered(watch: ReplicaWatch, salts: bytes, end: int, timeout: float, r: Replicator | None) -> float | None:
    """Wait until (salts, end) is covered; returns the time it was (monotonic) or None after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        t = Coverage(watch.snapshot()).time(salts, end)
        if t is not None or time.monotonic() > deadline:
            return t
        if r is not None:
            r.check()
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------- writer


def wal_index_header(shm: int) -> bytes:
    """The WAL-index header from the -shm file: szPage u16 @14, mxFrame u32 @16 (native order), salts @32.
    SQLite keeps two copies (at 0 and 48) and writes the second first; like its readers, take them only
    when both agree, so a checkpoint or commit of another connection is never read half-written."""
    for _ in range(10000):
        buf = os.pread(shm, 96, 0)
        if buf[:48] == buf[48:96] and buf[12]:
            return buf[:48]
    raise BenchError("no consistent WAL-index header in the -shm file")


def writer_main(argv: list[str]) -> None:
    """The writer process: commits transactions until --stop-at, then prints a JSON summary; per-commit
    records go to OUT.t (commit time, monotonic), OUT.lat (BEGIN..COMMIT seconds), OUT.end (WAL end
    offset after the commit) and OUT.salt (the WAL salts, 8 bytes each)."""
    ap = argparse.ArgumentParser(prog="compare_replicate.py _writer")
    ap.add_argument("--db", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=("small", "blob"), required=True)
    ap.add_argument("--rate", type=float, default=0.0, help="transactions per second, 0 = as fast as possible")
    ap.add_argument("--start-at", type=float, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--blob-size", type=int, default=4096)
    a = ap.parse_args(argv)

    conn = apsw.Connection(a.db)
    pragmas(conn, "busy_timeout=5000", "synchronous=NORMAL")
    if conn.execute("PRAGMA journal_mode").get != "wal" or conn.execute("PRAGMA synchronous").get != 1:
        sys.exit("database is not in WAL mode with synchronous=NORMAL")
    conn.execute("SELECT count(*) FROM counters").fetchall()  # opens the WAL and the -shm
    shm = os.open(a.db + "-shm", os.O_RDONLY)
    rng = random.Random(os.getpid())
    times, lats, ends, salts = array("d"), array("f"), array("Q"), bytearray()
    busy = 0
    start, stop = a.start_at, a.start_at + a.duration
    sleep_until(start)
    start = max(start, time.monotonic())
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    i = 0
    while True:
        now = time.monotonic()
        if a.rate > 0:
            due = start + i / a.rate
            if due >= stop:
                break
            if now < due:
                time.sleep(due - now)
        elif now >= stop:
            break
        t0 = time.monotonic()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except apsw.BusyError:
                busy += 1
        try:
            if a.mode == "blob":
                conn.execute("INSERT INTO t(ts, v) VALUES(?, randomblob(?))", (time.time(), a.blob_size))
            else:
                conn.execute("INSERT INTO t(ts, v) VALUES(?, ?)", (time.time(), rng.randbytes(100).hex()))
                conn.execute("UPDATE counters SET n = n + 1, ts = ? WHERE id = ?", (time.time(), rng.randint(1, 100)))
            conn.execute("COMMIT")
        except BaseException:
            if not conn.getautocommit():
                conn.execute("ROLLBACK")
            raise
        t1 = time.monotonic()
        hdr = wal_index_header(shm)
        page = int.from_bytes(hdr[14:16], "little")
        page = 65536 if page == 1 else page
        times.append(t1)
        lats.append(t1 - t0)
        ends.append(WAL_HEADER + int.from_bytes(hdr[16:20], "little") * (24 + page))
        salts += hdr[32:40]
        i += 1
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        wal_size = os.stat(a.db + "-wal").st_size  # before close(): the last connection deletes the WAL
    except FileNotFoundError:
        wal_size = 0
    conn.close()
    for suffix, arr in ((".t", times), (".lat", lats), (".end", ends)):
        with open(a.out + suffix, "wb") as f:
            arr.tofile(f)
    with open(a.out + ".salt", "wb") as f:
        f.write(salts)
    print(json.dumps({"commits": i, "busy": busy, "start": start, "stop": time.monotonic(), "wal_size": wal_size,
                      "cpu": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime,
                      "sys": ru1.ru_stime - ru0.ru_stime, "vcsw": ru1.ru_nvcsw - ru0.ru_nvcsw}))


@dataclass
class WriterResult:
    commits: int
    busy: int
    start: float
    stop: float
    wal_size: int  # WAL file size after the last commit
    cpu: float  # the writer's own CPU seconds while writing (user+sys)
    sys: float  # of which system time
    vcsw: int  # voluntary context switches (blocking waits) while writing
    times: array
    lats: array
    ends: array
    salts: bytes

    def between(self, a: float, b: float) -> int:
        return bisect.bisect_right(self.times, b) - bisect.bisect_right(self.times, a)

    def rate(self) -> float:
        return self.commits / max(1e-9, (self.times[-1] if self.times else self.stop) - self.start)

    def salt(self, i: int) -> bytes:
        return self.salts[8 * i:8 * i + 8]

    def latency_ms(self, q: float) -> float:
        return 1000 * percentile(sorted(self.lats), q)


class Writer:
    def __init__(self, db: Path, out: Path, mode: str, rate: float, start_at: float, duration: float,
                 blob_size: int = 4096) -> None:
        self.out = out
        self.timeout = start_at - time.monotonic() + duration + 120
        argv = [sys.executable, str(Path(__file__).resolve()), "_writer", "--db", str(db), "--out", str(out),
                "--mode", mode, "--rate", str(rate), "--start-at", repr(start_at), "--duration", str(duration),
                "--blob-size", str(blob_size)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def wait(self) -> WriterResult:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"writer still running after {self.timeout:.0f}s") from None
        if self.proc.returncode != 0:
            raise BenchError(f"writer failed ({self.proc.returncode}):\n{err[-3000:]}")
        s = json.loads(out.strip().splitlines()[-1])
        arrays = []
        for suffix, code in ((".t", "d"), (".lat", "f"), (".end", "Q")):
            a = array(code)
            a.frombytes(Path(str(self.out) + suffix).read_bytes())
            arrays.append(a)
        salts = Path(str(self.out) + ".salt").read_bytes()
        return WriterResult(s["commits"], s["busy"], s["start"], s["stop"], s["wal_size"], s["cpu"], s["sys"],
                            s["vcsw"], *arrays, salts)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


class Sampler(threading.Thread):
    """Calls fn every interval seconds until stopped."""

    def __init__(self, interval: float, fn: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="sampler")
        self.interval = interval
        self.fn = fn
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.fn()
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(5)


def percentile(sorted_values: list[float] | array, q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    n = len(sorted_values)
    if n == 0:
        return float("nan")
    k = (n - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# --------------------------------------------------------------------------------------------- runs


@contextlib.contextmanager
def workdir(opts: argparse.Namespace, label: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"lsbench-{label}-", dir=opts.tmpdir))
    try:
        yield path
    finally:
        if opts.keep:
            print(f"  kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_cpu(impl: Impl, opts: argparse.Namespace) -> dict[str, Any]:
    with workdir(opts, f"cpu-{impl.name}") as work:
        db, replica, cfg = work / "app.db", work / "replica", work / "litestream.yml"
        make_db(db, 1000, 1)
        write_config(cfg, [(db, replica)])
        os.sync()
        with Replicator(impl, cfg, work) as r:
            wait_initial(r, [replica], 60)
            watch = ReplicaWatch(replica / "ltx" / "0", 0.05)
            watch.start()
            try:
                start_at = time.monotonic() + 1.5
                with Writer(db, work / "w", "small", opts.rate, start_at, opts.duration) as w:
                    sleep_until(start_at + opts.warmup)
                    u0, t0 = r.usage(), time.monotonic()
                    sleep_until(start_at + opts.duration)
                    u1, t1 = r.usage(), time.monotonic()
                    res = w.wait()
                last = res.commits - 1
                covered = wait_covered(watch, res.salt(last), res.ends[last], 60, r)
                hwm = r.usage().hwm_kib
                files = [f for f in watch.snapshot() if t0 <= f.seen <= t1]
            finally:
                watch.stop()
            shutdown = r.stop()
    n = res.between(t0, t1)
    cpu = u1.cpu - u0.cpu
    return {"tx_per_s": res.rate(), "window_s": t1 - t0, "window_tx": n, "cpu_s": cpu,
            "cpu_per_1000_tx": 1000 * cpu / max(1, n), "cpu_pct": 100 * cpu / (t1 - t0),
            "l0_per_s": len(files) / (t1 - t0), "peak_rss_mib": hwm / 1024, "writer_busy": res.busy,
            "commit_p99_ms": res.latency_ms(99), "commit_max_ms": res.latency_ms(100),
            "catch_up_s": None if covered is None else covered - res.times[last], "shutdown_s": shutdown}


def run_idle(impl: Impl, n_dbs: int, opts: argparse.Namespace) -> dict[str, Any]:
    with workdir(opts, f"idle{n_dbs}-{impl.name}") as work:
        pairs = [(work / f"db{i:03d}.db", work / "replica" / f"db{i:03d}") for i in range(n_dbs)]
        for i, (db, _) in enumerate(pairs):
            make_db(db, 200, i)
        cfg = work / "litestream.yml"
        write_config(cfg, pairs)
        os.sync()
        with Replicator(impl, cfg, work) as r:
            ready = wait_initial(r, [rep for _, rep in pairs], 120 + n_dbs)
            time.sleep(opts.settle)
            u0, t0 = r.usage(), time.monotonic()
            peak_rss = u0.rss_kib
            while time.monotonic() < t0 + opts.window:
                time.sleep(min(1.0, max(0.0, t0 + opts.window - time.monotonic())))
                peak_rss = max(peak_rss, r.usage().rss_kib)
            u1, t1 = r.usage(), time.monotonic()
            r.stop()
    cpu = u1.cpu - u0.cpu
    return {"dbs": n_dbs, "ready_s": ready, "window_s": t1 - t0, "cpu_s": cpu, "cpu_pct": 100 * cpu / (t1 - t0),
            "rss_mib": u1.rss_kib / 1024, "max_rss_in_window_mib": peak_rss / 1024, "peak_rss_mib": u1.hwm_kib / 1024}


def run_maxrate(impl: Impl | None, opts: argparse.Namespace) -> dict[str, Any]:
    name = impl.name if impl else "baseline"
    with workdir(opts, f"maxrate-{name}") as work:
        db, replica, cfg = work / "app.db", work / "replica", work / "litestream.yml"
        make_db(db, 1000, 2)
        write_config(cfg, [(db, replica)])
        os.sync()
        wal = Path(str(db) + "-wal")
        wal_sizes: list[int] = []

        def sample_wal() -> None:
            try:
                wal_sizes.append(wal.stat().st_size)
            except FileNotFoundError:
                wal_sizes.append(0)

        with contextlib.ExitStack() as stack:
            r: Replicator | None = None
            watch: ReplicaWatch | None = None
            if impl is not None:
                r = stack.enter_context(Replicator(impl, cfg, work))
                wait_initial(r, [replica], 60)
                watch = ReplicaWatch(replica / "ltx" / "0", 0.05)
                watch.start()
                stack.callback(watch.stop)
            u0 = r.usage() if r else None
            sampler = Sampler(0.1, sample_wal)
            start_at = time.monotonic() + 1.5
            with Writer(db, work / "w", "blob", 0, start_at, opts.duration, opts.blob_size) as w:
                sampler.start()
                stack.callback(sampler.stop)
                res = w.wait()
            wal_at_stop = res.wal_size
            wal_max = max([*wal_sizes, wal_at_stop])
            q = opts.duration / 4
            out: dict[str, Any] = {"tx_per_s": res.rate(), "commits": res.commits,
                                   "tx_per_s_first_q": res.between(res.start, res.start + q) / q,
                                   "tx_per_s_last_q": res.between(res.times[-1] - q, res.times[-1]) / q,
                                   "wal_max_mib": wal_max / MIB, "wal_at_stop_mib": wal_at_stop / MIB,
                                   "commit_p99_ms": res.latency_ms(99), "commit_max_ms": res.latency_ms(100),
                                   "writer_busy": res.busy, "db_mib": db.stat().st_size / MIB,
                                   "writer_cpu_pct": 100 * res.cpu / (res.stop - res.start),
                                   "writer_sys_pct": 100 * res.sys / (res.stop - res.start),
                                   "writer_waits_per_s": res.vcsw / (res.stop - res.start)}
            if r is not None and watch is not None and u0 is not None:
                last = res.commits - 1
                salts, end = res.salt(last), res.ends[last]
                backlog, _ = Coverage(watch.snapshot()).backlog(salts, end, res.times[last])
                covered = wait_covered(watch, salts, end, opts.catchup_timeout, r)
                u1 = r.usage()
                files = watch.snapshot()
                sampler.stop()
                out |= {"backlog_at_stop_mib": backlog / MIB,
                        "catch_up_s": None if covered is None else max(0.0, covered - res.times[last]),
                        "replica_txid": max((f.txid for f in files), default=0), "l0_files": len(files),
                        "replicator_cpu_s": u1.cpu - u0.cpu, "peak_rss_mib": u1.hwm_kib / 1024,
                        "wal_max_incl_catch_up_mib": max(wal_sizes, default=0) / MIB}
                out["shutdown_s"] = r.stop(opts.catchup_timeout)
    return out


def run_lag(impl: Impl, opts: argparse.Namespace) -> dict[str, Any]:
    with workdir(opts, f"lag-{impl.name}") as work:
        db, replica, cfg = work / "app.db", work / "replica", work / "litestream.yml"
        make_db(db, 1000, 3)
        write_config(cfg, [(db, replica)])
        os.sync()
        with Replicator(impl, cfg, work) as r:
            wait_initial(r, [replica], 60)
            watch = ReplicaWatch(replica / "ltx" / "0", 0.005)
            watch.start()
            try:
                start_at = time.monotonic() + 1.5
                with Writer(db, work / "w", "small", opts.lag_rate, start_at, opts.duration) as w:
                    res = w.wait()
                last = res.commits - 1
                wait_covered(watch, res.salt(last), res.ends[last], 60, r)
                files = watch.snapshot()
            finally:
                watch.stop()
            r.stop()
    cov = Coverage(files)
    lags, missing = [], 0
    for i in range(res.commits):
        t = cov.time(res.salt(i), res.ends[i])
        if t is None:
            missing += 1
        else:
            lags.append(max(0.0, t - res.times[i]))
    lags.sort()
    return {"commits": res.commits, "tx_per_s": res.rate(), "l0_files": len(files), "missing": missing,
            "p50_ms": 1000 * percentile(lags, 50), "p90_ms": 1000 * percentile(lags, 90),
            "p99_ms": 1000 * percentile(lags, 99), "max_ms": 1000 * percentile(lags, 100),
            "mean_ms": 1000 * statistics.fmean(lags) if lags else float("nan")}


# ------------------------------------------------------------------------------------------- reports


@dataclass
class Results:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, key: str, row: dict[str, Any]) -> None:
        row["load1"] = os.getloadavg()[0]  # the machine is shared: how busy it was at the end of the run
        self.runs.setdefault(key, []).append(row)

    def med(self, key: str, col: str) -> float | None:
        vals = [r[col] for r in self.runs.get(key, []) if r.get(col) is not None]
        return statistics.median(vals) if vals else None


def fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def table(title: str, res: Results, keys: list[tuple[str, str]], cols: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    head = f"{'':<18}" + "".join(f"{h:>{max(9, len(h) + 2)}}" for h, _, _ in cols)
    print(head)
    for label, key in keys:
        if key not in res.runs:
            continue
        print(f"{label:<18}" + "".join(f"{fmt(res.med(key, c), s):>{max(9, len(h) + 2)}}" for h, c, s in cols))


def verdict(name: str, value: float | None, target: str, ok: bool | None) -> None:
    flag = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<46} {fmt(value, '.3f'):>7}   target {target}{flag}")


def report_cpu(res: Results, opts: argparse.Namespace) -> None:
    table(f"cpu: writer at {opts.rate:g} tx/s for {opts.duration:g}s, replicator CPU over the last "
          f"{opts.duration - opts.warmup:g}s (median of {opts.runs})", res,
          [("reference", "cpu/reference"), ("ours", "cpu/ours")],
          [("tx/s", "tx_per_s", ".0f"), ("cpu s", "cpu_s", ".2f"), ("cpu %", "cpu_pct", ".1f"),
           ("cpu s/1000 tx", "cpu_per_1000_tx", ".4f"), ("L0 files/s", "l0_per_s", ".2f"),
           ("peak RSS MiB", "peak_rss_mib", ".1f"),
           ("commit p99 ms", "commit_p99_ms", ".2f"), ("commit max ms", "commit_max_ms", ".1f"),
           ("catch-up s", "catch_up_s", ".2f")])
    r = ratio(res.med("cpu/ours", "cpu_per_1000_tx"), res.med("cpu/reference", "cpu_per_1000_tx"))
    verdict("cpu s per 1000 tx, ours/reference", r, "<= 0.5", None if r is None else r <= 0.5)


def report_idle(res: Results, opts: argparse.Namespace) -> None:
    keys = [(f"{n} db{'s' if n > 1 else ''} {i}", f"idle{n}/{i}") for n in opts.dbs for i in ("reference", "ours")]
    table(f"idle: CPU over {opts.window:g}s after initial replication + {opts.settle:g}s, RSS "
          f"(median of {opts.runs})", res, keys,
          [("ready s", "ready_s", ".2f"), ("cpu s", "cpu_s", ".3f"), ("cpu %", "cpu_pct", ".3f"),
           ("RSS MiB", "rss_mib", ".1f"), ("peak RSS MiB", "peak_rss_mib", ".1f")])
    for n in opts.dbs:
        c = ratio(res.med(f"idle{n}/ours", "cpu_s"), res.med(f"idle{n}/reference", "cpu_s"))
        m = ratio(res.med(f"idle{n}/ours", "rss_mib"), res.med(f"idle{n}/reference", "rss_mib"))
        p = ratio(res.med(f"idle{n}/ours", "peak_rss_mib"), res.med(f"idle{n}/reference", "peak_rss_mib"))
        big = n >= 100
        verdict(f"{n} dbs: idle cpu, ours/reference", c, "<= 0.3" if big else "-",
                (c <= 0.3) if big and c is not None else None)
        verdict(f"{n} dbs: RSS, ours/reference", m, "<= 1", None if m is None else m <= 1)
        verdict(f"{n} dbs: peak RSS, ours/reference", p, "<= 1", None if p is None else p <= 1)


def report_maxrate(res: Results, opts: argparse.Namespace) -> None:
    table(f"maxrate: {opts.blob_size}-byte blob per transaction, as fast as possible for {opts.duration:g}s "
          f"(median of {opts.runs})", res,
          [("no replicator", "maxrate/baseline"), ("reference", "maxrate/reference"), ("ours", "maxrate/ours")],
          [("tx/s", "tx_per_s", ".0f"), ("first 1/4", "tx_per_s_first_q", ".0f"),
           ("last 1/4", "tx_per_s_last_q", ".0f"),
           ("WAL max MiB", "wal_max_mib", ".1f"), ("WAL at end MiB", "wal_at_stop_mib", ".1f"),
           ("commit p99 ms", "commit_p99_ms", ".2f"), ("commit max ms", "commit_max_ms", ".0f"),
           ("backlog MiB", "backlog_at_stop_mib", ".1f"), ("catch-up s", "catch_up_s", ".2f"),
           ("repl. cpu s", "replicator_cpu_s", ".1f"), ("peak RSS MiB", "peak_rss_mib", ".1f")])
    base = res.med("maxrate/baseline", "tx_per_s")
    for name in ("ours", "reference"):
        r = ratio(res.med(f"maxrate/{name}", "tx_per_s"), base)
        verdict(f"{name}: writer throughput / no replicator", r, ">= 0.8" if name == "ours" else "-",
                (r >= 0.8) if name == "ours" and r is not None else None)


def report_lag(res: Results, opts: argparse.Namespace) -> None:
    table(f"lag: commit -> covering L0 file in the replica, writer at {opts.lag_rate:g} tx/s for "
          f"{opts.duration:g}s (median of {opts.runs})", res,
          [("reference", "lag/reference"), ("ours", "lag/ours")],
          [("commits", "commits", ".0f"), ("L0 files", "l0_files", ".0f"), ("missing", "missing", ".0f"),
           ("p50 ms", "p50_ms", ".0f"), ("p90 ms", "p90_ms", ".0f"), ("p99 ms", "p99_ms", ".0f"),
           ("max ms", "max_ms", ".0f"), ("mean ms", "mean_ms", ".0f")])
    r = ratio(res.med("lag/ours", "p99_ms"), res.med("lag/reference", "p99_ms"))
    verdict("lag p99, ours/reference", r, "-", None)


def show(row: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def bench_cpu(opts: argparse.Namespace, res: Results) -> None:
    for i in range(opts.runs):
        for impl in ordered(implementations(opts.only), i):
            row = run_cpu(impl, opts)
            res.add(f"cpu/{impl.name}", row)
            print(f"cpu run {i + 1} {impl.name}: {show(row)}", flush=True)
    report_cpu(res, opts)


def bench_idle(opts: argparse.Namespace, res: Results) -> None:
    for n in opts.dbs:
        for i in range(opts.runs):
            for impl in ordered(implementations(opts.only), i):
                row = run_idle(impl, n, opts)
                res.add(f"idle{n}/{impl.name}", row)
                print(f"idle run {i + 1} {impl.name}: {show(row)}", flush=True)
    report_idle(res, opts)


def bench_maxrate(opts: argparse.Namespace, res: Results) -> None:
    for i in range(opts.runs):
        for impl in [None, *ordered(implementations(opts.only), i)]:
            row = run_maxrate(impl, opts)
            name = impl.name if impl else "baseline"
            res.add(f"maxrate/{name}", row)
            print(f"maxrate run {i + 1} {name}: {show(row)}", flush=True)
    report_maxrate(res, opts)


def bench_lag(opts: argparse.Namespace, res: Results) -> None:
    for i in range(opts.runs):
        for impl in ordered(implementations(opts.only), i):
            row = run_lag(impl, opts)
            res.add(f"lag/{impl.name}", row)
            print(f"lag run {i + 1} {impl.name}: {show(row)}", flush=True)
    report_lag(res, opts)


# ---------------------------------------------------------------------------------------------- main

DEFAULTS: dict[str, Any] = {"duration": None, "rate": 1000.0, "warmup": 5.0, "window": 60.0, "settle": 5.0,
                            "dbs": "1,100", "blob_size": 4096, "lag_rate": 100.0, "catchup_timeout": 180.0}
DURATION = {"cpu": 30.0, "maxrate": 60.0, "lag": 60.0}
QUICK: dict[str, Any] = {"duration": 8.0, "warmup": 2.0, "window": 10.0, "settle": 2.0, "dbs": "1,10",
                         "catchup_timeout": 60.0}


def main() -> None:
    if sys.argv[1:2] == ["_writer"]:
        writer_main(sys.argv[2:])
        return
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true", help="a short smoke run (8-10 s workloads, 1 and 10 dbs)")
    common.add_argument("--runs", type=int, default=1, help="runs per implementation (default 1); medians reported")
    common.add_argument("--only", choices=("ours", "reference"), help="run one implementation only")
    common.add_argument("--keep", action="store_true", help="keep the temp dirs (databases, replicas, logs)")
    common.add_argument("--tmpdir", help="where the temp dirs go (default: the system temp dir)")
    common.add_argument("--json", help="also write all results to this JSON file")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_cpu = sub.add_parser("cpu", parents=[common], help="replicator CPU per 1000 transactions at a steady rate")
    p_idle = sub.add_parser("idle", parents=[common], help="idle CPU and RSS with 1 and 100 databases")
    p_max = sub.add_parser("maxrate", parents=[common], help="max-rate writer throughput, WAL growth, catch-up")
    p_lag = sub.add_parser("lag", parents=[common], help="commit-to-replica lag percentiles")
    sub.add_parser("all", parents=[common], help="cpu, idle, maxrate and lag with their defaults")
    for p in (p_cpu, p_max, p_lag):
        p.add_argument("--duration", type=float, help="writer seconds (cpu 30, maxrate 60, lag 60; --quick 8)")
    p_cpu.add_argument("--rate", type=float, help="transactions per second (default 1000)")
    p_cpu.add_argument("--warmup", type=float, help="seconds of writing before CPU is sampled (default 5)")
    p_idle.add_argument("--window", type=float, help="idle seconds measured (default 60)")
    p_idle.add_argument("--settle", type=float, help="seconds after initial replication before it (default 5)")
    p_idle.add_argument("--dbs", help="comma-separated database counts (default 1,100)")
    p_max.add_argument("--blob-size", type=int, help="bytes per inserted blob (default 4096)")
    p_max.add_argument("--catchup-timeout", type=float, help="seconds to wait for the replica (default 180)")
    p_lag.add_argument("--rate", dest="lag_rate", type=float, help="transactions per second (default 100)")
    opts = ap.parse_args()

    for k, v in DEFAULTS.items():
        if getattr(opts, k, None) is None:
            setattr(opts, k, QUICK[k] if opts.quick and k in QUICK else v)
    opts.dbs = [int(x) for x in str(opts.dbs).split(",")]
    durations = {c: opts.duration or (QUICK["duration"] if opts.quick else d) for c, d in DURATION.items()}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so every child gets killed

    fingerprint = sources_fingerprint()
    print(f"reference {reference_binary()}\nours {sys.executable} -m litestream, sources {fingerprint}\n"
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    res = Results()
    steps: dict[str, Callable[[argparse.Namespace, Results], None]] = {
        "cpu": bench_cpu, "idle": bench_idle, "maxrate": bench_maxrate, "lag": bench_lag}
    reports: dict[str, Callable[[Results, argparse.Namespace], None]] = {
        "cpu": report_cpu, "idle": report_idle, "maxrate": report_maxrate, "lag": report_lag}
    cmds = list(steps) if opts.cmd == "all" else [opts.cmd]
    versions: dict[str, list[str]] = {}
    try:
        for cmd in cmds:
            opts.duration = durations.get(cmd)
            print(f"\n== {cmd}", flush=True)
            steps[cmd](opts, res)
            versions[cmd] = [fingerprint, sources_fingerprint()]
            if versions[cmd][1] != fingerprint:
                print(f"WARNING: our sources changed while `{cmd}` ran: now {versions[cmd][1]}")
                fingerprint = versions[cmd][1]
    except BenchError as e:
        sys.exit(f"benchmark failed: {e}")
    finally:
        if opts.json:
            Path(opts.json).write_text(json.dumps({"options": vars(opts), "ours_sources": versions,
                                                   "results": asdict(res)}, indent=1, default=str))
    if len(cmds) > 1:
        print("\n== summary")
        for cmd in cmds:
            opts.duration = durations.get(cmd)
            reports[cmd](res, opts)


if __name__ == "__main__":
    main()
