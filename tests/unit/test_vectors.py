"""Every replica written by the real Litestream 0.5.17 in tests/vectors restores bit for bit with our CLI,
at every TXID and latest; plans, listings and timestamp restores match the reference's recorded output."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_ours
from tests.vectorutil import NAMES, copy_replica, manifest, sha256_file


@pytest.fixture(scope="module", params=NAMES)
def vector(request, tmp_path_factory):
    name = request.param
    replica = copy_replica(name, tmp_path_factory.mktemp(name) / "replica")
    return name, manifest(name), replica


def test_restore_every_txid_and_latest(vector, tmp_path):
    name, m, replica = vector
    cases = [(r["txid"], r["sha256"]) for r in m["restores"]]
    assert cases[-1] == (None, m["restored_latest"]["sha256"])
    assert len(cases) > 5
    for txid, want in cases:
        out = tmp_path / f"r-{txid or 'latest'}.db"
        args = ["restore", "-o", str(out)] + (["-txid", txid] if txid else []) + [f"file://{replica}"]
        r = run_ours(*args)
        assert r.returncode == 0, r.stderr
        assert (r.stdout, r.stderr) == ("", "")
        assert sha256_file(out) == want, f"{name} txid={txid}"
    # Nothing but the outputs was written next to them.
    assert sorted(os.listdir(tmp_path)) == sorted(f"r-{t or 'latest'}.db" for t, _ in cases)


def test_restore_parallelism_1_matches(vector, tmp_path):
    _, m, replica = vector
    out = tmp_path / "p1.db"
    r = run_ours("restore", "-parallelism", "1", "-o", str(out), f"file://{replica}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == m["restored_latest"]["sha256"]


def test_dry_run_plans_match_reference(vector, tmp_path):
    name, m, replica = vector
    for r in m["restores"]:
        plan = r["dry_run_plan"]
        txid = ["-txid", r["txid"]] if r["txid"] else []
        got = run_ours("restore", "-dry-run", "-json", "-o", plan["target_path"], *txid,
                       plan["source"].replace("$VECTORS/" + name + "/replica", str(replica)))
        assert got.returncode == 0, got.stderr
        ours = json.loads(got.stdout)
        assert ours["files"] == plan["files"]
        assert (ours["min_txid"], ours["max_txid"], ours["replica"]) == (plan["min_txid"], plan["max_txid"], "file")


def test_ltx_listing_matches_reference(vector):
    _, m, replica = vector
    outputs = m["ltx_cmd_outputs"]
    js = run_ours("ltx", "-level", "all", "-json", f"file://{replica}")
    assert js.returncode == 0, js.stderr
    assert js.stdout == outputs["ltx_all_json"]["stdout"]
    text = run_ours("ltx", "-level", "all", f"file://{replica}")
    assert text.stdout == outputs["ltx_all"]["stdout"]
    level0 = run_ours("ltx", f"file://{replica}")
    assert level0.stdout.splitlines()[1:] == [ln for ln in outputs["ltx_all"]["stdout"].splitlines()[1:]
                                              if ln.startswith("0 ")]


def test_timestamp_restore_matches_reference(vector, tmp_path):
    _, m, replica = vector
    ts = m["timestamp_restore"]
    out = tmp_path / "ts.db"
    r = run_ours("restore", "-o", str(out), "-timestamp", ts["timestamp"], f"file://{replica}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == ts["sha256"]
    dry = run_ours("restore", "-dry-run", "-json", "-o", str(out) + ".x", "-timestamp", ts["timestamp"],
                   f"file://{replica}")
    assert json.loads(dry.stdout)["files"] == ts["dry_run_plan"]["files"]


def test_restore_from_config(vector, tmp_path):
    """The config form: `restore -config FILE DB_PATH` finds the replica of that database."""
    _, m, replica = vector
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"dbs:\n  - path: {tmp_path}/app.db\n    replica:\n      url: file://{replica}\n")
    out = tmp_path / "cfg.db"
    r = run_ours("restore", "-config", str(cfg), "-o", str(out), str(tmp_path / "app.db"))
    assert r.returncode == 0, r.stderr
    assert sha256_file(out) == m["restored_latest"]["sha256"]
    # Without -o the database path itself is the target.
    r = run_ours("restore", "-config", str(cfg), "-integrity-check", "full", str(tmp_path / "app.db"))
    assert r.returncode == 0, r.stderr
    assert "post-restore integrity check passed" in r.stdout
    assert sha256_file(tmp_path / "app.db") == m["restored_latest"]["sha256"]
    r = run_ours("ltx", "-config", str(cfg), str(tmp_path / "app.db"))
    assert r.returncode == 0 and r.stdout.startswith("level  min_txid")
    r = run_ours("ltx", "-config", str(cfg), str(tmp_path / "other.db"))
    assert (r.returncode, r.stderr) == (1, f"Error: database not found in config: {tmp_path}/other.db\n")
