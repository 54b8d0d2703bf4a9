"""Every backend, both ways, against its real server: ours replicates (with compaction, snapshots and
retention running) and both tools restore; the reference replicates and ours restores; `ltx` lists the
same files for both."""

from __future__ import annotations

import time

import pytest

from litestream.backends import new_replica_client
from tests.cliutil import Background, add_rows, make_db, read_rows, wait_for
from tests.conftest import run_ours
from tests.interop.workload import integrity_ok
from tests.refbin import run_ref
from tests.servers import config_text, replica_config

pytestmark = pytest.mark.interop

# Levels and snapshots shrunk to seconds, so a short run sees every kind of file and a retention pass.
MAINTENANCE = {"levels": [{"interval": "1s"}, {"interval": "3s"}], "snapshot": {"interval": "4s",
               "retention": "1h"}, "l0-retention": "2s", "l0-retention-check-interval": "1s"}


def listing(server, prefix, level):
    c = new_replica_client(replica_config(server.replica(prefix)))
    try:
        c.init()
        return [(i.min_txid, i.max_txid) for i in c.ltx_files(level)]
    finally:
        c.close()


def restore_both(tmp_path, cfg, db, server, prefix):
    """Restore with ours and with the reference (config form, and ours by URL where there is one)."""
    outs = {}
    for name, run in (("ours", run_ours), ("reference", run_ref)):
        out = tmp_path / f"restored-{name}.db"
        p = run("restore", "-config", str(cfg), "-o", str(out), str(db), env=server.env, timeout=120)
        assert p.returncode == 0, f"{name} restore failed: {p.stderr}"
        outs[name] = out
    url = server.url(prefix)
    if url is not None:
        out = tmp_path / "restored-ours-url.db"
        p = run_ours("restore", "-o", str(out), url, env=server.env, timeout=120)
        assert p.returncode == 0, p.stderr
        outs["ours-url"] = out
    return outs


def test_ours_replicates_both_restore(server, server_env, prefix, tmp_path):
    db = make_db(tmp_path / "app.db", ["r0"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**server.replica(prefix), "sync-interval": "200ms"})],
                               **MAINTENANCE))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=server.env)
    try:
        rows = ["r0"]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 9:
            batch = [f"r{len(rows) + i}" for i in range(3)]
            add_rows(db, batch)
            rows += batch
            time.sleep(0.25)
        assert wait_for(lambda: listing(server, prefix, 9) and listing(server, prefix, 2), timeout=30), \
            "no snapshot or L2 file written"
    finally:
        bg.signal()
        rc = bg.finish(60)
    assert rc == 0, bg.stderr
    assert "level=ERROR" not in bg.stderr, bg.stderr
    l0, l1 = listing(server, prefix, 0), listing(server, prefix, 1)
    assert l1 and l0 and l0[0][0] > 1, f"L0 retention removed nothing compacted: L0 {l0[:3]} L1 {l1[:3]}"
    for name, out in restore_both(tmp_path, cfg, db, server, prefix).items():
        assert read_rows(out) == rows, name
        assert integrity_ok(out), name
    # Both tools list the same files.
    url = server.url(prefix)
    args = ["ltx", url] if url is not None else ["ltx", "-config", str(cfg), str(db)]
    for level in ("0", "1", "9", "all"):
        a = run_ours(*args[:1], "-level", level, *args[1:], env=server.env)
        b = run_ref(*args[:1], "-level", level, *args[1:], env=server.env)
        assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
        assert a.stdout == b.stdout, f"ltx -level {level}:\n{a.stdout}\n---\n{b.stdout}"


def test_reference_replicates_ours_restores(server, server_env, prefix, tmp_path):
    db = make_db(tmp_path / "app.db", ["s0"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**server.replica(prefix), "sync-interval": "200ms"})],
                               **MAINTENANCE))
    bg = Background(["replicate", "-config", str(cfg)], ref=True, cwd=tmp_path, env=server.env)
    try:
        rows = ["s0"]
        for i in range(20):
            add_rows(db, [f"s{i + 1}"])
            rows.append(f"s{i + 1}")
            time.sleep(0.3)
        assert wait_for(lambda: listing(server, prefix, 9) and listing(server, prefix, 1), timeout=30)
    finally:
        bg.signal()
        bg.finish(60)
    out = tmp_path / "restored.db"
    p = run_ours("restore", "-config", str(cfg), "-o", str(out), str(db), env=server.env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert read_rows(out) == rows and integrity_ok(out)
    # A point in the middle of the history, by TXID, also restores to what both tools agree on.
    txids = [t for _, t in listing(server, prefix, 0)]
    mid = format(txids[len(txids) // 2], "016x")
    outs = []
    for name, run in (("ours", run_ours), ("reference", run_ref)):
        o = tmp_path / f"mid-{name}.db"
        p = run("restore", "-config", str(cfg), "-txid", mid, "-o", str(o), str(db), env=server.env, timeout=120)
        assert p.returncode == 0, f"{name}: {p.stderr}"
        outs.append(o.read_bytes())
    assert outs[0] == outs[1]
