"""S3 through a fault-injecting proxy (tests/backends/faultproxy.py) in front of the real server: 500,
503 and 429 answers, connection resets, bodies cut short and slow answers on a share of all requests.
Replication goes on and loses nothing, restores retry, and the final restore equals the source."""

from __future__ import annotations

import socket
import time

import pytest

from tests.backends.faultproxy import FaultProxy
from tests.cliutil import Background, add_rows, make_db, read_rows, wait_for
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


def test_unreachable_s3_holds_back_neither_start_nor_signal(tmp_path):
    """Nothing listens at the endpoint: the SDK retries each call for over a minute (10 attempts with
    back-off), which must not keep replicate from answering SIGTERM nor the shutdown from ending."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    db = make_db(tmp_path / "app.db", ["a"])
    replica = {"type": "s3", "bucket": "b", "path": "app", "endpoint": f"http://127.0.0.1:{port}",
               "region": "us-east-1", "access-key-id": "k", "secret-access-key": "s"}
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), replica)], **{"shutdown-sync-timeout": "2s"}))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path)
    assert wait_for(lambda: "initialized db" in bg.output(), 20)
    time.sleep(1)
    t0 = time.monotonic()
    bg.signal()
    rc = bg.finish(60)
    took = time.monotonic() - t0
    assert rc == 0, bg.stdout + bg.stderr
    assert took < 15, f"shutdown took {took:.1f}s:\n{bg.stdout}"
    assert "signal received" in bg.stdout and "Traceback" not in bg.stdout + bg.stderr


def test_shutdown_against_a_failing_s3_ends_after_shutdown_sync_timeout(s3, prefix, tmp_path):
    """The server answers 503 to everything once replication runs: the final upload is retried until
    shutdown-sync-timeout, and then the SDK's own retries stop too, so the shutdown ends soon after."""
    proxy = FaultProxy(s3.port, rate=0)
    try:
        db = make_db(tmp_path / "app.db", ["a"])
        replica = {**s3.replica(prefix), "endpoint": proxy.endpoint, "sync-interval": "200ms"}
        cfg = tmp_path / "litestream.yml"
        cfg.write_text(config_text([(str(db), replica)], **{"shutdown-sync-timeout": "3s"}))
        bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=s3.env)
        try:
            assert wait_for(lambda: proxy.forwarded >= 2 and "snapshot complete" in bg.output(), 30), bg.output()
            proxy.only = "503"
            add_rows(db, ["b"])
            time.sleep(1)
        finally:
            t0 = time.monotonic()
            bg.signal()
            rc = bg.finish(120)
        took = time.monotonic() - t0
        assert rc == 0, bg.stdout + bg.stderr
        assert proxy.injected["503"] > 0
        assert "shutdown sync failed" in bg.stdout and "Traceback" not in bg.stdout + bg.stderr
        assert took < 20, f"shutdown took {took:.1f}s:\n{bg.stdout}"
    finally:
        proxy.close()

