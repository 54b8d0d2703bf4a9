"""Fresh replicas written by the real Litestream 0.5.17 (every page size, a database over 1 GiB with the
lock page, a VACUUM shrink, a history of thousands of TXIDs) restore with ours to the very bytes the
reference's own restore produces, at every recorded TXID and latest; our plans match its plans."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_ours
from tests.interop.workload import GeneratedReplica, content_digest, integrity_ok, sha256_file

pytestmark = pytest.mark.interop


def check_restores(gen: GeneratedReplica, tmp_path, *, plans: bool = True, keep_checks: int = 3) -> int:
    checked = 0
    for rec in gen.checked:
        out = tmp_path / f"{rec.hex}.db"
        r = run_ours(*gen.restore_args(out, rec.txid))
        assert r.returncode == 0, (rec.hex, r.stderr)
        assert sha256_file(out) == rec.ref_sha256, f"TXID {rec.hex} differs from the reference's restore"
        if checked < keep_checks:
            # The bytes match the reference; also the rows match what was committed up to that TXID.
            assert content_digest(out) == rec.content_digest and integrity_ok(out), rec.hex
        if plans and rec.plan is not None:
            dry = run_ours("restore", "-dry-run", "-json", "-txid", rec.hex, "-o", str(out) + ".plan",
                           gen.replica_url)
            assert json.loads(dry.stdout)["files"] == rec.plan["files"], rec.hex
        out.unlink()
        checked += 1
    out = tmp_path / "latest.db"
    r = run_ours("restore", "-integrity-check", "full", "-o", str(out), gen.replica_url)
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == gen.latest.ref_sha256 == gen.final_db_sha256
    out.unlink()
    return checked


def test_page_sizes(ref_page_size, tmp_path):
    assert check_restores(ref_page_size, tmp_path) == ref_page_size.max_txid


def test_vacuum_shrink(ref_vacuum, tmp_path):
    assert check_restores(ref_vacuum, tmp_path) == ref_vacuum.max_txid


def test_listing_matches_reference(ref_page_size):
    r = run_ours("ltx", "-level", "all", "-json", ref_page_size.replica_url)
    assert json.loads(r.stdout) == ref_page_size.ltx_json


@pytest.mark.slow
def test_long_history(ref_long_history, tmp_path):
    assert check_restores(ref_long_history, tmp_path) >= 40


@pytest.mark.slow
def test_mixed_long_workload(ref_mixed, tmp_path):
    """The workload our replicator is checked with (updates, deletes, overflow blobs, app checkpoints, a
    replicator restart with an app TRUNCATE while it is down, VACUUM), written by the reference."""
    assert ref_mixed.max_txid > 1900
    for rec in ref_mixed.checked:  # what the reference wrote is complete, so the byte checks mean something
        assert rec.ref_digest == rec.content_digest and rec.ref_integrity_ok, rec.hex
    assert check_restores(ref_mixed, tmp_path, keep_checks=len(ref_mixed.checked)) == len(ref_mixed.checked)


@pytest.mark.slow
def test_large_database_with_lock_page(ref_large, tmp_path):
    assert check_restores(ref_large, tmp_path, keep_checks=1) >= 3
