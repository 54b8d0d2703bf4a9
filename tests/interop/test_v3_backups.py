"""v0.3.x backups written by the real Litestream 0.3.13 (three generations), restored by ours: latest and
at timestamps, to the same bytes as 0.3.13's own restore (and 0.5.17's where 0.3.13 refuses: a time
between two generations); the choice between a v0.3 backup and LTX files of the same replica, as 0.5.17
makes it; damaged backups fail with one line and leave nothing behind."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

import apsw
import pytest

from tests.conftest import run_ours
from tests.interop.workload import content_digest
from tests.refbin import ref_env, reference_binary, run_ref

pytestmark = pytest.mark.interop

V3 = "0.3.13"


def rfc3339(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class V3Backup:
    """A database replicated by 0.3.13 through three generations (the application truncates the WAL while
    the replicator is stopped, which makes the next start begin a new generation)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "app.db"
        self.replica = root / "replica"
        self.config = root / "litestream.yml"
        self.config.write_text(f"dbs:\n  - path: {self.db}\n    replicas:\n      - type: file\n"
                               f"        path: {self.replica}\n        sync-interval: 100ms\n")
        # (a time after a step's WAL segment and before the next one's, content then); the last step of a
        # generation is after the generation's last upload, where 0.3.13 finds no generation
        self.inside: list[tuple[int, str]] = []
        self.between: list[int] = []  # times between generations
        app = apsw.Connection(str(self.db))
        app.execute("PRAGMA journal_mode=wal")
        app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        for gen in range(3):
            proc = subprocess.Popen([str(reference_binary(V3)), "replicate", "-config", str(self.config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ref_env())
            time.sleep(2.0)  # the generation starts and takes its snapshot
            for step in range(3):
                with app:
                    app.executemany("INSERT INTO t(v) VALUES (randomblob(800))", [()] * 10)
                    app.execute("UPDATE t SET v = randomblob(500) WHERE id = ?", (gen * 30 + step + 1,))
                time.sleep(1.8)  # 0.3.13 uploads a WAL segment within its 1 s monitor interval
                self.inside.append((time.time_ns(), self._digest(app)))
                time.sleep(0.7)
            proc.terminate()
            proc.wait(timeout=30)
            time.sleep(0.5)
            self.between.append(time.time_ns())
            time.sleep(0.5)
            app.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.final = self._digest(app)
        app.close()

    @staticmethod
    def _digest(app: apsw.Connection) -> str:
        from tests.interop.workload import _digest_conn

        return _digest_conn(app)


@pytest.fixture(scope="module")
def backup(tmp_path_factory) -> V3Backup:
    return V3Backup(tmp_path_factory.mktemp("v3"))


def restore3(args: list[str], out: Path, version: str = V3) -> subprocess.CompletedProcess:
    return subprocess.run([str(reference_binary(version)), "restore", "-o", str(out), *args], capture_output=True,
                          text=True, env=ref_env(), timeout=120)


def test_latest_matches_0_3_13(backup, tmp_path):
    url = f"file://{backup.replica}"
    ours, ref = tmp_path / "ours.db", tmp_path / "ref.db"
    r = run_ours("restore", "-o", str(ours), url)
    assert r.returncode == 0, r.stderr
    r3 = restore3([url], ref)
    assert r3.returncode == 0, r3.stderr
    assert ours.read_bytes() == ref.read_bytes()
    assert content_digest(ours) == backup.final
    assert len(os.listdir(backup.replica / "generations")) == 3


def test_timestamps_match_0_3_13_and_0_5_17(backup, tmp_path):
    url = f"file://{backup.replica}"
    for i, (ns, digest) in enumerate(backup.inside):
        ours, ref = tmp_path / f"ours-{i}.db", tmp_path / f"ref-{i}.db"
        r = run_ours("restore", "-timestamp", rfc3339(ns), "-o", str(ours), url)
        if i == len(backup.inside) - 1:  # after the backup's last upload: past its time bounds, as 0.5.17 says
            r5 = run_ref("restore", "-timestamp", rfc3339(ns), "-o", str(ref), url)
            assert (r.returncode, r.stderr) == (r5.returncode, r5.stderr) == (1, "Error: timestamp does not exist\n")
            continue
        assert r.returncode == 0, r.stderr
        assert content_digest(ours) == digest, f"timestamp {i}"
        if i % 3 == 2:
            r5 = run_ref("restore", "-timestamp", rfc3339(ns), "-o", str(ref), url)
            assert r5.returncode == 0, r5.stderr
        else:
            r3 = restore3(["-timestamp", rfc3339(ns), url], ref)
            assert r3.returncode == 0, r3.stderr
        assert ours.read_bytes() == ref.read_bytes(), f"timestamp {i}: the reference restores other bytes"
    # Between two generations 0.3.13 finds no generation; 0.5.17 (and ours) restore the earlier one's end.
    ns = backup.between[0]
    ours, ref5 = tmp_path / "ours-between.db", tmp_path / "ref5-between.db"
    assert run_ours("restore", "-timestamp", rfc3339(ns), "-o", str(ours), url).returncode == 0
    r5 = run_ref("restore", "-timestamp", rfc3339(ns), "-o", str(ref5), url)
    assert r5.returncode == 0, r5.stderr
    assert ours.read_bytes() == ref5.read_bytes()
    assert content_digest(ours) == backup.inside[2][1]


def test_ltx_files_newer_than_the_v3_backup_win(backup, tmp_path):
    """The upgrade: 0.5 replicates into the same replica directory; restores then come from the LTX files,
    earlier timestamps still from the v0.3 backup, exactly as 0.5.17 decides."""
    replica = tmp_path / "replica"
    shutil.copytree(backup.replica, replica)
    db = tmp_path / "app.db"
    shutil.copy(backup.db, db)
    app = apsw.Connection(str(db))
    with app:
        app.execute("INSERT INTO t(v) VALUES (randomblob(100))")
    want = content_digest(db)
    app.close()
    r = run_ours("replicate", "-once", str(db), f"file://{replica}")
    assert r.returncode == 0, r.stderr
    url = f"file://{replica}"
    for args, digest in (([], want), (["-timestamp", rfc3339(backup.inside[4][0])], backup.inside[4][1])):
        ours, ref5 = tmp_path / f"ours{len(args)}.db", tmp_path / f"ref{len(args)}.db"
        r = run_ours("restore", *args, "-o", str(ours), url)
        assert r.returncode == 0, r.stderr
        r5 = run_ref("restore", *args, "-o", str(ref5), url)
        assert r5.returncode == 0, r5.stderr
        assert content_digest(ours) == digest == content_digest(ref5)


def _broken_copy(backup: V3Backup, tmp_path: Path) -> Path:
    replica = tmp_path / "broken"
    shutil.copytree(backup.replica, replica)
    return replica


def _newest_generation(replica: Path) -> Path:
    gens = sorted((replica / "generations").iterdir(), key=lambda p: max(f.stat().st_mtime for f in p.rglob("*")))
    return gens[-1]


def test_a_missing_wal_segment_is_one_line_and_no_output(backup, tmp_path):
    replica = _broken_copy(backup, tmp_path)
    segments = sorted((_newest_generation(replica) / "wal").iterdir())
    segments[1].unlink()
    out = tmp_path / "out.db"
    r = run_ours("restore", "-o", str(out), f"file://{replica}")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: missing WAL segment: expected 0/"), r.stderr
    assert not list(tmp_path.glob("out.db*")) and not list(tmp_path.glob(".out.db*"))


def test_a_corrupt_snapshot_is_one_line_and_no_output(backup, tmp_path):
    replica = _broken_copy(backup, tmp_path)
    snap = next((_newest_generation(replica) / "snapshots").iterdir())
    data = snap.read_bytes()
    snap.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.db"
    r = run_ours("restore", "-o", str(out), f"file://{replica}")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "decompress generations/" in lines[0], r.stderr
    assert not list(tmp_path.glob("out.db*")) and not list(tmp_path.glob(".out.db*"))
