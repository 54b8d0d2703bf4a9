#!/usr/bin/env python3
"""What a kill -9 of both the replicator and the application costs when replication resumes, ours against
the reference binary, on the same database.

    python bench/compare_crash_resume.py [--size-mib 1024] [--rows 2000] [--scenario same-wal|wal-restart]
                                         [--only ours|reference] [--keep]

For each implementation, on a fresh copy of one database (--size-mib of 4000-byte random blobs):
1. `litestream replicate` (file replica, monitor-interval and sync-interval 1s) takes its initial snapshot;
2. an application process updates --rows random rows while it runs, and they are replicated;
3. the replicator is SIGKILLed; the application updates --rows other random rows, copies them into the
   database file with its own wal_checkpoint(PASSIVE), and is SIGKILLed too (so the next process to
   open the database rebuilds SQLite's WAL index: the case of issue 7). Scenario same-wal: with
   wal_autocheckpoint off, so the WAL still holds every frame; wal-restart: with SQLite's default
   autocheckpoint, whose complete checkpoint lets the next transaction restart the WAL, so the frames
   the replicator never saw are gone from it and only a snapshot can replicate them;
4. the replicator starts again. Measured until the replica has been quiet for 3 s: the time to the last
   new replica file ("resume"), the bytes the replica grew by, and the replicator's CPU seconds;
5. after a SIGTERM (final sync), both restores of the replica (ours, which verifies the database
   checksums, and the reference's) must hold exactly the source's rows.

In same-wal, ours resumes with one small L0 file whose checksum is computed from the whole state (one
read of the database file). Both scenarios run by default."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # compare_replicate, and the repository for tests.refbin

from tests.refbin import ref_env, reference_binary  # noqa: E402

from compare_replicate import (  # noqa: E402
    BenchError,
    Impl,
    Replicator,
    implementations,
    pragmas,
    sources_fingerprint,
    tree_usage,
    wait_initial,
    write_config,
)

BLOB = 4000
UPDATE = """
import apsw, random, sys
conn = apsw.Connection(sys.argv[1])
conn.set_busy_timeout(5000)
n, seed, rows = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if sys.argv[6] == "same-wal":
    conn.execute("PRAGMA wal_autocheckpoint=0").fetchall()
rng = random.Random(seed)
ids = rng.sample(range(1, rows + 1), n)
for i in range(0, n, 100):
    with conn:
        for row in ids[i:i + 100]:
            conn.execute("UPDATE t SET v = randomblob(?) WHERE id = ?", (BLOB, row))
if sys.argv[5] == "checkpoint":
    print(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall(), flush=True)
print("done", flush=True)
sys.stdin.read()  # stay alive (the database open) until killed
""".replace("BLOB", str(BLOB))


def make_db(path: Path, size_mib: int) -> int:
    rows = size_mib * (1 << 20) // (BLOB + 100)
    conn = apsw.Connection(str(path))
    pragmas(conn, "page_size=4096", "journal_mode=WAL")
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    with conn:
        conn.executemany("INSERT INTO t(v) VALUES (randomblob(?))", [(BLOB,)] * rows)
    conn.close()
    return rows


def digest(path: Path) -> str:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        h = hashlib.sha256()
        for row_id, v in conn.execute("SELECT id, v FROM t ORDER BY id"):
            h.update(row_id.to_bytes(8, "big") + v)
        return h.hexdigest()
    finally:
        conn.close()


def replica_files(replica: Path) -> dict[str, int]:
    return {str(p.relative_to(replica)): p.stat().st_size for p in replica.rglob("*.ltx")}


def app(db: Path, n: int, seed: int, rows: int, checkpoint: bool, scenario: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", UPDATE, str(db), str(n), str(seed), str(rows),
                             "checkpoint" if checkpoint else "-", scenario],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    while (line := proc.stdout.readline()) and line.strip() != "done":
        pass
    return proc


def run(impl: Impl, base: Path, work: Path, rows: int, n: int, scenario: str) -> dict:
    work.mkdir(parents=True)
    db, replica = work / "app.db", work / "replica"
    shutil.copyfile(base, db)
    cfg = work / "litestream.yml"
    write_config(cfg, [(db, replica)])
    with Replicator(impl, cfg, work) as r:
        wait_initial(r, [replica], 600)
        writer = app(db, n, 1, rows, False, scenario)
        time.sleep(3)
        os.killpg(r.pid, signal.SIGKILL)
        r.proc.wait()
    writer.kill()
    writer.wait()
    writer = app(db, n, 2, rows, True, scenario)
    writer.kill()
    writer.wait()
    want = digest(db)
    before = replica_files(replica)
    with Replicator(impl, cfg, work) as r:
        t0 = time.monotonic()
        last_change, seen = t0, dict(before)
        while time.monotonic() - last_change < 3 or seen == before:
            now = replica_files(replica)
            if now != seen:
                seen, last_change = now, time.monotonic()
            if time.monotonic() - t0 > 900:
                raise BenchError(f"{impl.name}: no new replica file 900 s after the restart:\n{r.log_tail()}")
            time.sleep(0.02)
        cpu = tree_usage(r.pid).cpu
        r.stop()
    grown = sum(size for name, size in seen.items() if before.get(name) != size)
    restored = {}
    for tool, argv, env in (("ours", [sys.executable, "-m", "litestream"], dict(os.environ)),
                            ("reference", [str(reference_binary())], ref_env())):
        out = work / f"restored-{tool}.db"
        proc = subprocess.run([*argv, "restore", "-o", str(out), f"file://{replica}"], capture_output=True,
                              text=True, env=env, timeout=900)
        restored[tool] = "ok" if proc.returncode == 0 and digest(out) == want else \
            (f"refused: {proc.stderr.strip()[:200]}" if proc.returncode else "wrong rows")
    return {"resume_s": last_change - t0, "grown_mib": grown / (1 << 20), "cpu_s": cpu, "restores": restored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=2000, help="rows the application updates in each phase")
    ap.add_argument("--only", choices=["ours", "reference"])
    ap.add_argument("--scenario", choices=["same-wal", "wal-restart"], action="append")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--tmpdir", default=None)
    opts = ap.parse_args()
    print(f"ours: {sources_fingerprint()}; reference: {reference_binary()}")
    tmp = Path(tempfile.mkdtemp(prefix="crash-resume-", dir=opts.tmpdir))
    try:
        base = tmp / "base.db"
        rows = make_db(base, opts.size_mib)
        print(f"database: {base.stat().st_size / (1 << 20):.0f} MiB, {rows} rows; {opts.rows} rows updated per phase")
        for scenario in opts.scenario or ["same-wal", "wal-restart"]:
            results = {}
            for impl in implementations(opts.only):
                os.sync()
                results[impl.name] = res = run(impl, base, tmp / f"{scenario}-{impl.name}", rows, opts.rows,
                                               scenario)
                print(f"{scenario:>11} {impl.name:>9}: resume {res['resume_s']:6.2f} s, replica grew "
                      f"{res['grown_mib']:8.2f} MiB, CPU {res['cpu_s']:6.2f} s, restores: {res['restores']}")
            if len(results) == 2:
                o, r = results["ours"], results["reference"]
                print(f"{scenario:>11} ratio ours/reference: resume {o['resume_s'] / max(r['resume_s'], 1e-9):.2f}, "
                      f"replica growth {o['grown_mib'] / max(r['grown_mib'], 1e-9):.2f}, "
                      f"CPU {o['cpu_s'] / max(r['cpu_s'], 1e-9):.2f}")
    finally:
        if not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()
