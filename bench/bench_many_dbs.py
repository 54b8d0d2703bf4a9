#!/usr/bin/env python3
"""Thousands of databases in one process: directory replication against the reference binary.

    python bench/bench_many_dbs.py [--dbs 1000] [--idle 60] [--busy 60] [--rate 10] [--only ours|reference]
                                   [--order ours,reference] [--timeline STEP] [--no-base] [--keep]
                                   [--tmpdir DIR] [--json OUT]

--dbs small WAL-mode databases (one table, 20 rows, 4 KiB pages) in one directory, replicated with

    dbs:
      - dir: <work>/data
        pattern: "*.db"
        watch: true
        replica: {type: file, path: <work>/rep}

(every other setting at its default: monitor-interval 1s, sync-interval 1s, checkpoint-interval 1m). Each
implementation runs on its own fresh copy of the same databases, one after the other, in three phases:

* startup: from the process start until every database has its first L0 file in the replica;
* idle: --idle seconds with no writes (after a 5 s settle, so the initial uploads are over);
* busy: --rate writes per second (one INSERT each, through connections kept open, like an application's
  pool) spread over databases picked at random (seeded, the same sequence for both) for --busy seconds;
  then until every written database's last commit is in its replica (the catch-up is not part of busy).

CPU is utime+stime of the replicator (all threads) from /proc/PID/stat, per phase. RSS is VmRSS at the end
of each phase and VmHWM (the peak) from /proc/PID/status. A run with an empty watched directory (3 s)
gives each implementation's base RSS, from which the per-database memory is (idle RSS - base) / --dbs.
Also printed: descriptors and inotify watches the replicator holds at the end of idle. --timeline STEP
prints the CPU of every STEP seconds of the idle phase: ours spends its idle minute almost entirely in one
pass, checkpoint-interval (1m) after the initial sync, that checkpoints each database once (the reference
checkpoints every database every minute, and stats every WAL every monitor-interval).

The reference binary comes from $LITESTREAM_REF_BIN, else .cache/refbin/0.5.17/bin/litestream (tests/refbin.py
installs it). Targets: ours <= 0.3x the reference's CPU and <= 0.75x its RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.refbin import ref_env, reference_binary  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
FIRST_L0 = "0000000000000001-0000000000000001.ltx"
SETTLE_S = 5.0


class BenchError(Exception):
    pass


# ------------------------------------------------------------------------------------------ /proc figures

@dataclass
class Sample:
    cpu_s: float
    rss_kib: int
    hwm_kib: int


def sample(pid: int) -> Sample:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return Sample(cpu, rss, hwm)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def inotify_watches(pid: int) -> int:
    """Watches on every inotify descriptor of the process (one `inotify wd:` line each in fdinfo)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/fdinfo/{fd}") as f:
            n += sum(1 for line in f if line.startswith("inotify wd:"))
    return n


# ------------------------------------------------------------------------------------------ replicators

@dataclass
class Impl:
    name: str
    argv: list[str]
    env: dict[str, str]


def implementations(order: list[str]) -> list[Impl]:
    known = {"reference": Impl("reference", [str(reference_binary())], ref_env()),
             "ours": Impl("ours", [sys.executable, "-m", "litestream"], dict(os.environ))}
    return [known[n] for n in order]


class Replicator:
    def __init__(self, impl: Impl, work: Path) -> None:
        self.impl, self.work = impl, work
        self.log_path = work / f"{impl.name}.log"
        config = work / "litestream.yml"
        config.write_text(f"dbs:\n  - dir: {json.dumps(str(work / 'data'))}\n    pattern: \"*.db\"\n"
                          f"    watch: true\n    replica:\n      type: file\n"
                          f"      path: {json.dumps(str(work / 'rep'))}\n")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*impl.argv, "replicate", "-config", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=impl.env, cwd=work,
                                         start_new_session=True)
        self.t0 = time.monotonic()

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise BenchError(f"{self.impl.name} exited with {self.proc.returncode}:\n{tail}")

    def sample(self) -> Sample:
        self.check()
        return sample(self.proc.pid)

    def stop(self, timeout: float = 180.0) -> float:
        t = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"  {self.impl.name}: still running {timeout:.0f}s after SIGTERM, killing", file=sys.stderr)
        self.kill()
        return time.monotonic() - t

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


# -------------------------------------------------------------------------------------------- workload

def make_template(path: Path, n: int) -> None:
    path.mkdir(parents=True)
    rng = random.Random(1)
    for i in range(n):
        conn = apsw.Connection(str(path / f"db{i:05d}.db"))
        for p in ("page_size=4096", "journal_mode=WAL"):
            conn.execute(f"PRAGMA {p}").fetchall()
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, ts REAL, v TEXT)")
        with conn:
            conn.executemany("INSERT INTO t(ts, v) VALUES(?, ?)",
                             [(time.time(), rng.randbytes(50).hex()) for _ in range(20)])
        conn.close()  # the last connection: checkpointed, no -wal left


