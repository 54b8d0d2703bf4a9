"""Idle costs nothing: once a database stops changing and maintenance has caught up, its replica gets no
requests at all, counted at the server, although every level, the snapshot and L0 retention keep
ticking every second or two (the reference lists every level and L0 on each tick)."""

from __future__ import annotations

import time

import pytest

from tests.cliutil import Background, add_rows, make_db
from tests.servers import config_text

MAINTENANCE = {"levels": [{"interval": "1s"}, {"interval": "2s"}], "snapshot": {"interval": "3s",
               "retention": "1h"}, "l0-retention": "1s", "l0-retention-check-interval": "1s"}


def test_idle_replica_makes_no_requests(server, prefix, tmp_path):
    if server.requests() is None:
        pytest.skip(f"{server.name} cannot count requests")
    db = make_db(tmp_path / "app.db", ["i0"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**server.replica(prefix), "sync-interval": "200ms"})],
                               **MAINTENANCE))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=server.env)
    try:
        for i in range(5):
            add_rows(db, [f"i{i + 1}"])
            time.sleep(0.3)
        time.sleep(8)  # compactions, a snapshot and L0 retention catch up with the last write
        before = server.requests()
        time.sleep(8)
        idle = server.requests() - before
        add_rows(db, ["after idle"])
        time.sleep(3)
        after = server.requests() - before - idle
    finally:
        bg.signal()
        rc = bg.finish(60)
    assert rc == 0, bg.stderr
    assert idle == 0, f"{idle} requests in 8 idle seconds"
    assert after > 0  # the counter counts: a write is uploaded again
