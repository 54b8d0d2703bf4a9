"""Our `litestream replicate` writes replicas that the real Litestream 0.5.17 restores: the same workloads
the reference-replica tests use (every page size, VACUUM, thousands of TXIDs, a database over 1 GiB), plus
a long mixed workload with application checkpoints and a replicator restart. For every checked TXID the
reference's restore must hold exactly the rows committed up to it and pass integrity_check; our own
restore of the same replica must give the same bytes. The other direction (we restore what the reference
wrote for these workloads) is test_restore_reference_replicas.py."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import run_ours
from tests.interop.workload import (
    PAGE_SIZES,
    GeneratedReplica,
    large_db_scenario,
    long_history_scenario,
    make_reference_replica,
    mixed_long_scenario,
    page_size_scenario,
    sha256_file,
    vacuum_shrink_scenario,
)

pytestmark = pytest.mark.interop

OURS = [sys.executable, "-m", "litestream"]


def check(gen: GeneratedReplica, tmp_path) -> None:
    assert gen.checked
    for i, rec in enumerate(gen.checked):
        assert rec.ref_sha256, f"TXID {rec.hex}: the reference could not restore it"
        if rec.ref_digest is not None:  # scenarios with huge databases only digest some restores
            assert rec.ref_digest == rec.content_digest, f"TXID {rec.hex}: the reference restores other rows"
            assert rec.ref_integrity_ok, f"TXID {rec.hex}: integrity_check failed"
        if i < 3:
            out = tmp_path / f"ours-{rec.hex}.db"
            r = run_ours(*gen.restore_args(out, rec.txid))
            assert r.returncode == 0, r.stderr
            assert sha256_file(out) == rec.ref_sha256, f"TXID {rec.hex}: our restore differs from the reference's"
            out.unlink()
    assert gen.latest.ref_digest == gen.latest.content_digest and gen.latest.ref_integrity_ok
    assert gen.latest.ref_sha256 == gen.final_db_sha256
    out = tmp_path / "ours-latest.db"
    r = run_ours(*gen.restore_args(out))
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == gen.latest.ref_sha256
    # The scenario's levels (1s, 3s) and snapshots ran as in the reference; every TXID is still in L0
    # (l0-retention 5m), so each one restores exactly.
    levels = {e["level"] for e in gen.ltx_json}
    assert 0 in levels and levels <= {0, 1, 2, 9}


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_page_sizes(tmp_path, page_size):
    gen = make_reference_replica(tmp_path / "gen", page_size_scenario(page_size), replicator_argv=OURS)
    check(gen, tmp_path)
    assert len(gen.checked) == gen.max_txid


def test_vacuum_shrink(tmp_path):
    gen = make_reference_replica(tmp_path / "gen", vacuum_shrink_scenario(), replicator_argv=OURS)
    check(gen, tmp_path)


@pytest.mark.slow
def test_long_history(tmp_path):
    gen = make_reference_replica(tmp_path / "gen", long_history_scenario(3000), replicator_argv=OURS)
    check(gen, tmp_path)
    assert gen.max_txid > 3000


@pytest.mark.slow
def test_mixed_long_workload(tmp_path):
    gen = make_reference_replica(tmp_path / "gen", mixed_long_scenario(), replicator_argv=OURS)
    check(gen, tmp_path)
    assert gen.max_txid > 1900


@pytest.mark.slow
def test_large_database(tmp_path):
    gen = make_reference_replica(tmp_path / "gen", large_db_scenario(), replicator_argv=OURS)
    try:
        check(gen, tmp_path)
    finally:
        gen.cleanup()