def wait_replicated(r: Replicator, names: list[str], rep: Path, timeout: float,
                    want: dict[str, int] | None = None) -> float:
    """Until every name has its first L0 file (or, with want, an L0 file reaching that TXID)."""
    t0 = time.monotonic()
    todo = list(names)
    while todo:
        r.check()
        if want is None:
            todo = [n for n in todo if not (rep / n / "ltx" / "0" / FIRST_L0).exists()]
        else:
            todo = [n for n in todo if not _has_txid(rep / n / "ltx" / "0", want[n])]
        if not todo:
            break
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"{r.impl.name}: {len(todo)} databases not replicated after {timeout:.0f}s "
                             f"(e.g. {todo[:3]})\n{r.log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    return time.monotonic() - t0


def _has_txid(ltx0: Path, txid: int) -> bool:
    try:
        return any(int(name[17:33], 16) >= txid for name in os.listdir(ltx0) if name.endswith(".ltx"))
    except (OSError, ValueError):
        return False


@dataclass
class Writer:
    """--rate single-row INSERTs per second into random databases, connections kept open."""

    data: Path
    names: list[str]
    seed: int = 7
    conns: dict[str, apsw.Connection] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)

    def run(self, rate: float, seconds: float) -> int:
        rng = random.Random(self.seed)
        start = time.monotonic()
        n = 0
        while True:
            due = start + n / rate
            if due - start >= seconds:
                return n
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name = rng.choice(self.names)
            conn = self.conns.get(name)
            if conn is None:
                conn = self.conns[name] = apsw.Connection(str(self.data / name))
                conn.set_busy_timeout(5000)
            with conn:
                conn.execute("INSERT INTO t(ts, v) VALUES(?, ?)", (time.time(), rng.randbytes(50).hex()))
            self.writes[name] = self.writes.get(name, 0) + 1
            n += 1

    def close(self) -> None:
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def local_txid(meta_root: Path, name: str, fallback: int) -> int:
    """The replicator's own TXID for a database (its newest local L0 file) once the writes are done."""
    d = meta_root / f".{name}-litestream" / "ltx" / "0"
    try:
        return max(int(n[17:33], 16) for n in os.listdir(d) if n.endswith(".ltx"))
    except (OSError, ValueError):
        return fallback


# ---------------------------------------------------------------------------------------------- phases

def base_rss(impl: Impl, root: Path) -> int:
    work = root / f"base-{impl.name}"
    (work / "data").mkdir(parents=True)
    r = Replicator(impl, work)
    try:
        time.sleep(3.0)
        return r.sample().rss_kib
    finally:
        r.stop()


def idle_for(r: Replicator, seconds: float, step: float) -> None:
    """Sleep; with --timeline STEP, print the CPU used in each STEP seconds (where an idle minute goes)."""
    if step <= 0:
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    prev = r.sample().cpu_s
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(step, left))
        cur = r.sample()
        print(f"    {r.impl.name} t={time.monotonic() - r.t0:6.1f}s cpu +{cur.cpu_s - prev:.2f}s "
              f"rss {cur.rss_kib / 1024:.1f} MiB", flush=True)
        prev = cur.cpu_s


def run_impl(impl: Impl, template: Path, root: Path, opts: argparse.Namespace) -> dict[str, Any]:
    work = root / impl.name
    work.mkdir()
    shutil.copytree(template, work / "data")
    names = sorted(p.name for p in (work / "data").iterdir())
    os.sync()
    out: dict[str, Any] = {"impl": impl.name, "dbs": len(names)}
    r = Replicator(impl, work)
    writer = Writer(work / "data", names)
    try:
        out["startup_s"] = wait_replicated(r, names, work / "rep", timeout=max(120.0, len(names) * 0.5))
        s0 = r.sample()
        out["startup_cpu_s"] = s0.cpu_s
        out["startup_rss_kib"] = s0.rss_kib
        time.sleep(SETTLE_S)
        s1 = r.sample()
        idle_for(r, opts.idle, opts.timeline)
        s2 = r.sample()
        out["idle_cpu_s"] = s2.cpu_s - s1.cpu_s
        out["idle_rss_kib"] = s2.rss_kib
        out["fds"] = open_fds(r.proc.pid)
        out["inotify_watches"] = inotify_watches(r.proc.pid)
        n = writer.run(opts.rate, opts.busy)
        s3 = r.sample()
        out["busy_writes"] = n
        out["busy_cpu_s"] = s3.cpu_s - s2.cpu_s
        out["busy_rss_kib"] = s3.rss_kib
        writer.close()
        # Both sync within monitor-interval (1s) of a write: then each written database's newest local L0
        # file must reach its replica (a check that the writes were replicated, not a lag measurement).
        time.sleep(2.5)
        want = {name: local_txid(work / "data", name, 2) for name in writer.writes}
        out["catch_up_s"] = 2.5 + wait_replicated(r, list(want), work / "rep", timeout=120.0, want=want)
        s4 = r.sample()
        out["peak_rss_kib"] = s4.hwm_kib
        out["shutdown_s"] = r.stop()
    finally:
        writer.close()
        r.kill()
    return out


