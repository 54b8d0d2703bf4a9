#!/usr/bin/env python3
"""Time our `litestream restore` against the reference binary's on the same >= 1 GiB file replica.

    python bench/compare_restore.py [--size-gib 1] [--runs 3] [--keep] [--drop-caches] [--rebuild]

The database (page size 4096, so it holds the lock page at offset 1 GiB) is built once with apsw as a
small application would fill it: users and posts (text, with secondary indexes) and attachments (random
blobs, some spilling onto overflow pages). The REFERENCE binary replicates it to a file replica
(`replicate -once`), a few more transactions are replicated as L0 files on top of the snapshot, and
both are cached under <repo>/.cache/bench/.

Each run restores with `-o OUT file://REPLICA`, the reference and ours alternating (which goes first
changes every run), once with the default parallelism and once with `-parallelism 1`. Before every
timed run the previous output is deleted and os.sync() flushes the page cache, so that writeback of
one run's 1 GiB is not charged to the next. Wall time, user+sys CPU and peak RSS (ru_maxrss) come from
os.wait4 on the child (see LAUNCHER). All outputs must be byte-identical (sha256)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import apsw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.refbin import ref_env, reference_binary  # noqa: E402

CACHE = REPO / ".cache" / "bench"
PAGE_SIZE = 4096


# ------------------------------------------------------------------------------------------ the database


class _Text:
    def __init__(self, rng: random.Random) -> None:
        vocab = ["".join(rng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(rng.randint(2, 10)))
                 for _ in range(3000)]
        weights = [1.0 / (i + 1) for i in range(len(vocab))]
        self.blob = " ".join(rng.choices(vocab, weights, k=1 << 19))
        self.rng = rng

    def __call__(self, lo: int, hi: int) -> str:
        n = self.rng.randint(lo, hi)
        i = self.rng.randrange(len(self.blob) - n)
        return self.blob[i:i + n]


def build_db(path: Path, size: int) -> int:
    """Fill a WAL-mode database until it is at least `size` bytes; returns its page count."""
    rng = random.Random(2024)
    text = _Text(rng)
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
                 "PRAGMA cache_size=-65536")
    conn.execute("""
        CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE, bio TEXT, created INTEGER);
        CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER, title TEXT, body TEXT, created INTEGER);
        CREATE INDEX posts_user ON posts(user_id, created);
        CREATE TABLE attachments(id INTEGER PRIMARY KEY, post_id INTEGER, mime TEXT, data BLOB);
        CREATE INDEX attachments_post ON attachments(post_id);""")
    n_users = n_posts = 0
    t0 = 1_600_000_000
    while True:
        pages: int = conn.execute("PRAGMA page_count").get
        if pages * PAGE_SIZE >= size:
            break
        with conn:
            users = [(n_users + i, text(5, 20), f"user{n_users + i}@example.com", text(0, 300),
                      t0 + n_users + i) for i in range(1, 501)]
            conn.executemany("INSERT INTO users VALUES(?,?,?,?,?)", users)
            posts = [(n_posts + i, rng.randint(1, n_users + 500), text(10, 80), text(100, 3000),
                      t0 + rng.randrange(10**8)) for i in range(1, 5001)]
            conn.executemany("INSERT INTO posts VALUES(?,?,?,?,?)", posts)
            mimes = ("image/jpeg", "image/png", "application/pdf", "application/zip")
            atts = [(rng.randint(1, n_posts + 5000), rng.choice(mimes),
                     rng.randbytes(rng.choice((200, 1500, 3000, 12000))))
                    for _ in range(800)]
            conn.executemany("INSERT INTO attachments(post_id, mime, data) VALUES(?,?,?)", atts)
        n_users += 500
        n_posts += 5000
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return pages


def later_transactions(conn: apsw.Connection, seed: int, n: int = 3) -> None:
    """A few small transactions after the snapshot, so the restore also applies L0 files."""
    rng = random.Random(seed)
    max_post: int = conn.execute("SELECT max(id) FROM posts").get
    for _ in range(n):
        with conn:
            for _ in range(200):
                conn.execute("UPDATE posts SET body = ? WHERE id = ?",
                             (rng.randbytes(300).hex(), rng.randint(1, max_post)))
            conn.execute("INSERT INTO attachments(post_id, mime, data) VALUES(?,?,?)",
                         (1, "image/png", rng.randbytes(20000)))


def replicate_once(work: Path, db: Path, replica: Path) -> None:
    cfg = work / "litestream.yml"
    replica_cfg = {"type": "file", "path": str(replica)}
    cfg.write_text(json.dumps({"dbs": [{"path": str(db), "replica": replica_cfg}]}))
    proc = subprocess.run([str(reference_binary()), "replicate", "-once", "-config", str(cfg)],
                          capture_output=True, text=True, env=ref_env(), timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"reference replicate -once failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def prepare(size_gib: float, rebuild: bool) -> Path:
    """The cached replica directory for a database of size_gib, building it if needed."""
    work = CACHE / f"db-{size_gib:g}gib"
    db, replica, meta = work / "app.db", work / "replica", work / "meta.json"
    if meta.exists() and not rebuild:
        return replica
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    size = int(size_gib * (1 << 30)) + (8 << 20)
    t = time.perf_counter()
    pages = build_db(db, size)
    print(f"built {db} ({pages} pages, {pages * PAGE_SIZE / 2**30:.2f} GiB) "
          f"in {time.perf_counter() - t:.0f}s")
    t = time.perf_counter()
    replicate_once(work, db, replica)  # the snapshot
    # Held open throughout: closing the last connection would checkpoint and delete the WAL, and the
    # reference would then have to replicate the whole database again instead of the new frames.
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA busy_timeout=10000")
    for seed in range(5):
        later_transactions(conn, seed)
        replicate_once(work, db, replica)
    conn.close()
    shutil.rmtree(work / f".{db.name}-litestream", ignore_errors=True)  # the reference's local state
    files = sorted(str(p.relative_to(replica)) for p in replica.rglob("*.ltx"))
    print(f"replicated with the reference in {time.perf_counter() - t:.0f}s: {len(files)} LTX files")
    meta.write_text(json.dumps({"pages": pages, "files": files}, indent=1))
    return replica


# --------------------------------------------------------------------------------------------- timing


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    sha256: str


@dataclass
class Config:
    label: str
    argv: list[str]
    url: str
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)


def drop_caches() -> None:
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# ru_maxrss survives execve: a child forked from this (large) process would report at least our RSS. So
# each command is started by a small `python -S` launcher that forks, execs, waits and reports the
# child's rusage; the child's own high-water mark is then what ru_maxrss measures (floor ~5 MiB).
LAUNCHER = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), time.perf_counter() - t, ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
"""


