#!/usr/bin/env python3
"""Every backend on its real server (the test suite's tests/servers), ours against the reference binary.

    python bench/compare_backends.py [--size-mib 256] [--minutes 1] [--servers seaweedfs,fakegcs,...]

For each server, one started for the whole run:
* upload: `replicate -once` of a --size-mib database of random 4000-byte blobs (the first sync: the whole
  database as one L0 file) into a fresh replica; MB/s of database bytes, wall time.
* restore: `restore -o` of that replica (each tool restores the replica it wrote); MB/s, wall time; both
  outputs must equal the source page for page (checked by SHA-256).
* requests per hour: `replicate` with the default schedule (L1 30s, L2 5m, L3 1h, snapshot 24h, L0
  retention 5m checked every 15 s) while an application commits one small row a second, for --minutes,
  after a 10 s start; requests counted at the server and scaled to an hour (servers that cannot count are
  skipped).
Ratios ours/reference are printed per server."""

from __future__ import annotations

import argparse
import hashlib
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

from tests.servers import SERVER_MODULES, config_text, load  # noqa: E402

from compare_compaction import BLOB, make_db  # noqa: E402
from compare_replicate import Replicator, implementations, sources_fingerprint  # noqa: E402


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def run(impl, args: list[str], env: dict) -> float:
    t0 = time.monotonic()
    p = subprocess.run([*impl.argv, *args], env={**impl.env, **env}, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"{impl.name} {' '.join(args[:2])} failed: {p.stderr.strip()[-500:]}")
    return time.monotonic() - t0


def logical_sha(db: Path) -> str:
    """The database's pages after a checkpoint (a restore has no WAL)."""
    conn = apsw.Connection(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sha(db)


def bench_server(name: str, server, args, base: Path) -> dict:
    out: dict = {}
    cache = base / "source.db"
    if not cache.exists():
        make_db(cache, args.size_mib)
    size = os.path.getsize(cache)
    for impl in implementations(None):
        work = base / f"{name}-{impl.name}"
        work.mkdir()
        db = work / "app.db"
        shutil.copy(cache, db)
        prefix = f"bench-{os.getpid()}-{impl.name}-{int(time.time())}"
        cfg = work / "litestream.yml"
        cfg.write_text(config_text([(str(db), server.replica(prefix))]))
        up = run(impl, ["replicate", "-once", "-config", str(cfg)], server.env)
        restored = work / "restored.db"
        down = run(impl, ["restore", "-config", str(cfg), "-o", str(restored), str(db)], server.env)
        if sha(restored) != logical_sha(db):
            raise SystemExit(f"{name}/{impl.name}: the restore differs from the source")
        out[impl.name] = {"upload_mb_s": size / up / 1e6, "upload_s": up, "restore_mb_s": size / down / 1e6,
                          "restore_s": down}
        restored.unlink()
        if server.requests() is not None and args.minutes > 0:
            out[impl.name]["requests_per_hour"] = requests_per_hour(impl, server, work, args.minutes)
        shutil.rmtree(work, ignore_errors=True)
    return out


def requests_per_hour(impl, server, work: Path, minutes: float) -> float:
    db = work / "rate.db"
    app = apsw.Connection(str(db))
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    cfg = work / "rate.yml"
    cfg.write_text(config_text([(str(db), server.replica(f"rate-{os.getpid()}-{impl.name}-{int(time.time())}"))]))
    impl = type(impl)(impl.name, impl.argv, {**impl.env, **server.env})
    with Replicator(impl, cfg, work) as r:
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end:  # start-up: the initial snapshot and the first passes
            with app:
                app.execute("INSERT INTO t(v) VALUES ('x')")
            time.sleep(1)
        before, t0 = server.requests(), time.monotonic()
        while time.monotonic() - t0 < minutes * 60:
            with app:
                app.execute("INSERT INTO t(v) VALUES (?)", (f"row {time.time()}",))
            time.sleep(1)
        n = server.requests() - before
        took = time.monotonic() - t0
        r.stop()
    app.close()
    return n * 3600 / took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--servers", default=",".join(n for n in SERVER_MODULES if n != "file"))
    args = ap.parse_args()
    print(f"ours: {sources_fingerprint()}; database {args.size_mib} MiB of {BLOB}-byte random blobs", flush=True)
    base = Path(tempfile.mkdtemp(prefix="bench-backends-"))
    try:
        for name in args.servers.split(","):
            (base / f"server-{name}").mkdir()
            server = load(name).start(base / f"server-{name}")
            try:
                res = bench_server(name, server, args, base)
            finally:
                server.stop()
            for who, r in res.items():
                rph = f", {r['requests_per_hour']:8.0f} requests/hour" if "requests_per_hour" in r else ""
                print(f"{name:11s} {who:9s} upload {r['upload_mb_s']:7.1f} MB/s ({r['upload_s']:5.1f} s), "
                      f"restore {r['restore_mb_s']:7.1f} MB/s ({r['restore_s']:5.1f} s){rph}", flush=True)
            o, f = res["ours"], res["reference"]
            extra = ""
            if "requests_per_hour" in o:
                extra = f", requests/hour {o['requests_per_hour'] / max(f['requests_per_hour'], 1):.2f}"
            print(f"{name:11s} ratios ours/reference: upload time {o['upload_s'] / f['upload_s']:.2f}, "
                  f"restore time {o['restore_s'] / f['restore_s']:.2f}{extra}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
