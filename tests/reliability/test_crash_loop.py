"""The kill -9 loop (crashloop.py) in a bounded form for CI, and the crash points it cannot hit by chance:
a SIGKILL during the first snapshot of a large database, and one while our restart checkpoint holds
SQLite's write lock. The long run is `python -m tests.reliability.crashloop --cycles 200`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest

from tests.cliutil import wait_for
from tests.interop.workload import content_digest, integrity_ok
from tests.refbin import ref_env, reference_binary
from tests.reliability.crashloop import CrashLoop

CI_CYCLES = 20


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page_size", [4096, 512])
def test_crash_loop(tmp_path, page_size):
    lines = []
    loop = CrashLoop(tmp_path / "loop", page_size=page_size, cycles=CI_CYCLES, check_every=10, seed=page_size,
                     log=lines.append)
    report = loop.run()
    print("\n".join(lines), f"snapshots: {report.snapshots}", f"recomputed: {report.recomputed}", report.line(),
          sep="\n")
    assert report.ok, report.failures
    assert report.checks >= 2 * (4 + 1) and report.cycles == CI_CYCLES
    assert report.errors_logged == []


# --------------------------------------------------------------------------------------- crash points

def _config(tmp_path: Path, db: Path, replica: Path, extra: str = "") -> Path:
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"dbs:\n  - path: {db}\n    monitor-interval: 100ms\n{extra}"
                   f"    replica:\n      type: file\n      path: {replica}\n      sync-interval: 200ms\n")
    return cfg


_started: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_replicator_outlives_its_test():
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _replicate(cfg: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "litestream", "replicate", "-config", str(cfg)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=cfg.parent)
    _started.append(proc)
    return proc


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _restore_both(replica: Path, tmp_path: Path) -> tuple[Path, Path]:
    outs = []
    for tool, argv, env in (("ours", [sys.executable, "-m", "litestream"], None),
                            ("ref", [str(reference_binary())], ref_env())):
        out = tmp_path / f"restored-{tool}.db"
        proc = subprocess.run([*argv, "restore", "-o", str(out), f"file://{replica}"], capture_output=True,
                              text=True, timeout=600, env=env)
        assert proc.returncode == 0, f"{tool}: {proc.stderr}"
        outs.append(out)
    return outs[0], outs[1]


@pytest.mark.timeout(600)
def test_kill_during_the_first_snapshot_of_a_large_database(tmp_path):
    """SIGKILL while the first snapshot of a 210 MiB database is being written: the next process removes
    the cut temp file and takes the snapshot again; both tools restore it; memory stays far below the
    database's size (the snapshot is streamed)."""
    db, replica, meta = tmp_path / "app.db", tmp_path / "replica", tmp_path / ".app.db-litestream"
    app = apsw.Connection(str(db))
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE bulk(id INTEGER PRIMARY KEY, b BLOB)")
    with app:
        for _ in range(210):
            app.execute("INSERT INTO bulk(b) VALUES (randomblob(1048576))")  # incompressible
    app.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cfg = _config(tmp_path, db, replica)
    log = tmp_path / "replicate.log"
    proc = _replicate(cfg, log)
    level0 = meta / "ltx" / "0"

    def cut_midway() -> bool:
        tmps = list(level0.glob("*.tmp")) if level0.exists() else []
        return any(p.stat().st_size > 16 << 20 for p in tmps if p.exists())

    assert wait_for(cut_midway, timeout=120, interval=0.002), log.read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(level0.glob("*.tmp")), "the snapshot finished before the kill"
    assert not list(level0.glob("*.ltx")), "the snapshot finished before the kill"
    proc = _replicate(cfg, log)
    assert wait_for(lambda: list(level0.glob("*.ltx")), timeout=120)
    with app:
        app.execute("INSERT INTO bulk(b) VALUES (randomblob(100))")
    want = content_digest(db)
    assert wait_for(lambda: len(list((replica / "ltx" / "0").glob("*.ltx"))) >= 2, timeout=60)
    peak = _peak_rss_mib(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    app.close()
    assert not list(meta.rglob("*.tmp")) and not list(replica.rglob("*.tmp"))
    ours, ref = _restore_both(replica, tmp_path)
    assert ours.read_bytes() == ref.read_bytes()
    assert content_digest(ours) == want and integrity_ok(ours)
    assert peak < 150, f"replicator peak RSS {peak:.0f} MiB for a 210 MiB database"


@pytest.mark.timeout(600)
def test_kill_during_a_scheduled_snapshot(tmp_path):
    """SIGKILL while an L9 snapshot of a changed 120 MiB database is being written into the replica: the
    next process removes the cut `.tmp` from the replica, snapshots again, and both tools restore; the
    snapshot is streamed (memory far below the database's size)."""
    db, replica = tmp_path / "app.db", tmp_path / "replica"
    app = apsw.Connection(str(db))
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE bulk(id INTEGER PRIMARY KEY, b BLOB)")
    with app:
        for _ in range(120):
            app.execute("INSERT INTO bulk(b) VALUES (randomblob(1048576))")
    app.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # The first run at start snapshots at once; the database changes first, and no compaction level can
    # offer a [1, position] file, so the snapshot must read the whole database.
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"levels: []\nsnapshot:\n  interval: 1h\n"
                   f"dbs:\n  - path: {db}\n    monitor-interval: 100ms\n"
                   f"    replica:\n      type: file\n      path: {replica}\n      sync-interval: 100ms\n")
    for step in range(2):  # the initial snapshot, then an L0 for a change
        if step:
            with app:
                app.execute("UPDATE bulk SET b = randomblob(1048576) WHERE id = 7")
        r = subprocess.run([sys.executable, "-m", "litestream", "replicate", "-once", "-config", str(cfg)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    # The initial image is ten minutes old: too old to serve as the first snapshot (that shortcut takes
    # one written moments ago), so the snapshot reads the database.
    first = replica / "ltx" / "0" / "0000000000000001-0000000000000001.ltx"
    old = time.time() - 600
    os.utime(first, (old, old))
    log = tmp_path / "replicate.log"
    proc = _replicate(cfg, log)
    level9 = replica / "ltx" / "9"

    def cut_midway() -> bool:
        tmps = list(level9.glob("*.tmp")) if level9.exists() else []
        return any(p.stat().st_size > 8 << 20 for p in tmps if p.exists())

    assert wait_for(cut_midway, timeout=120, interval=0.002), log.read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(level9.glob("*.tmp")) and not list(level9.glob("*.ltx")), "the snapshot finished before the kill"
    proc = _replicate(cfg, log)
    assert wait_for(lambda: list(level9.glob("*.ltx")), timeout=120), log.read_text()[-3000:]
    assert not list(level9.glob("*.tmp"))
    peak = _peak_rss_mib(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    want = content_digest(db)
    app.close()
    ours, ref = _restore_both(replica, tmp_path)
    assert ours.read_bytes() == ref.read_bytes()
    assert content_digest(ours) == want and integrity_ok(ours)
    assert peak < 150, f"replicator peak RSS {peak:.0f} MiB for a 120 MiB database"


def _write_lock_holder(shm: Path) -> set[int]:
    """PIDs holding SQLite's WAL write lock (an fcntl lock on byte 120 of the -shm file), from /proc/locks."""
    st = os.stat(shm)
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = set()
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if "->" in parts:
                continue  # a waiter, not a holder
            if len(parts) >= 8 and parts[1] == "POSIX" and parts[3] == "WRITE" and parts[5] == ident \
                    and parts[6] == "120" and parts[7] == "120":
                pids.add(int(parts[4]))
    return pids


def _seq(db: Path) -> int:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute("SELECT v FROM meta WHERE name = 'seq'").fetchall()[0][0]
    finally:
        conn.close()


@pytest.mark.timeout(600)
def test_kill_while_our_restart_checkpoint_holds_the_write_lock(tmp_path):
    """SIGKILL while our restart checkpoint holds SQLite's write lock (writers locked out): the kernel drops
    the lock with the process, the application's next commit goes through within its busy timeout, and the
    next replicator restores every check."""
    lines = []
    loop = CrashLoop(tmp_path / "loop", page_size=4096, seed=77, rate=3000, log=lines.append,
                     db_config="    min-checkpoint-page-count: 100\n")
    shm = loop.db.with_name("app.db-shm")
    loop.start_writer()
    assert wait_for(shm.exists, timeout=30)
    kills = 0
    try:
        for _ in range(3):
            loop.start_replicator()
            pid = loop.rep.proc.pid
            deadline = time.monotonic() + 60
            while pid not in _write_lock_holder(shm) and time.monotonic() < deadline:
                pass  # the lock is held for milliseconds at a time: look as often as possible
            assert time.monotonic() < deadline, "never saw our checkpoint hold the write lock"
            loop.stop_replicator(signal.SIGKILL)
            kills += 1
            before = _seq(loop.db)
            # The writer's busy timeout is 5 s: a lock that outlived us would make it fail.
            assert wait_for(lambda b=before: _seq(loop.db) > b + 10, timeout=5), "the application stalled"
            assert loop.writer_alive()
        loop.start_replicator()
        time.sleep(1.0)
        loop.check()
    finally:
        if loop.rep is not None:
            loop.stop_replicator()
        loop.kill_writer()
    print("\n".join(lines), loop.report.line(), sep="\n")
    assert kills == 3
    assert loop.report.ok, loop.report.failures
