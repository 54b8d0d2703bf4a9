"""The kill -9 loop: our `litestream replicate` (file replica) beside a real writer process, killed with
SIGKILL at random points again and again, and every restore checked against exactly what was committed.

    python -m tests.reliability.crashloop --cycles 200 --page-size 4096     # the long run
    python -m tests.reliability.crashloop --cycles 200 --page-size 512

A cycle: both run for 0.5..4 s; the replicator is SIGKILLed; in 30% of cycles the writer too, just
before or just after it (the WAL may end in frames of a transaction that never committed); while the
replicator is down the writer (when alive) may be told to checkpoint (PASSIVE or TRUNCATE), and a stray
`.tmp` file may be left in the meta directory; each restarts after 0..1.5 s.

Every `check_every` cycles writes stop and the replica is checked, with our restore and with the
reference's: the latest state (must equal the source), the first TXID each replicator process wrote,
the last TXID each one reported uploaded, and random earlier TXIDs. A check passes when both restore
(never refused), pass integrity_check, give the same bytes, and hold exactly the rows of a committed
prefix of the workload (crashload.py replays it: rows, payload hashes), with the prefix never shrinking as
the TXID grows and the last reported upload of every process never lost.

With maintenance (the default; `--no-maintenance` turns it off) the replicator also compacts (L1 every
2 s, L2 every 7 s), snapshots every 10 s and expires (snapshot and L0 retention of 2 minutes, checked
every 3 s), so kills land in those passes too. Random TXIDs and timestamps are then drawn from those the
retention window promises: TXIDs whose L0 file the replica still holds, uploaded in the last 72 seconds.
Each check also compares both tools' -dry-run plans.

The last line is `K/N checks pass, C cycles, R refused, X corrupt, L lost rows`."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from tests.interop.workload import integrity_ok
from tests.refbin import ref_env, reference_binary
from tests.reliability.crashload import Replayer, payload_hash, workload_version

REPO = Path(__file__).resolve().parents[2]
TXID_RE = re.compile(r'msg=(?:sync|"snapshot written to l0") .*?txid=([0-9a-f]{16})')
UPLOAD_RE = re.compile(r'msg="ltx file uploaded" .*?maxTXID=([0-9a-f]{16})')


@dataclass
class Report:
    cycles: int = 0
    checks: int = 0
    passed: int = 0
    refused: int = 0
    corrupt: int = 0
    lost_rows: int = 0
    failures: list[str] = field(default_factory=list)
    errors_logged: list[str] = field(default_factory=list)  # level=ERROR lines of the replicator
    snapshots: dict[str, int] = field(default_factory=dict)  # snapshot reason -> count
    recomputed: int = 0  # L0 files whose checksum was recomputed from the database file

    def line(self) -> str:
        return (f"{self.passed}/{self.checks} checks pass, {self.cycles} cycles, {self.refused} refused, "
                f"{self.corrupt} corrupt, {self.lost_rows} lost rows")

    @property
    def ok(self) -> bool:
        return self.checks > 0 and self.passed == self.checks and not self.failures


@dataclass
class Incarnation:
    """One replicator process: its log tells which TXIDs it wrote and uploaded."""

    log: Path
    proc: subprocess.Popen
    first_txid: int | None = None
    last_upload: int | None = None

    def read_log(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        m = TXID_RE.search(text)
        self.first_txid = int(m.group(1), 16) if m else None
        ups = UPLOAD_RE.findall(text)
        self.last_upload = int(ups[-1], 16) if ups else None
        return text


def _rfc3339(ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def maintenance_config(retention_s: int) -> str:
    """Short maintenance intervals, so that kills land in compactions, snapshots and retention passes."""
    return ("levels:\n  - interval: 2s\n  - interval: 7s\n"
            f"snapshot:\n  interval: 10s\n  retention: {retention_s}s\n"
            f"l0-retention: {retention_s}s\nl0-retention-check-interval: 3s\n")


PROMISE = 0.6  # the share of the retention window whose TXIDs are sampled (the rest: a check's own duration)


class CrashLoop:
    def __init__(self, workdir: Path, page_size: int = 4096, cycles: int = 20, check_every: int = 10,
                 seed: int = 1, samples: int = 4, rate: float = 150.0, log=print, db_config: str = "",
                 maintenance: bool = True, replicator: str = "ours", retention_s: int = 120) -> None:
        """replicator "reference" runs the real 0.5.17 as the replicator, gently: it is stopped with SIGTERM
        and the writer is never killed (the reference is not crash-safe; the point is that ours restores
        what it writes)."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = self.dir / "app.db"
        self.replica = self.dir / "replica"
        self.meta = self.dir / ".app.db-litestream"
        self.page_size, self.cycles, self.check_every = page_size, cycles, check_every
        self.seed, self.samples, self.rate = seed, samples, rate
        self.rng = random.Random(seed)
        self.replayer = Replayer(seed)
        self.version = workload_version()
        self.report = Report()
        self.say = log
        self.writer: subprocess.Popen | None = None
        self.rep: Incarnation | None = None
        self.unchecked: list[Incarnation] = []  # replicator processes since the last check
        self.n_incarnations = 0
        self.config = self.dir / "litestream.yml"
        self.maintenance = maintenance
        self.promise_s = PROMISE * retention_s
        self.gentle = replicator == "reference"
        self.replicator_argv = [str(reference_binary())] if self.gentle else [sys.executable, "-m", "litestream"]
        self.replicator_env = ref_env() if self.gentle else None
        self.config.write_text(
            "logging:\n  level: debug\n" + (maintenance_config(retention_s) if maintenance else "") +
            f"dbs:\n  - path: {self.db}\n    monitor-interval: 100ms\n{db_config}"
            f"    replica:\n      type: file\n      path: {self.replica}\n      sync-interval: 200ms\n")

    # --------------------------------------------------------------------------------------- processes

    def start_writer(self) -> None:
        self.writer = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_writer", str(self.db), str(self.seed),
             str(self.page_size), str(self.rate), self.version], cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "writer.err", "ab"))  # noqa: SIM115 - the child owns it

    def writer_alive(self) -> bool:
        return self.writer is not None and self.writer.poll() is None

    def kill_writer(self, sig: int = signal.SIGKILL) -> None:
        if self.writer is None:
            return
        if self.writer.poll() is None:
            self.writer.send_signal(sig)
        rc = self.writer.wait(timeout=60)
        if rc not in (0, -sig):  # -SIGTERM: stopped before its handler was in place
            self.fail(f"writer exited with {rc}: {self._tail(self.dir / 'writer.err')}")
        self.writer = None

    def start_replicator(self) -> None:
        self.n_incarnations += 1
        log = self.dir / f"replicate-{self.n_incarnations:03d}.log"
        out = open(log, "wb")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen([*self.replicator_argv, "replicate", "-config", str(self.config)],
                                cwd=self.dir, stdout=out, stderr=subprocess.STDOUT, env=self.replicator_env)
        out.close()
        self.rep = Incarnation(log, proc)
        self.unchecked.append(self.rep)

    def stop_replicator(self, sig: int = signal.SIGKILL) -> int:
        rep, self.rep = self.rep, None
        if rep.proc.poll() is None:
            rep.proc.send_signal(sig)
        rc = rep.proc.wait(timeout=120)
        text = rep.read_log()
        for line in text.splitlines():
            if "level=ERROR" in line:
                self.report.errors_logged.append(line)
            elif 'msg="snapshot written to l0"' in line:
                m = re.search(r'reason="([^"]*)"', line)
                reason = m.group(1) if m else "?"
                self.report.snapshots[reason] = self.report.snapshots.get(reason, 0) + 1
            elif "database checksum recomputed" in line:
                self.report.recomputed += 1
        return rc

    # ------------------------------------------------------------------------------------------- loop

    def run(self) -> Report:
        self.start_writer()
        time.sleep(0.3)
        self.start_replicator()
        try:
            for cycle in range(1, self.cycles + 1):
                self.cycle()
                self.report.cycles = cycle
                if cycle % self.check_every == 0 or cycle == self.cycles:
                    self.check()
                    if cycle < self.cycles:
                        self.start_writer()
                        self.start_replicator()
        finally:
            if self.rep is not None:
                self.stop_replicator()
            self.kill_writer()
        return self.report

    def cycle(self) -> None:
        rng = self.rng
        time.sleep(rng.uniform(0.5, 4.0))
        if not self.writer_alive():
            self.fail(f"writer died: {self._tail(self.dir / 'writer.err')}")
            self.start_writer()
        if self.gentle:
            # The reference loses frames an application checkpoints while it is down: the writer stops
            # (SIGTERM) before it and starts again after it.
            self.kill_writer(signal.SIGTERM)
            self.stop_replicator(signal.SIGTERM)
            time.sleep(rng.uniform(0, 1.0))
            self.start_replicator()
            time.sleep(0.5)
            self.start_writer()
            return
        both = rng.random() < 0.3
        writer_first = both and rng.random() < 0.5
        if writer_first:
            self.kill_writer()
        self.stop_replicator()
        if both and not writer_first:
            time.sleep(rng.uniform(0, 0.05))
            self.kill_writer()
        # While the replicator is down: checkpoints of the application's own, a stray temp file.
        if self.writer_alive() and rng.random() < 0.5:
            self.writer.send_signal(signal.SIGUSR1 if rng.random() < 0.6 else signal.SIGUSR2)
        if rng.random() < 0.1 or self.report.cycles == 0:
            d = self.meta / "ltx" / "0"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{rng.getrandbits(64):016x}-{rng.getrandbits(64):016x}.ltx.tmp").write_bytes(os.urandom(500))
        starts = [(rng.uniform(0, 1.5), "replicator")]
        if self.writer is None:
            starts.append((rng.uniform(0, 1.5), "writer"))
        t0 = time.monotonic()
        for at, what in sorted(starts):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            self.start_replicator() if what == "replicator" else self.start_writer()

    # ------------------------------------------------------------------------------------------ check

    def check(self) -> None:
        # Writes stop (sometimes in the middle of a transaction); the replicator, still running, catches
        # up and then shuts down with its final sync. The source is read while it still has the database
        # open, so this read leaves SQLite's WAL and index as they were.
        self.kill_writer(signal.SIGKILL if self.rng.random() < 0.5 and not self.gentle else signal.SIGTERM)
        time.sleep(1.0)
        source = self.read_db(self.db)
        rc = self.stop_replicator(signal.SIGTERM)
        if rc != 0:
            self.fail(f"replicator exited with {rc} on SIGTERM")
        for inc in self.unchecked:
            inc.read_log()
        stray = [str(p) for p in self.meta.rglob("*.tmp")]
        if stray:
            self.fail(f"temp files left in the meta directory: {stray}")
        max_txid = max((int(n.split("-")[1][:16], 16) for n in os.listdir(self.replica / "ltx" / "0")
                        if n.endswith(".ltx")), default=0)
        targets: dict[int | None, str] = {None: "latest"}
        for inc in self.unchecked:
            if inc.first_txid:
                targets.setdefault(inc.first_txid, "first written by a restarted process")
            if inc.last_upload:
                targets.setdefault(inc.last_upload, "last reported upload")
        promised = self.promised_txids()
        for t in [t for t in targets if t is not None and t not in promised]:
            del targets[t]  # retention may have compacted it away: no restore of exactly it is promised
        for t in self.rng.sample(sorted(promised), min(self.samples, len(promised))):
            targets.setdefault(t, "random")
        self.unchecked = []
        results = []
        for txid in sorted(targets, key=lambda t: max_txid + 1 if t is None else t):
            results.append((txid, self.check_txid(txid, targets[txid], source if txid is None else None)))
        # Later TXIDs never hold an earlier prefix.
        seqs = [(t, s) for t, s in results if s is not None]
        for (t1, s1), (t2, s2) in itertools.pairwise(seqs):
            if s2 < s1:
                self.fail(f"TXID {t2} holds seq {s2}, before TXID {t1}'s {s1}")
        if self.maintenance:
            # Timestamps inside the window: just after a promised L0 file's CreatedAt (not the newest file's:
            # past the replica's last CreatedAt both tools answer "timestamp does not exist").
            times = sorted(self.l0_times(promised).values())[:-1]
            for ns in self.rng.sample(times, min(2, len(times))):
                self.check_restore(["-timestamp", _rfc3339(ns + 1_000)], f"timestamp {_rfc3339(ns)}", None)
        self.say(f"  check after cycle {self.report.cycles}: {self.report.line()}")

    def promised_txids(self) -> set[int]:
        """TXIDs a restore must reach exactly: with maintenance, those whose L0 file the replica holds and
        uploaded inside the first part of the retention window; without it, every TXID up to the replica's newest."""
        level0 = self.replica / "ltx" / "0"
        txids = {}
        for name in os.listdir(level0):
            if name.endswith(".ltx"):
                with contextlib.suppress(FileNotFoundError):
                    txids[int(name[:16], 16)] = (level0 / name).stat().st_mtime
        if not self.maintenance:
            return set(range(1, max(txids, default=0) + 1))
        horizon = time.time() - self.promise_s
        promised = {t for t, mtime in txids.items() if mtime >= horizon}
        if self.gentle:
            # The reference's snapshot retention deletes every snapshot older than the window (ours keeps the
            # base of the window's first restores), so it promises only TXIDs from its oldest snapshot on.
            level9 = self.replica / "ltx" / "9"
            snaps = [int(n[17:33], 16) for n in os.listdir(level9) if n.endswith(".ltx")] if level9.exists() else []
            promised = {t for t in promised if snaps and t >= min(snaps)}
        return promised

    def l0_times(self, txids: set[int]) -> dict[int, int]:
        level0 = self.replica / "ltx" / "0"
        out = {}
        for t in txids:
            with contextlib.suppress(FileNotFoundError):
                out[t] = (level0 / f"{t:016x}-{t:016x}.ltx").stat().st_mtime_ns
        return out

    def check_txid(self, txid: int | None, why: str, source: tuple[int, dict] | None) -> int | None:
        """Restore one TXID with both tools and verify it; returns the seq it holds."""
        name = "latest" if txid is None else f"TXID {txid:016x}"
        return self.check_restore([] if txid is None else ["-txid", f"{txid:016x}"], name + f" ({why})", source)

    def _run_tool(self, tool: str, args: list[str]) -> subprocess.CompletedProcess:
        if tool == "ours":
            return subprocess.run([sys.executable, "-m", "litestream", *args], capture_output=True, text=True,
                                  timeout=600)
        return subprocess.run([str(reference_binary()), *args], capture_output=True, text=True, timeout=600,
                              env=ref_env())

    def check_restore(self, target: list[str], what: str, source: tuple[int, dict] | None) -> int | None:
        """Restore one point with both tools, compare their plans and bytes, and verify the rows."""
        self.report.checks += 1
        outs = {}
        plans = {}
        for tool in ("ours", "reference"):
            out = self.dir / f"restore-{tool}.db"
            for p in (out, Path(str(out) + "-wal"), Path(str(out) + "-shm")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            if self.maintenance:
                plan = self._run_tool(tool, ["restore", "-dry-run", *target, "-o", str(out),
                                             f"file://{self.replica}"])
                rows = [ln for ln in plan.stdout.splitlines() if ln[:1].isdigit()]  # the files table
                plans[tool] = (plan.returncode, rows)
            proc = self._run_tool(tool, ["restore", *target, "-o", str(out), f"file://{self.replica}"])
            if proc.returncode != 0:
                self.report.refused += 1
                self.fail(f"{tool} refused {what}: {proc.stderr.strip()}")
                return None
            outs[tool] = out
        if plans and plans["ours"] != plans["reference"]:
            self.fail(f"{what}: the -dry-run plans differ: ours {plans['ours']}, the reference's {plans['reference']}")
        name = what
        if outs["ours"].read_bytes() != outs["reference"].read_bytes():
            self.report.corrupt += 1
            self.fail(f"{name}: ours and the reference restore different bytes")
            return None
        got = self.verify(outs["ours"], name)
        if got is None:
            return None
        seq, rows = got
        if source is not None and (seq, rows) != source:
            lost = len(set(source[1]) - set(rows))
            self.report.lost_rows += lost
            self.fail(f"latest holds seq {seq}, the source {source[0]} ({lost} rows missing)")
            return seq
        self.report.passed += 1
        return seq

    def verify(self, path: Path, what: str) -> tuple[int, dict[int, str]] | None:
        if not integrity_ok(path):
            self.report.corrupt += 1
            self.fail(f"{what}: integrity_check failed")
            return None
        seq, rows, bad = self.read_db(path, verify_payloads=True)
        if bad:
            self.report.corrupt += 1
            self.fail(f"{what}: {bad} rows whose payload does not match its hash")
            return None
        want = self.replayer.state_at(seq).rows
        if rows != want:
            missing = len(set(want) - set(rows))
            self.report.lost_rows += missing
            self.report.corrupt += 1
            self.fail(f"{what}: seq {seq} is not a committed prefix ({missing} rows missing, "
                      f"{len(set(rows) - set(want))} extra, "
                      f"{sum(1 for k in rows if k in want and rows[k] != want[k])} different)")
            return None
        return seq, rows

    @staticmethod
    def read_db(path: Path, verify_payloads: bool = False):
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            conn.execute("BEGIN")
            seq = conn.execute("SELECT v FROM meta WHERE name = 'seq'").fetchall()[0][0]
            rows, bad = {}, 0
            for row_id, payload, h in conn.execute("SELECT id, payload, h FROM rows"):
                rows[row_id] = h
                if verify_payloads and payload_hash(payload) != h:
                    bad += 1
            conn.execute("COMMIT")
        finally:
            conn.close()
        return (seq, rows, bad) if verify_payloads else (seq, rows)

    # ---------------------------------------------------------------------------------------- helpers

    def fail(self, message: str) -> None:
        self.report.failures.append(message)
        self.say(f"  FAIL: {message}")

    @staticmethod
    def _tail(path: Path, n: int = 5) -> str:
        try:
            return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
        except OSError:
            return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--check-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--samples", type=int, default=4, help="random TXIDs per check")
    ap.add_argument("--rate", type=float, default=150.0, help="writer transactions per second")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-maintenance", action="store_true", help="no compaction, snapshots or retention")
    a = ap.parse_args()
    workdir = Path(a.workdir or f"/tmp/crashloop-{a.page_size}-{a.seed}")
    print(f"crash loop: {a.cycles} cycles, page size {a.page_size}, seed {a.seed}, in {workdir}", flush=True)
    loop = CrashLoop(workdir, a.page_size, a.cycles, a.check_every, a.seed, a.samples, a.rate,
                     log=lambda m: print(m, flush=True), maintenance=not a.no_maintenance)
    t0 = time.monotonic()
    report = loop.run()
    print(f"snapshots by reason: {report.snapshots}; checksums recomputed: {report.recomputed}; "
          f"ERROR lines: {len(report.errors_logged)}; {time.monotonic() - t0:.0f} s")
    for line in report.errors_logged[:10]:
        print(f"  {line}")
    print(report.line())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
