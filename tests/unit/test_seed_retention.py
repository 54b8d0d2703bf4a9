"""The migration guide's retention forms (levels with retention, snapshot, replica.retention,
replicas[].retention), each loaded from YAML as a user writes it (durations shortened), run in a Store
built by the same code as `replicate`, and checked for what it compacts and expires."""

from __future__ import annotations

import time

import apsw
import pytest

from litestream.assemble import build_entries, maintenance_policy
from litestream.backends.file import FileReplicaClient
from litestream.config import ConfigError, apply_defaults, parse_config
from litestream.ltx import SNAPSHOT_LEVEL
from litestream.restore import calc_restore_plan, restore_files
from litestream.store import Store
from tests.interop.workload import _digest_conn, content_digest

S = 10**9


def run(tmp_path, yaml_text: str, seconds: float = 7.0):
    cfg = apply_defaults(parse_config(yaml_text.replace("DIR", str(tmp_path))))
    app = apsw.Connection(str(tmp_path / "app.db"))
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)")
    store = Store(build_entries(cfg), shutdown_sync_timeout_s=5, policy=maintenance_policy(cfg))
    store.open()
    try:
        write_for(app, seconds)
    finally:
        store.close()
    want = _digest_conn(app)
    app.close()
    return want


def write_for(app: apsw.Connection, seconds: float, size: int = 300) -> None:
    """An application inserting a row every ~10 ms."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app:
            app.execute("INSERT INTO t(v) VALUES (randomblob(?))", (size,))
        time.sleep(0.01)


def restored(client: FileReplicaClient, tmp_path) -> str:
    out = tmp_path / f"out-{time.monotonic_ns()}.db"
    restore_files(client, calc_restore_plan(client), str(out))
    return content_digest(out)


DB = """
dbs:
  - path: DIR/app.db
    monitor-interval: 20ms
"""


def test_levels_with_retention(tmp_path):
    want = run(tmp_path, """
levels:
  - interval: 1s
    retention: 2s
  - interval: 3s
    retention: 60s
l0-retention: 1s
l0-retention-check-interval: 500ms
""" + DB + """
    replica:
      url: file://DIR/replica
      sync-interval: 20ms
""")
    end = time.time_ns()
    client = FileReplicaClient(str(tmp_path / "replica"))
    l1, l2 = list(client.ltx_files(1)), list(client.ltx_files(2))
    assert l2 and len(l1) >= 2
    # No L1 file older than its 2 s (and an L1 interval) outlived the next L1 pass after an L2 file covered
    # it (the newest stays). The L2 file may come up to its 3 s interval after the L1 file, later on a
    # loaded machine: the bound counts from the cover, not from the L1 file alone.
    stale = [f for f in l1[:-1] if f.created_at_ns < end - 3 * S
             and any(g.min_txid <= f.min_txid and g.max_txid >= f.max_txid and g.created_at_ns < end - 1.5 * S
                     for g in l2)]
    assert not stale, (stale, l2)
    assert l1[0].min_txid > 1  # and some did go
    assert restored(client, tmp_path) == want


def test_global_snapshot_interval_and_retention(tmp_path):
    want = run(tmp_path, """
snapshot:
  interval: 2s
  retention: 3s
""" + DB + """
    replica:
      url: file://DIR/replica
      sync-interval: 20ms
""", seconds=8)
    client = FileReplicaClient(str(tmp_path / "replica"))
    snaps = list(client.ltx_files(SNAPSHOT_LEVEL))
    # One every 2 s over 8 s; the ones older than the window, but its base, were deleted.
    assert 2 <= len(snaps) <= 3, snaps
    assert restored(client, tmp_path) == want


def test_replica_retention(tmp_path):
    """The guide's new form: `replica: {url, retention: 72h}` (here 2s against a global 1h)."""
    want = run(tmp_path, """
snapshot:
  interval: 1s
  retention: 1h
""" + DB + """
    replica:
      url: file://DIR/replica
      sync-interval: 20ms
      retention: 2s
""", seconds=7)
    client = FileReplicaClient(str(tmp_path / "replica"))
    assert len(list(client.ltx_files(SNAPSHOT_LEVEL))) <= 4  # ~7 taken, the replica keeps ~2 s of them
    assert restored(client, tmp_path) == want


def test_each_of_several_replicas_keeps_its_own_retention(tmp_path):
    """The guide's old form `replicas: [{url, retention}]`, with two replicas of one database."""
    want = run(tmp_path, """
snapshot:
  interval: 1s
""" + DB + """
    replicas:
      - url: file://DIR/short
        sync-interval: 20ms
        retention: 2s
      - url: file://DIR/long
        sync-interval: 20ms
        retention: 1h
""", seconds=7)
    short = FileReplicaClient(str(tmp_path / "short"))
    long = FileReplicaClient(str(tmp_path / "long"))
    n_short, n_long = len(list(short.ltx_files(SNAPSHOT_LEVEL))), len(list(long.ltx_files(SNAPSHOT_LEVEL)))
    assert n_short <= 4 and n_long >= 6, (n_short, n_long)
    assert restored(short, tmp_path) == want and restored(long, tmp_path) == want


@pytest.mark.parametrize(("text", "message"), [
    ("levels:\n  - interval: 1s\n    retention: 0s\n", "levels[0].retention: level retention must be greater than 0"),
    (DB + "    replica:\n      url: file://DIR/r\n      retention: -1s\n", "retention must be greater than 0"),
])
def test_bad_retention_values(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        cfg = apply_defaults(parse_config(text.replace("DIR", str(tmp_path))))
        build_entries(cfg)
    assert message in str(e.value)