def timed(cfg: Config, out: Path, cold: bool) -> Run:
    if out.exists():
        out.unlink()
    os.sync()
    if cold:
        drop_caches()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *cfg.argv, "-o", str(out), cfg.url],
                              stdout=subprocess.PIPE, stderr=err, env=cfg.env, check=False)
        fields = proc.stdout.split()
        if proc.returncode != 0 or len(fields) != 4 or fields[0] != b"0":
            err.seek(0)
            sys.exit(f"{cfg.label} failed ({proc.stdout!r}):\n{err.read().decode(errors='replace')[-4000:]}")
    wall, cpu, maxrss_kib = float(fields[1]), float(fields[2]), int(fields[3])
    with open(out, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return Run(wall, cpu, maxrss_kib / 1024, digest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gib", type=float, default=1.0,
                    help="database size (default 1; >= 1 crosses the lock page)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per configuration (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the restored databases (in .cache/bench/out)")
    ap.add_argument("--drop-caches", action="store_true",
                    help="also drop the page cache before each run (needs root)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached database and replica")
    args = ap.parse_args()

    replica = prepare(args.size_gib, args.rebuild)
    url = replica.resolve().as_uri()
    outdir = CACHE / "out"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    ref = str(reference_binary())
    ours = [sys.executable, "-m", "litestream"]
    configs = [Config("reference", [ref, "restore"], url, ref_env()),
               Config("ours", [*ours, "restore"], url, dict(os.environ)),
               Config("reference -parallelism 1", [ref, "restore", "-parallelism", "1"], url, ref_env()),
               Config("ours -parallelism 1", [*ours, "restore", "-parallelism", "1"], url, dict(os.environ))]
    print(f"replica {url}\nreference {ref}\nours {' '.join(ours)}\n")
    for i in range(args.runs):
        for pair in (configs[:2], configs[2:]):
            for cfg in pair if i % 2 == 0 else pair[::-1]:
                out = outdir / f"{cfg.label.replace(' ', '_')}-{i}.db"
                run = timed(cfg, out, args.drop_caches)
                cfg.runs.append(run)
                print(f"run {i + 1}: {cfg.label:<26} {run.wall:7.2f}s wall {run.cpu:7.2f}s cpu "
                      f"{run.rss_mib:7.1f} MiB", flush=True)
                if not args.keep:
                    out.unlink()
    digests = {r.sha256 for c in configs for r in c.runs}
    if len(digests) != 1:
        sys.exit(f"outputs differ: {sorted(digests)}")

    size = (CACHE / f"db-{args.size_gib:g}gib" / "app.db").stat().st_size
    print(f"\nall {sum(len(c.runs) for c in configs)} outputs identical, sha256 {digests.pop()}")
    print(f"database {size / 2**30:.3f} GiB, {args.runs} runs, medians"
          f"{', cold page cache' if args.drop_caches else ''}\n")
    print(f"{'configuration':<26} {'wall s':>8} {'min s':>8} {'cpu s':>8} {'peak RSS MiB':>13}")
    for c in configs:
        print(f"{c.label:<26} {c.median('wall'):>8.2f} {min(r.wall for r in c.runs):>8.2f} "
              f"{c.median('cpu'):>8.2f} {max(r.rss_mib for r in c.runs):>13.1f}")
    print()
    for ref_cfg, our_cfg in (configs[:2], configs[2:]):
        ratio = our_cfg.median("wall") / ref_cfg.median("wall")
        rss = max(r.rss_mib for r in our_cfg.runs)
        print(f"{our_cfg.label:<26} wall ratio ours/ref {ratio:5.3f} (target <= 0.2), "
              f"peak RSS {rss:.1f} MiB (target <= 64)")
    if args.keep:
        print(f"\nrestored databases kept in {outdir}")
    else:
        shutil.rmtree(outdir, ignore_errors=True)


if __name__ == "__main__":
    main()
