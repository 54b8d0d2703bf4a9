#!/usr/bin/env python3
"""Compaction, snapshots and retention, ours against the reference binary, on the same workload.

    python bench/compare_compaction.py storage [--size-mib 1024]     # replica bytes + local disk, peak RSS
    python bench/compare_compaction.py l1 [--files 10000]             # L1 compaction of many L0 files
    python bench/compare_compaction.py history [--files 10000]        # restore of a long L0 history
    python bench/compare_compaction.py big [--size-mib 4096]          # peak RSS: snapshot, compaction

storage: a --size-mib database of random 4000-byte blobs is replicated from scratch, with the default
schedule's first hour played in --seconds (40 s): L1 30s, L2 5m, L3 1h and l0-retention 5m become
1s/3s/6s and 4s, and the daily snapshot keeps its 24h interval, so it runs once, at start, as it does in
a real first hour; an application updates a few rows a second. Printed for both: the replica's bytes on
disk (hard links counted once), the meta dir's, and the replicator's peak RSS, with the ratios.

l1: a replica holding --files L0 files (one per transaction, written by ours) gets its first L1
compaction from each implementation (levels: one 1h level, so it runs once, at start); printed: the
time from start to the L1 file, CPU seconds and peak RSS.

history: the same replica (a snapshot and --files - 1 L0 files) restored by each, 3 runs alternating;
printed: the median wall time, CPU and peak RSS; both outputs must be byte-identical.

big: a --size-mib database (4 GiB by default) of random blobs, each implementation on its own copy,
in three separate processes so each phase has its own peak RSS: `replicate -once` (the first sync:
the whole database into one L0 file), then after a few transactions `replicate -once -force-snapshot`
(an L9 snapshot of the whole database), then `replicate` with one 1h level until its first L1 file
(a merge of the whole-database L0 file with the later ones). Printed per phase: wall time, CPU and
peak RSS, and the ratios; the target is a peak RSS <= 64 MiB in each phase whatever the size."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from compare_replicate import Replicator, implementations, pragmas, sources_fingerprint  # noqa: E402

BLOB = 4000


def disk_bytes(root: Path) -> int:
    """Bytes allocated under root, each inode once (hard-linked copies are free)."""
    seen, total = set(), 0
    for p in root.rglob("*"):
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if p.is_file() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total


def make_db(path: Path, size_mib: int) -> None:
    conn = apsw.Connection(str(path))
    pragmas(conn, "journal_mode=wal", "synchronous=off")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    rows = size_mib * (1 << 20) // (BLOB + 100)
    with conn:
        conn.executemany("INSERT INTO t(v) VALUES (randomblob(?))", [(BLOB,)] * rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def config(path: Path, db: Path, replica: Path, levels: list[str], snapshot: str, extra: str = "") -> None:
    lv = "".join(f"  - interval: {i}\n" for i in levels)
    path.write_text(f"levels:\n{lv}snapshot:\n  interval: {snapshot}\n  retention: 24h\n{extra}"
                    f"dbs:\n  - path: {db}\n    monitor-interval: 1s\n"
                    f"    replica:\n      type: file\n      path: {replica}\n      sync-interval: 1s\n")


def storage(args) -> None:
    cache = Path(tempfile.gettempdir()) / f"litestream-bench-compaction-{args.size_mib}.db"
    if not cache.exists():
        print(f"making a {args.size_mib} MiB database ...", flush=True)
        make_db(cache, args.size_mib)
    results = {}
    for impl in implementations(args.only):
        work = Path(tempfile.mkdtemp(prefix=f"bench-compaction-{impl.name}-"))
        try:
            db, replica = work / "app.db", work / "replica"
            shutil.copy(cache, db)
            cfg = work / "litestream.yml"
            config(cfg, db, replica, ["1s", "3s", "6s"], "24h",
                   "l0-retention: 4s\nl0-retention-check-interval: 1s\n")
            app = apsw.Connection(str(db))
            with Replicator(impl, cfg, work) as r:
                peak = 0
                t0 = time.monotonic()
                i = 0
                while time.monotonic() - t0 < args.seconds:
                    with app:
                        app.execute("UPDATE t SET v = randomblob(?) WHERE id = ?", (BLOB, 1 + (i * 7919) % 1000))
                    i += 1
                    peak = max(peak, r.usage().hwm_kib)
                    time.sleep(0.2)
                r.stop()
            app.close()
            meta = work / ".app.db-litestream"
            logical = os.path.getsize(db)
            results[impl.name] = (disk_bytes(replica), disk_bytes(meta), peak / 1024, logical)
            levels = sorted(int(p.name) for p in (replica / "ltx").iterdir())
            print(f"{impl.name:9s} replica {results[impl.name][0] / 2**20:8.1f} MiB "
                  f"({results[impl.name][0] / logical:.2f}x the database)  meta {results[impl.name][1] / 2**20:7.1f} "
                  f"MiB  peak RSS {results[impl.name][2]:6.1f} MiB  levels {levels}", flush=True)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        o, f = results["ours"], results["reference"]
        print(f"ratios ours/reference: replica {o[0] / f[0]:.2f}, meta {o[1] / max(f[1], 1):.2f}, "
              f"peak RSS {o[2] / f[2]:.2f}")


def make_l0_replica(work: Path, files: int) -> tuple[Path, Path]:
    """A database and a replica of `files` L0 files, written by ours, one transaction each."""
    from litestream.backends.file import FileReplicaClient
    from litestream.db.database import Database, DBSettings
    from litestream.replica import Replica

    db = work / "app.db"
    app = apsw.Connection(str(db))
    pragmas(app, "journal_mode=wal")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    d = Database(str(db), DBSettings(monitor_interval_s=0, checkpoint_interval_s=0, min_checkpoint_page_n=500))
    replica = Replica(d, FileReplicaClient(str(work / "replica")))
    for i in range(files - 1):
        with app:
            app.execute("INSERT INTO t(v) VALUES (randomblob(200))")
            app.execute("UPDATE t SET v = randomblob(300) WHERE id = ?", (1 + i // 3,))
        d.sync()
    while replica.sync():
        pass
    d.close()
    app.close()
    return db, work / "replica"


def l1(args) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-l1-"))
    try:
        print(f"writing a replica of {args.files} L0 files ...", flush=True)
        (base / "src").mkdir()
        src_db, src_replica = make_l0_replica(base / "src", args.files)
        results = {}
        for impl in implementations(args.only):
            work = base / impl.name
            work.mkdir()
            db = work / "app.db"
            shutil.copy(src_db, db)
            shutil.copytree(src_replica, work / "replica")
            cfg = work / "litestream.yml"
            config(cfg, db, work / "replica", ["1h"], "24h")
            l1_dir = work / "replica" / "ltx" / "1"
            took, cpu, rss = until_first_l1(impl, cfg, work, l1_dir, 600, 0.01)
            results[impl.name] = (took, cpu, rss)
            name = next(l1_dir.iterdir()).name
            print(f"{impl.name:9s} L1 {name} after {took:6.2f} s, CPU {cpu:6.2f} s, "
                  f"peak RSS {results[impl.name][2]:6.1f} MiB", flush=True)
        if len(results) == 2:
            o, f = results["ours"], results["reference"]
            print(f"ratios ours/reference: time {o[0] / f[0]:.2f}, CPU {o[1] / f[1]:.2f}, peak RSS {o[2] / f[2]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def history(args) -> None:
    import hashlib
    import statistics

    base = Path(tempfile.mkdtemp(prefix="bench-history-"))
    try:
        print(f"writing a replica of {args.files} L0 files ...", flush=True)
        (base / "src").mkdir()
        _, replica = make_l0_replica(base / "src", args.files)
        runs: dict[str, list[tuple[float, float, float]]] = {}
        digests = set()
        impls = implementations(args.only)
        for run in range(3):
            for impl in impls if run % 2 == 0 else impls[::-1]:
                out = base / f"out-{impl.name}.db"
                out.unlink(missing_ok=True)
                t0 = time.monotonic()
                proc = subprocess.Popen([*impl.argv, "restore", "-o", str(out), f"file://{replica}"],
                                        env=impl.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                _, status, ru = os.wait4(proc.pid, 0)
                took = time.monotonic() - t0
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"{impl.name} restore failed: {proc.stderr.read().decode()}")
                runs.setdefault(impl.name, []).append((took, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024))
                digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
        if len(digests) != 1:
            raise SystemExit("the restores differ")
        med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in runs.items()}
        for name, (took, cpu, rss) in med.items():
            print(f"{name:9s} restore of {args.files} TXIDs: {took:6.2f} s, CPU {cpu:6.2f} s, peak RSS {rss:6.1f} MiB")
        if len(med) == 2:
            o, f = med["ours"], med["reference"]
            print(f"ratios ours/reference: time {o[0] / f[0]:.2f}, CPU {o[1] / f[1]:.2f}, peak RSS {o[2] / f[2]:.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def until_first_l1(impl, cfg: Path, work: Path, l1_dir: Path, timeout: float, poll: float,
                   ) -> tuple[float, float, float]:
    """`replicate` until its first L1 file appears: wall seconds, CPU seconds, peak RSS in MiB."""
    with Replicator(impl, cfg, work) as r:
        t0, peak = time.monotonic(), 0
        while not (l1_dir.exists() and any(p.suffix == ".ltx" for p in l1_dir.iterdir())):
            peak = max(peak, r.usage().hwm_kib)  # usage() also fails if the process died
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"{impl.name}: no L1 file after {timeout:.0f} s")
            time.sleep(poll)
        took = time.monotonic() - t0
        u = r.usage()
        r.stop()
    return took, u.cpu, max(peak, u.hwm_kib) / 1024


def run_once(impl, cfg: Path, *flags: str) -> tuple[float, float, float]:
    """`replicate -once` with flags, to completion: wall seconds, CPU seconds, peak RSS in MiB."""
    t0 = time.monotonic()
    proc = subprocess.Popen([*impl.argv, "replicate", "-once", *flags, "-config", str(cfg)],
                            env=impl.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    took = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{impl.name} replicate -once {' '.join(flags)} failed: {proc.stderr.read().decode()}")
    return took, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def big(args) -> None:
    cache = Path(tempfile.gettempdir()) / f"litestream-bench-compaction-{args.size_mib}.db"
    if not cache.exists():
        print(f"making a {args.size_mib} MiB database ...", flush=True)
        make_db(cache, args.size_mib)
    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    for impl in implementations(args.only):
        work = Path(tempfile.mkdtemp(prefix=f"bench-big-{impl.name}-"))
        try:
            db, replica, cfg = work / "app.db", work / "replica", work / "litestream.yml"
            shutil.copy(cache, db)
            config(cfg, db, replica, ["1h"], "24h")
            phases = results[impl.name] = {}
            phases["first sync"] = run_once(impl, cfg)
            app = apsw.Connection(str(db))
            for i in range(20):
                with app:
                    app.execute("UPDATE t SET v = randomblob(?) WHERE id = ?", (BLOB, 1 + i * 7919))
                if i % 5 == 4:
                    run_once(impl, cfg)  # a few more L0 files for the merge
            app.close()
            phases["snapshot"] = run_once(impl, cfg, "-force-snapshot")
            l1_dir = replica / "ltx" / "1"
            phases["L1 compaction"] = until_first_l1(impl, cfg, work, l1_dir, 1800, 0.05)
            for name, (w, c, m) in phases.items():
                print(f"{impl.name:9s} {name:14s} {w:7.1f} s, CPU {c:7.1f} s, peak RSS {m:7.1f} MiB", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        for name in results["ours"]:
            o, f = results["ours"][name], results["reference"][name]
            print(f"ratios ours/reference, {name}: time {o[0] / f[0]:.2f}, CPU {o[1] / f[1]:.2f}, "
                  f"peak RSS {o[2] / f[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["storage", "l1", "history", "big"])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--only", choices=["ours", "reference"])
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    print(f"ours: {sources_fingerprint()}", flush=True)
    {"storage": storage, "l1": l1, "history": history, "big": big}[args.what](args)


if __name__ == "__main__":
    main()
