"""The heartbeat: real `replicate` processes pinging a local HTTP endpoint that counts GETs. The 15 s
check period is shortened with the test-only LITESTREAM_HEARTBEAT_CHECK_PERIOD (the 1-minute minimum
interval of the config stays, so only the first ping of a run is observable here)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
import yaml

from tests.cliutil import Background, add_rows, l0_files, log_line, make_db, wait_for
from tests.conftest import run_ours
from tests.ops.metricsutil import PingServer, WebDAV
from tests.servers import free_port

PERIOD = "0.1"  # seconds between checks
SECRETS = ("hbuser", "hbsecret", "PATHSECRET", "QUERYSECRET")


@pytest.fixture
def pings():
    servers: list[PingServer] = []

    def make(**kw) -> PingServer:
        servers.append(PingServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def ping_url(server: PingServer) -> str:
    return f"http://hbuser:hbsecret@127.0.0.1:{server.port}/ping/PATHSECRET?token=QUERYSECRET"


def run(tmp_path: Path, dbs: list[dict], url: str, **top) -> Background:
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(yaml.safe_dump({"heartbeat-url": url, "heartbeat-interval": "1m", "shutdown-sync-timeout": "2s",
                                   "logging": {"level": "debug"}, **top, "dbs": dbs}, sort_keys=False))
    return Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path,
                      env={"LITESTREAM_HEARTBEAT_CHECK_PERIOD": PERIOD})


def stop(bg: Background) -> str:
    bg.signal()
    assert bg.finish(timeout=30) == 0, bg.stdout + bg.stderr
    return bg.stdout + bg.stderr


def file_db(tmp_path: Path, name: str) -> dict:
    db = make_db(tmp_path / f"{name}.db")
    return {"path": str(db), "replica": {"type": "file", "path": str(tmp_path / f"{name}-replica"),
                                         "sync-interval": "100ms"}}


def assert_no_secrets(text: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{s} leaked into the log"


def test_first_ping_once_every_database_has_synced(tmp_path, pings):
    replicas = [tmp_path / "a-replica", tmp_path / "b-replica"]
    server = pings(on_get=lambda path: all(l0_files(r) for r in replicas))
    bg = run(tmp_path, [file_db(tmp_path, "a"), file_db(tmp_path, "b")], ping_url(server))
    try:
        assert wait_for(lambda: len(server.hits) >= 1, timeout=15), bg.output()
        # Both replicas held the databases' data when the ping came.
        assert server.observed == [True]
        assert server.hits[0][1] == "/ping/PATHSECRET?token=QUERYSECRET"
        # The interval (1m) has not passed: no second ping, however many checks run.
        time.sleep(1.0)
        assert len(server.hits) == 1
    finally:
        out = stop(bg)
    line = log_line(out, "starting heartbeat monitor")
    assert line is not None and "interval=100ms" in line, out
    sent = log_line(out, "heartbeat ping sent")
    assert sent is not None and f"url=http://127.0.0.1:{server.port}" in sent, out
    assert_no_secrets(out)


def test_userinfo_is_sent_as_basic_auth(tmp_path, pings):
    server = pings()
    bg = run(tmp_path, [file_db(tmp_path, "a")], ping_url(server))
    try:
        assert wait_for(lambda: len(server.hits) >= 1, timeout=15), bg.output()
    finally:
        stop(bg)
    assert server.auth == ["Basic " + base64.b64encode(b"hbuser:hbsecret").decode()]


def test_no_ping_while_a_database_has_not_synced(tmp_path, pings):
    server = pings()
    dav = WebDAV(tmp_path / "dav-server")  # not started yet: database b cannot reach its replica
    b = make_db(tmp_path / "b.db")
    dbs = [file_db(tmp_path, "a"), {"path": str(b), "replica": dav.replica("b")}]
    bg = run(tmp_path, dbs, ping_url(server))
    try:
        # a syncs at once; b cannot, so nothing is sent.
        assert wait_for(lambda: l0_files(tmp_path / "a-replica"), timeout=10)
        time.sleep(1.5)
        assert server.hits == [], bg.output()
        dav.start()
        add_rows(b, ["after the server came up"])
        assert wait_for(lambda: len(server.hits) >= 1, timeout=20), bg.output()
        assert list((dav.data / "b" / "ltx" / "0").iterdir())
    finally:
        out = stop(bg)
        dav.stop()
    assert_no_secrets(out)


def test_failed_ping_is_logged_once_per_interval_without_secrets(tmp_path, pings):
    server = pings(status=500)
    bg = run(tmp_path, [file_db(tmp_path, "a")], ping_url(server))
    try:
        assert wait_for(lambda: len(server.hits) >= 1, timeout=15), bg.output()
        time.sleep(1.0)
        assert len(server.hits) == 1  # the attempt counts: no retry before the interval
        assert wait_for(lambda: log_line(bg.output(), "heartbeat ping failed") is not None, timeout=5)
    finally:
        out = stop(bg)
    line = log_line(out, "heartbeat ping failed")
    assert line == (f'level=ERROR msg="heartbeat ping failed" system=store url=http://127.0.0.1:{server.port} '
                    f'error="unexpected status code: 500"'), line
    assert_no_secrets(out)


def test_unreachable_endpoint_is_an_error_not_a_crash(tmp_path):
    port = free_port()  # nothing listens there
    bg = run(tmp_path, [file_db(tmp_path, "a")], f"http://127.0.0.1:{port}/ping")
    try:
        assert wait_for(lambda: log_line(bg.output(), "heartbeat ping failed") is not None, timeout=15), bg.output()
        assert bg.proc.poll() is None
    finally:
        out = stop(bg)
    assert "http request:" in log_line(out, "heartbeat ping failed")


def test_no_open_database_sends_nothing(tmp_path, pings):
    server = pings()
    missing = tmp_path / "not-yet.db"  # replicate waits for it to appear
    bg = run(tmp_path, [{"path": str(missing), "replica": {"type": "file", "path": str(tmp_path / "r")}}],
             ping_url(server))
    try:
        assert wait_for(lambda: log_line(bg.output(), "starting heartbeat monitor") is not None, timeout=10)
        time.sleep(1.0)
        assert server.hits == []
    finally:
        stop(bg)


def test_interval_below_a_minute_is_refused(tmp_path):
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(yaml.safe_dump({"heartbeat-url": "http://127.0.0.1:1/ping", "heartbeat-interval": "30s",
                                   "dbs": [file_db(tmp_path, "a")]}))
    res = run_ours("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    assert res.returncode == 1
    assert "heartbeat-interval: heartbeat interval must be at least 1 minute (got 30s)" in res.stderr
    assert "Traceback" not in res.stderr
