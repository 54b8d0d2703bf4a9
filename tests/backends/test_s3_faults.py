"""S3 through a fault-injecting proxy (tests/backends/faultproxy.py) in front of the real server: 500,
503 and 429 answers, connection resets, bodies cut short and slow answers on a share of all requests.
Replication goes on and loses nothing, restores retry, and the final restore equals the source."""

from __future__ import annotations

import time

import pytest

from tests.backends.faultproxy import FaultProxy
from tests.cliutil import Background, add_rows, make_db, read_rows
from tests.conftest import run_ours
from tests.interop.workload import integrity_ok
from tests.refbin import run_ref
from tests.servers import config_text

pytestmark = pytest.mark.interop


@pytest.fixture
def s3(servers):
    return servers.get("seaweedfs")


def test_replication_and_restore_through_faults(s3, prefix, tmp_path):
    proxy = FaultProxy(s3.port, rate=0.2, seed=7)
    try:
        db = make_db(tmp_path / "app.db", ["f0"])
        replica = {**s3.replica(prefix), "endpoint": proxy.endpoint, "sync-interval": "200ms"}
        cfg = tmp_path / "litestream.yml"
        cfg.write_text(config_text([(str(db), replica)], levels=[{"interval": "2s"}],
                                   snapshot={"interval": "5s", "retention": "1h"}))
        bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=s3.env)
        rows = ["f0"]
        try:
            for i in range(40):
                add_rows(db, [f"f{i + 1}"])
                rows.append(f"f{i + 1}")
                time.sleep(0.2)
            time.sleep(3)
        finally:
            bg.signal()
            rc = bg.finish(120)
        assert rc == 0, bg.stderr
        assert sum(proxy.injected.values()) >= 10, proxy.injected
        assert "Traceback" not in bg.stderr
        # Restores through the faults retry and resume, ours several times over.
        for i in range(3):
            out = tmp_path / f"restored-{i}.db"
            p = run_ours("restore", "-config", str(cfg), "-o", str(out), str(db), env=s3.env, timeout=300)
            assert p.returncode == 0, p.stderr
            assert read_rows(out) == rows and integrity_ok(out)
        assert proxy.injected["truncate"] and proxy.injected["reset"], proxy.injected
    finally:
        proxy.close()
    # And straight from the server, the reference agrees.
    direct = tmp_path / "direct.yml"
    direct.write_text(config_text([(str(db), {**s3.replica(prefix)})]))
    out = tmp_path / "restored-ref.db"
    p = run_ref("restore", "-config", str(direct), "-o", str(out), str(db), env=s3.env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert read_rows(out) == rows
