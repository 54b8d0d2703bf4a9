"""Compaction, snapshots and retention against the reference, over a long-running workload (the crash
loop's writer: thousands of transactions, application checkpoints, replicator restarts), with intervals of
seconds: compactions at every level, snapshots and retention passes happen; every sampled TXID and
timestamp inside the retention window restores with ours and with 0.5.17 to the same bytes and exactly
the committed rows, with the same -dry-run plans. Then the same with the reference as the replicator,
restored by ours."""

from __future__ import annotations

import os

import pytest

from tests.reliability.crashloop import CrashLoop

pytestmark = pytest.mark.interop


def levels(replica) -> dict[int, list[str]]:
    root = replica / "ltx"
    return {int(d): sorted(os.listdir(root / d)) for d in os.listdir(root)}


@pytest.mark.timeout(900)
def test_ours_compacts_snapshots_and_expires_like_the_reference(tmp_path):
    lines: list[str] = []
    loop = CrashLoop(tmp_path / "loop", cycles=20, check_every=10, seed=8, log=lines.append, retention_s=20)
    report = loop.run()
    print("\n".join(lines), report.line(), sep="\n")
    assert report.ok, report.failures
    assert report.checks >= 10 and report.errors_logged == []
    files = levels(loop.replica)
    assert files.get(1) and files.get(2) and files.get(9), {k: len(v) for k, v in files.items()}
    assert int(files[0][0][:16], 16) > 1, "L0 retention never removed a file"
    assert int(files[1][0][:16], 16) > 1, "snapshot retention never removed an L1 file"


@pytest.mark.timeout(900)
def test_the_reference_replicating_the_same_workload_restores_with_ours(tmp_path):
    lines: list[str] = []
    loop = CrashLoop(tmp_path / "loop", cycles=10, check_every=10, seed=9, log=lines.append, retention_s=20,
                     replicator="reference")
    report = loop.run()
    print("\n".join(lines), report.line(), sep="\n")
    assert report.ok, report.failures
    assert report.checks >= 5
    files = levels(loop.replica)
    assert files.get(1) and files.get(9)