# --------------------------------------------------------------------------------------------- reporting

def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report(results: dict[str, dict[str, Any]], opts: argparse.Namespace) -> None:
    rows = [
        ("startup: until all replicated (s)", "startup_s", ".1f"),
        ("startup: CPU s", "startup_cpu_s", ".2f"),
        (f"idle {opts.idle:.0f}s: CPU s", "idle_cpu_s", ".2f"),
        (f"busy {opts.busy:.0f}s at {opts.rate:g} writes/s: CPU s", "busy_cpu_s", ".2f"),
        ("RSS after startup (MiB)", "startup_rss_mib", ".1f"),
        ("RSS idle (MiB)", "idle_rss_mib", ".1f"),
        ("RSS busy (MiB)", "busy_rss_mib", ".1f"),
        ("peak RSS (MiB)", "peak_rss_mib", ".1f"),
        ("base RSS, empty dir (MiB)", "base_rss_mib", ".1f"),
        ("per database (KiB): (idle RSS - base) / dbs", "per_db_kib", ".0f"),
        ("open descriptors (idle)", "fds", "d"),
        ("inotify watches (idle)", "inotify_watches", "d"),
        ("all writes in the replicas after busy (s)", "catch_up_s", ".1f"),
        ("shutdown (s)", "shutdown_s", ".1f"),
    ]
    for res in results.values():
        for k in ("startup_rss_kib", "idle_rss_kib", "busy_rss_kib", "peak_rss_kib", "base_rss_kib"):
            if k in res:
                res[k.replace("_kib", "_mib")] = res[k] / 1024
        if "base_rss_kib" in res:
            res["per_db_kib"] = (res["idle_rss_kib"] - res["base_rss_kib"]) / res["dbs"]
    names = list(results)
    width = max(len(r[0]) for r in rows) + 2
    head = f"{'':<{width}}" + "".join(f"{n:>12}" for n in names)
    both = {"ours", "reference"} <= set(names)
    if both:
        head += f"{'ours/ref':>10}"
    print(f"\n{next(iter(results.values()))['dbs']} databases, one watched directory, file replica")
    print(head)
    for label, key, spec in rows:
        line = f"{label:<{width}}" + "".join(f"{fmt(results[n].get(key), spec):>12}" for n in names)
        if both and key not in ("fds", "inotify_watches"):
            a, b = results["ours"].get(key), results["reference"].get(key)
            line += f"{fmt(a / b if a is not None and b else None, '.3f'):>10}"
        print(line)
    if both:
        o, r = results["ours"], results["reference"]
        cpu_o = o["idle_cpu_s"] + o["busy_cpu_s"]
        cpu_r = r["idle_cpu_s"] + r["busy_cpu_s"]
        print(f"\nCPU (idle + busy) ours/reference = {cpu_o / cpu_r:.3f} (target <= 0.3)")
        print(f"RSS idle ours/reference = {o['idle_rss_kib'] / r['idle_rss_kib']:.3f}, "
              f"peak {o['peak_rss_kib'] / r['peak_rss_kib']:.3f} (target <= 0.75)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbs", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of the idle phase")
    ap.add_argument("--busy", type=float, default=60.0, help="seconds of the busy phase")
    ap.add_argument("--rate", type=float, default=10.0, help="writes per second in the busy phase")
    ap.add_argument("--only", choices=("ours", "reference"))
    ap.add_argument("--order", default="ours,reference")
    ap.add_argument("--no-base", action="store_true", help="skip the empty-directory runs (base RSS)")
    ap.add_argument("--timeline", type=float, default=0.0, metavar="STEP",
                    help="print the replicator's CPU every STEP seconds of the idle phase")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--tmpdir")
    ap.add_argument("--json")
    opts = ap.parse_args()
    order = [opts.only] if opts.only else opts.order.split(",")
    impls = implementations(order)
    root = Path(tempfile.mkdtemp(prefix="bench-many-dbs-", dir=opts.tmpdir))
    print(f"work dir {root}; {opts.dbs} databases; order {', '.join(order)}", flush=True)
    try:
        t = time.monotonic()
        make_template(root / "template", opts.dbs)
        print(f"made {opts.dbs} databases in {time.monotonic() - t:.1f}s", flush=True)
        results: dict[str, dict[str, Any]] = {}
        for impl in impls:
            print(f"running {impl.name} ...", flush=True)
            res = run_impl(impl, root / "template", root, opts)
            if not opts.no_base:
                res["base_rss_kib"] = base_rss(impl, root)
            results[impl.name] = res
            print(f"  {json.dumps(res)}", flush=True)
        report(results, opts)
        if opts.json:
            Path(opts.json).write_text(json.dumps(results, indent=2) + "\n")
    except BenchError as e:
        sys.exit(f"error: {e}")
    finally:
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
