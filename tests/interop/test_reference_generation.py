"""Tests of the reference-replica generator (tests/interop/workload.py) and tests/refbin.py.

They use only the real Litestream binary: the point is to prove that the generator records the right
content for every TXID, so that tests of our implementation can trust those records.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import apsw
import pytest

from tests.interop.conftest import LONG_HISTORY_TXIDS
from tests.interop.workload import (
    LOCK_PAGE_OFFSET,
    GeneratedReplica,
    Scenario,
    WalScanner,
    WorkloadError,
    content_digest,
    integrity_ok,
    make_reference_replica,
    page_size_scenario,
    python_step,
    read_ltx_page_numbers,
    sha256_file,
    sql_step,
    txid_hex,
)
from tests.refbin import ref_env, reference_binary, run_ref

FAST_PAGE_SIZES = (4096, 512)


# ---------------------------------------------------------------------------------------------------
# refbin


@pytest.mark.interop
def test_reference_binary_runs_and_stays_off_path() -> None:
    binary = reference_binary()
    assert binary.is_file()
    proc = run_ref("version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.5.17"
    found = shutil.which("litestream", path=ref_env()["PATH"])
    assert found is None or Path(found).resolve() != binary.resolve()
    assert "AWS_CA_BUNDLE" not in ref_env({"X_TEST": "1"})


# ---------------------------------------------------------------------------------------------------
# digest / integrity / WAL scanner helpers (no binary needed)


def _make_db(path: Path, rows: int = 20) -> None:
    conn = apsw.Connection(str(path))
    list(conn.execute("PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
                      "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
                      "CREATE TABLE _litestream_seq(id INTEGER PRIMARY KEY, seq INTEGER);"))
    with conn:
        for i in range(rows):
            conn.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
            conn.execute("INSERT INTO kv VALUES (?, ?)", (f"k{i}", b"\x00" * i))
    list(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    conn.close()


def test_content_digest_tracks_rows_not_layout(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    _make_db(a)
    _make_db(b)
    da = content_digest(a)
    assert da == content_digest(b)
    assert not list(tmp_path.glob("*-shm")), "digest of a checkpointed file must not leave sidecars"

    conn = apsw.Connection(str(b))
    conn.execute("INSERT INTO _litestream_seq VALUES (1, 7)")  # Litestream's own table is ignored
    conn.execute("VACUUM")  # layout changes, content does not
    assert content_digest(b) == da  # digest works with a live WAL too
    conn.execute("UPDATE kv SET v = x'01' WHERE k = 'k3'")
    assert content_digest(b) != da
    conn.close()
    assert integrity_ok(a) and integrity_ok(b)


def test_integrity_ok_detects_corruption(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    _make_db(db, rows=2000)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(size // 2 // 4096 * 4096)  # a whole b-tree page in the middle of the file
        fh.write(b"\xff" * 4096)
    assert not integrity_ok(db)
    db.write_bytes(b"not a database" * 100)
    assert not integrity_ok(db)


def test_wal_scanner_follows_commits_and_generations(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    conn = apsw.Connection(str(db))
    list(conn.execute("PRAGMA page_size=1024; PRAGMA journal_mode=WAL; CREATE TABLE t(v)"))
    scanner = WalScanner(Path(f"{db}-wal"), 1024)
    salts, end = scanner.position()
    assert salts is not None and end == Path(f"{db}-wal").stat().st_size
    conn.execute("INSERT INTO t VALUES (zeroblob(3000))")
    salts2, end2 = scanner.position()
    assert salts2 == salts and end2 > end and (end2 - 32) % (24 + 1024) == 0
    list(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    assert scanner.position() == (None, 32)
    conn.execute("INSERT INTO t VALUES (1)")
    salts3, end3 = scanner.position()
    assert salts3 is not None and salts3 != salts and end3 == 32 + 24 + 1024
    conn.close()


# ---------------------------------------------------------------------------------------------------
# generated replicas


def _check_generated(gen: GeneratedReplica, *, files_kept: bool) -> None:
    """What every generated replica must satisfy, whatever the scenario."""
    assert [r.txid for r in gen.records] == list(range(1, gen.max_txid + 1))
    for rec in gen.records:
        assert rec.l0 is not None and rec.l0.min_txid == rec.l0.max_txid == rec.txid
        assert rec.l0.page_size == gen.page_size
    l0_listed = [int(e["max_txid"], 16) for e in gen.ltx_json if e["level"] == 0]
    assert l0_listed == list(range(1, gen.max_txid + 1)), "l0-retention 0s keeps every L0 in the replica"

    for rec in gen.checked:
        assert rec.plan is not None and rec.plan["max_txid"] == rec.hex
        assert rec.plan["files"], rec.hex
        if rec.ref_digest is not None:
            assert rec.ref_digest == rec.content_digest, f"TXID {rec.hex}: reference restore differs"
            assert rec.ref_integrity_ok, f"TXID {rec.hex}: restored db fails integrity_check"
        if files_kept:
            # Re-check from the kept files with an independent read, not the generator's own numbers.
            assert rec.restored_path is not None and rec.restored_path.is_file()
            assert sha256_file(rec.restored_path) == rec.ref_sha256
            assert content_digest(rec.restored_path) == rec.content_digest, rec.hex
            assert integrity_ok(rec.restored_path), rec.hex
            size = rec.restored_path.stat().st_size
            assert size == rec.l0.commit * gen.page_size, "a restore is exactly Commit pages"  # type: ignore[union-attr]

    assert gen.latest.txid == gen.max_txid
    assert gen.latest.plan is not None and gen.latest.plan["max_txid"] == txid_hex(gen.max_txid)
    assert gen.latest.ref_digest == gen.latest.content_digest
    assert gen.latest.ref_integrity_ok
    # The source db after the final checkpoint is byte-identical to the latest restore.
    assert gen.latest.ref_sha256 == gen.final_db_sha256
    assert gen.records[-1].ref_sha256 in (None, gen.latest.ref_sha256)
    for step in gen.steps:
        if step.kind == "write" and step.note == "":
            assert step.first_txid is not None, f"step {step.label!r} never reached an L0 file"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.interop
def test_failing_step_kills_replicator(tmp_path: Path) -> None:
    def boom(conn: apsw.Connection) -> None:
        raise RuntimeError("workload step failed on purpose")

    scn = Scenario(name="boom", page_size=4096, steps=(
        sql_step("create", "CREATE TABLE t(v)"), python_step("boom", boom)))
    with pytest.raises(RuntimeError, match="on purpose"):
        make_reference_replica(tmp_path / "gen", scn)
    assert _processes_mentioning(str(tmp_path / "gen" / "litestream.yml")) == []


@pytest.mark.interop
def test_replicator_error_is_reported_with_log_tail(tmp_path: Path) -> None:
    scn = Scenario(name="badcfg", page_size=4096, steps=(sql_step("create", "CREATE TABLE t(v)"),),
                   global_config={"levels": [{"interval": "0s"}]}, step_timeout=10)
    with pytest.raises(WorkloadError, match=r"(?s)exited unexpectedly.*compaction interval must be greater"):
        make_reference_replica(tmp_path / "gen", scn)
    assert _processes_mentioning(str(tmp_path / "gen" / "litestream.yml")) == []


def _kept(scenario: Scenario) -> Scenario:
    return dataclasses.replace(scenario, keep_restores=True)


@pytest.mark.interop
@pytest.mark.parametrize("page_size", FAST_PAGE_SIZES)
def test_page_size_scenario_records_what_reference_restores(tmp_path: Path, page_size: int) -> None:
    gen = make_reference_replica(tmp_path / "gen", _kept(page_size_scenario(page_size)))
    _check_generated(gen, files_kept=True)
    assert len(gen.checked) == gen.max_txid  # "all": every TXID restored

    # The scenario exercised what it claims: distinct contents, a restart, WAL restarts, a shrink.
    assert len({r.content_digest for r in gen.records}) >= 12
    assert sum(1 for s in gen.steps if s.kind == "start") == 2
    commits = [r.l0.commit for r in gen.records if r.l0]
    assert min(commits[commits.index(max(commits)):]) < max(commits), "VACUUM shrank the database"
    new_generations = [r for r in gen.records[1:] if r.l0 and r.l0.wal_offset == 32]
    assert len(new_generations) >= 2, "Litestream checkpoints / app TRUNCATE restarted the WAL"
    # Litestream's own TXIDs (checkpoint bumps of _litestream_seq) repeat the previous content.
    pairs = zip(gen.records, gen.records[1:], strict=False)
    assert any(a.content_digest == b.content_digest for a, b in pairs)
    levels = {e["level"] for e in gen.ltx_json}
    assert {0, 1}.issubset(levels) and levels & {2, 9}, levels
    assert gen.initial_db_path is not None and integrity_ok(gen.initial_db_path)


@pytest.mark.interop
def test_page_size_scenarios_all_sizes(ref_page_size: GeneratedReplica) -> None:
    _check_generated(ref_page_size, files_kept=False)
    assert len(ref_page_size.checked) == ref_page_size.max_txid


@pytest.mark.interop
def test_vacuum_shrink_scenario(ref_vacuum: GeneratedReplica) -> None:
    gen = ref_vacuum
    _check_generated(gen, files_kept=False)
    commits = [r.l0.commit for r in gen.records if r.l0]
    assert commits[-1] < max(commits) / 3


@pytest.mark.slow
@pytest.mark.interop
def test_long_history_scenario(ref_long_history: GeneratedReplica) -> None:
    gen = ref_long_history
    _check_generated(gen, files_kept=False)
    assert gen.max_txid > LONG_HISTORY_TXIDS  # every transaction got its own TXID, plus Litestream's own
    writes = [s for s in gen.steps if s.kind == "write"]
    assert len({s.first_txid for s in writes}) == LONG_HISTORY_TXIDS
    assert 40 <= len(gen.checked) <= 120
    assert gen.timings["replicate"] < 90, gen.timings


@pytest.mark.slow
@pytest.mark.interop
def test_large_db_scenario_crosses_the_lock_page(ref_large: GeneratedReplica) -> None:
    gen = ref_large
    _check_generated(gen, files_kept=False)
    lock_page = LOCK_PAGE_OFFSET // gen.page_size + 1
    assert gen.records[0].l0 is not None and gen.records[0].l0.commit > lock_page
    assert all(r.ref_sha256 for r in gen.checked)
    straddling = [r for r in gen.records[1:]
                  if (pg := read_ltx_page_numbers(gen.replica_path / "ltx" / "0" /
                                                  f"{r.hex}-{r.hex}.ltx"))
                  and min(pg) < lock_page < max(pg)]
    assert straddling, "some update must touch pages on both sides of the lock page"
    for r in gen.records:
        assert lock_page not in read_ltx_page_numbers(
            gen.replica_path / "ltx" / "0" / f"{r.hex}-{r.hex}.ltx"), "the lock page is never stored"
