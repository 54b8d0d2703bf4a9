"""Prometheus metrics on `addr`: real `replicate` processes (ours and the reference), real HTTP scrapes,
a real WebDAV server (rclone) stopped and started again under a replica."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest
import yaml

from tests.cliutil import Background, add_rows, log_line, make_db, wait_for
from tests.conftest import run_ours
from tests.ops.metricsutil import WebDAV, metrics, scrape, value, wait_metric
from tests.refbin import run_ref
from tests.servers import free_port

# What only one side exports (see server/metrics.py): the reference has none of our per-replica metrics.
# Process metrics differ by runtime (no go_* here). L0 retention counts appear after a database's first
# scan, at start with ours, after the first check interval (15s) with the reference: either side may have
# them here (test_l0_retention_counts_files_by_status_like_the_reference compares them).
REF_ONLY = {"litestream_l0_retention_files_total"}
OURS_ONLY = {"litestream_l0_retention_files_total",
             "litestream_replica_lag_seconds", "litestream_replica_lag_txids", "litestream_replica_txid",
             "litestream_replica_last_success_timestamp_seconds", "litestream_replica_stalled",
             "litestream_replica_sync_error_count",
             # The reference's webdav backend times nothing and meets no error in this test.
             "litestream_replica_operation_duration_seconds", "litestream_replica_operation_errors_total"}
DB_METRICS = ("litestream_db_size", "litestream_wal_size", "litestream_total_wal_bytes", "litestream_txid",
              "litestream_sync_count", "litestream_sync_error_count", "litestream_sync_seconds",
              "litestream_disk_full", "litestream_compaction_verify_error_count")


def write_config(path: Path, dbs: list[dict], **top) -> Path:
    # A short final upload: a test that fails with its replica server down must not hang in shutdown.
    top.setdefault("shutdown-sync-timeout", "2s")
    path.write_text(yaml.safe_dump({**top, "dbs": dbs}, sort_keys=False))
    return path


def start(cfg: Path, cwd: Path, ref: bool = False, env: dict | None = None) -> Background:
    return Background(["replicate", "-config", str(cfg)], ref=ref, cwd=cwd, env=env)


def stop(bg: Background) -> int:
    bg.signal()
    return bg.finish(timeout=30)


def wait_serving(bg: Background, port: int, timeout: float = 20) -> None:
    def up() -> bool:
        assert bg.proc.poll() is None, f"replicate exited: {bg.output()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    assert wait_for(up, timeout=timeout, interval=0.05), bg.output()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def dav(tmp_path):
    server = WebDAV(tmp_path / "dav-server")
    server.start()
    yield server
    server.stop()


def bulk(path: Path, n: int, size: int = 3000) -> None:
    add_rows(path, [f"{i:06d}" + "x" * size for i in range(n)])


def test_names_labels_and_types_match_the_reference(tmp_path, dav):
    ours_port, ref_port = free_port(), free_port()
    dbs = {}
    for who in ("ours", "ref"):
        d = tmp_path / who
        d.mkdir()
        dbs[who] = make_db(d / "app.db")
    # A low checkpoint threshold, so both checkpoint (per mode) within the test.
    common = {"min-checkpoint-page-count": 4}
    ours_cfg = write_config(tmp_path / "ours.yml", [{"path": str(dbs["ours"]), **common,
                                                     "replica": dav.replica("ours", "1s")}], addr=f":{ours_port}")
    ref_cfg = write_config(tmp_path / "ref.yml", [{"path": str(dbs["ref"]), **common,
                                                   "replica": dav.replica("ref", "1s")}], addr=f":{ref_port}")
    ours, ref = start(ours_cfg, tmp_path), start(ref_cfg, tmp_path, ref=True)
    try:
        wait_serving(ours, ours_port)
        wait_serving(ref, ref_port)
        for _ in range(3):
            for who in ("ours", "ref"):
                bulk(dbs[who], 20)
            time.sleep(0.5)

        def settled(fams) -> bool:
            return bool(fams.get("litestream_checkpoint_count")) and \
                value(fams, "litestream_replica_operation_total", operation="PUT", replica_type="webdav") is not None
        ref_fams = wait_metric(ref_port, settled, timeout=20)
        ours_fams = wait_metric(ours_port, settled, timeout=20)
    finally:
        assert stop(ours) == 0, ours.stdout
        stop(ref)
    ref_lit = {n: f for n, f in ref_fams.items() if n.startswith("litestream_")}
    ours_lit = {n: f for n, f in ours_fams.items() if n.startswith("litestream_")}
    assert "litestream_checkpoint_count" in ref_lit and "litestream_replica_operation_total" in ref_lit, \
        sorted(ref_lit)
    assert set(ref_lit) - REF_ONLY <= set(ours_lit), sorted(set(ref_lit) - set(ours_lit))
    assert set(ours_lit) - set(ref_lit) <= OURS_ONLY, sorted(set(ours_lit) - set(ref_lit))
    for name, fam in ref_lit.items():
        if name in REF_ONLY:
            continue
        assert ours_lit[name].type == fam.type, name
        assert ours_lit[name].label_names() == fam.label_names(), name
        # A counter carries the reference's name on its samples (no _total added).
        assert {s[0] for s in ours_lit[name].samples} == {s[0] for s in fam.samples}, name
    # Database labels are the full path, checkpoint modes the reference's names.
    assert {lb["db"] for _, lb, _ in ours_lit["litestream_txid"].samples} == {str(dbs["ours"])}
    assert {lb["mode"] for _, lb, _ in ours_lit["litestream_checkpoint_count"].samples} <= \
        {"PASSIVE", "RESTART", "TRUNCATE"}
    # The standard process collector is there, as the reference's.
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds", "promhttp_metric_handler_requests_total"):
        assert name in ours_fams and name in ref_fams, name
        assert ours_fams[name].type == ref_fams[name].type, name
    assert not any(n.startswith("go_") for n in ours_fams)


def test_values_move_with_writes(tmp_path):
    port = free_port()
    db = make_db(tmp_path / "app.db")
    replica_dir = tmp_path / "replica"
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": {"type": "file", "path": str(replica_dir),
                                                                         "sync-interval": "100ms"}}],
                       addr=f"127.0.0.1:{port}")
    bg = start(cfg, tmp_path)
    try:
        wait_serving(bg, port)
        status, ctype, _ = scrape(port)
        assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
        lb = {"db": str(db)}
        rl = {"db": str(db), "replica": "file"}

        def synced(fams) -> bool:
            txid = value(fams, "litestream_txid", **lb)
            return bool(txid) and value(fams, "litestream_replica_txid", **rl) == txid
        before = wait_metric(port, synced)
        assert synced(before), before
        for name in DB_METRICS:
            assert value(before, name, **lb) is not None, name
        add_rows(db, ["d", "e"])
        add_rows(db, ["f"])

        def moved(fams) -> bool:
            return value(fams, "litestream_txid", **lb) >= value(before, "litestream_txid", **lb) + 1 and synced(fams)
        after = wait_metric(port, moved)
        assert moved(after), after
        for name in ("litestream_sync_count", "litestream_total_wal_bytes", "litestream_sync_seconds"):
            assert value(after, name, **lb) > value(before, name, **lb), name
        put = {"operation": "PUT", "replica_type": "file"}
        assert value(after, "litestream_replica_operation_total", **put) > \
            value(before, "litestream_replica_operation_total", **put)
        assert value(after, "litestream_replica_operation_bytes", **put) > \
            value(before, "litestream_replica_operation_bytes", **put)
        assert value(after, "litestream_replica_lag_txids", **rl) == 0
        assert value(after, "litestream_replica_lag_seconds", **rl) == 0
        assert value(after, "litestream_replica_stalled", **rl) == 0
        assert value(after, "litestream_replica_last_success_timestamp_seconds", **rl) > time.time() - 60
        assert value(after, "litestream_sync_error_count", **lb) == 0
        assert value(after, "litestream_disk_full", **lb) == 0
        assert value(after, "litestream_db_size", **lb) == db.stat().st_size
        assert value(after, "litestream_wal_size", **lb) > 32  # the replicated offset in the WAL
        # A second scrape counts the first (promhttp's handler counter, as the reference).
        assert value(after, "promhttp_metric_handler_requests_total", code="200") >= 2
    finally:
        assert stop(bg) == 0, bg.stdout


def test_l0_retention_counts_files_by_status_like_the_reference(tmp_path):
    """Compacted into L1 each second, L0 retention scanned each second, files kept for an hour: every L0
    file of the replica is too recent, in both tools' gauges, labelled by the database's basename."""
    ports = {"ours": free_port(), "ref": free_port()}
    dbs, bgs, fams = {}, {}, {}
    for who in ("ours", "ref"):
        (tmp_path / who).mkdir()
        dbs[who] = make_db(tmp_path / who / "app.db")
        cfg = write_config(tmp_path / f"{who}.yml", [{"path": str(dbs[who]), "replica": {
            "type": "file", "path": str(tmp_path / who / "replica"), "sync-interval": "100ms"}}],
            addr=f"127.0.0.1:{ports[who]}", levels=[{"interval": "1s"}], **{"l0-retention": "1h",
                                                                         "l0-retention-check-interval": "1s"})
        bgs[who] = start(cfg, tmp_path, ref=who == "ref")
    try:
        for who in bgs:
            wait_serving(bgs[who], ports[who])
        for i in range(3):
            for who in dbs:
                add_rows(dbs[who], [f"row {i}"])
            time.sleep(1.1)  # a sync (L0 file) per write: monitor-interval is 1s
        for who in dbs:
            l0 = tmp_path / who / "replica" / "ltx" / "0"
            lb = {"db": "app.db"}

            def counted(f, l0=l0, lb=lb) -> bool:
                n = len(list(l0.iterdir())) if l0.exists() else 0
                return n >= 2 and value(f, "litestream_l0_retention_files_total", status="too_recent", **lb) == n
            fams[who] = wait_metric(ports[who], counted, timeout=30)
            assert counted(fams[who]), (who, fams[who].get("litestream_l0_retention_files_total"))
            for status in ("eligible", "not_compacted"):
                assert value(fams[who], "litestream_l0_retention_files_total", status=status, **lb) == 0, who
    finally:
        for bg in bgs.values():
            assert stop(bg) == 0, bg.stdout
    ours, ref = (fams[w]["litestream_l0_retention_files_total"] for w in ("ours", "ref"))
    assert ours.type == ref.type == "gauge"
    assert ours.label_names() == ref.label_names() == {frozenset({"db", "status"})}


def test_lag_and_stall_while_the_replica_server_is_down(tmp_path, dav):
    port = free_port()
    db = make_db(tmp_path / "app.db")
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": dav.replica("lag", "100ms")}],
                       addr=f"127.0.0.1:{port}")
    bg = start(cfg, tmp_path)
    rl = {"db": str(db), "replica": "webdav"}
    try:
        wait_serving(bg, port)
        fams = wait_metric(port, lambda f: (value(f, "litestream_replica_txid", **rl) or 0) >= 1 and
                           value(f, "litestream_replica_lag_txids", **rl) == 0)
        assert value(fams, "litestream_replica_lag_txids", **rl) == 0, fams
        held = value(fams, "litestream_replica_txid", **rl)

        dav.stop()
        add_rows(db, ["during outage 1"])
        add_rows(db, ["during outage 2"])
        first = wait_metric(port, lambda f: (value(f, "litestream_replica_lag_txids", **rl) or 0) >= 1)
        assert value(first, "litestream_replica_lag_txids", **rl) == value(first, "litestream_txid", db=str(db)) - held
        assert value(first, "litestream_replica_lag_txids", **rl) >= 1
        # The replica's position is the one it last held, not forgotten because of the errors.
        assert value(first, "litestream_replica_txid", **rl) == held
        assert value(first, "litestream_replica_lag_seconds", **rl) > 0
        time.sleep(0.3)
        second = metrics(port)
        assert value(second, "litestream_replica_lag_seconds", **rl) > value(first, "litestream_replica_lag_seconds",
                                                                             **rl)
        # Stalled after 10 sync intervals (1 s) with no upload.
        stalled = wait_metric(port, lambda f: value(f, "litestream_replica_stalled", **rl) == 1, timeout=10)
        assert value(stalled, "litestream_replica_stalled", **rl) == 1, stalled
        assert value(stalled, "litestream_replica_lag_seconds", **rl) > 1.0
        assert value(stalled, "litestream_replica_sync_error_count", **rl) >= 1
        errs = [lb for _, lb, v in stalled["litestream_replica_operation_errors_total"].samples if v > 0]
        assert any(lb["replica_type"] == "webdav" for lb in errs), errs
        # A replica outage is not the process's health.
        assert scrape(port, "/healthz")[:1] == (200,)

        dav.start()
        add_rows(db, ["after outage"])  # a new L0 file schedules an upload at once, whatever the back-off
        healed = wait_metric(port, lambda f: value(f, "litestream_replica_lag_txids", **rl) == 0, timeout=30)
        assert value(healed, "litestream_replica_lag_txids", **rl) == 0, healed
        assert value(healed, "litestream_replica_lag_seconds", **rl) == 0
        assert value(healed, "litestream_replica_stalled", **rl) == 0
        assert value(healed, "litestream_replica_txid", **rl) == value(healed, "litestream_txid", db=str(db))
    finally:
        assert stop(bg) == 0, bg.stdout


def test_several_replicas_are_labelled_with_their_index(tmp_path):
    port = free_port()
    db = make_db(tmp_path / "app.db")
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replicas": [
        {"type": "file", "path": str(tmp_path / "r0")}, {"type": "file", "path": str(tmp_path / "r1")}]}],
        addr=f"127.0.0.1:{port}")
    bg = start(cfg, tmp_path)
    try:
        wait_serving(bg, port)
        fams = wait_metric(port, lambda f: all(value(f, "litestream_replica_txid", db=str(db), replica=r)
                                               for r in ("file-0", "file-1")))
        assert {lb["replica"] for _, lb, _ in fams["litestream_replica_txid"].samples} == {"file-0", "file-1"}
    finally:
        assert stop(bg) == 0, bg.stdout


def test_healthz_and_unknown_paths(tmp_path):
    port = free_port()
    db = make_db(tmp_path / "app.db")
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": {"type": "file",
                                                                         "path": str(tmp_path / "r")}}],
                       addr=f"127.0.0.1:{port}")
    bg = start(cfg, tmp_path)
    try:
        wait_serving(bg, port)
        assert scrape(port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        assert scrape(port, "/nope")[::2] == (404, "404 page not found\n")
    finally:
        assert stop(bg) == 0, bg.stdout


def test_empty_host_listens_everywhere_and_logs_localhost(tmp_path):
    port = free_port()
    db = make_db(tmp_path / "app.db")
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": {"type": "file",
                                                                         "path": str(tmp_path / "r")}}],
                       addr=f":{port}")
    bg = start(cfg, tmp_path)
    try:
        wait_serving(bg, port)
        assert wait_for(lambda: log_line(bg.output(), "serving metrics on") is not None)
        line = log_line(bg.output(), "serving metrics on")
        assert line == f"level=INFO msg=\"serving metrics on\" url=http://localhost:{port}/metrics", line
        assert scrape(port)[0] == 200
        if _ipv6_loopback():  # all interfaces, IPv6 as well (as Go's ":port")
            with socket.create_connection(("::1", port), timeout=2):
                pass
    finally:
        assert stop(bg) == 0, bg.stdout


@pytest.mark.parametrize("addr", ["localhost", "127.0.0.1", ":", "[::1]"])
def test_addr_without_port_is_refused_like_the_reference(tmp_path, addr):
    db = make_db(tmp_path / "app.db")
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": {"type": "file",
                                                                         "path": str(tmp_path / "r")}}], addr=addr)
    ours = run_ours("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    want = f'must specify port for bind address: "{addr}"'
    assert ours.returncode != 0
    assert ours.stderr.strip().splitlines()[-1] == f"Error: {want}", ours.stderr
    assert "Traceback" not in ours.stderr
    ref = run_ref("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    assert ref.returncode != 0 and want in ref.stderr + ref.stdout


def test_busy_port_is_a_clear_error(tmp_path):
    db = make_db(tmp_path / "app.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": {"type": "file",
                                                                             "path": str(tmp_path / "r")}}],
                           addr=f"127.0.0.1:{port}")
        ours = run_ours("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    assert ours.returncode == 1
    last = ours.stderr.strip().splitlines()[-1]
    assert last == f'Error: cannot start metrics server on "127.0.0.1:{port}": address already in use', ours.stderr
    assert "Traceback" not in ours.stderr


def test_bad_port_is_a_clear_error(tmp_path):
    db = make_db(tmp_path / "app.db")
    cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "replica": {"type": "file",
                                                                         "path": str(tmp_path / "r")}}],
                       addr="127.0.0.1:http-ish")
    ours = run_ours("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    assert ours.returncode == 1
    assert ours.stderr.strip().splitlines()[-1] == \
        'Error: cannot start metrics server on "127.0.0.1:http-ish": invalid port "http-ish"', ours.stderr


def test_disk_full_is_reported_and_clears(tmp_path):
    from tests.unit.test_store import small_filesystem

    port = free_port()
    db = make_db(tmp_path / "app.db")
    bulk(db, 200)
    with small_filesystem(tmp_path / "small", "2m") as small:
        meta = small / "meta"
        (meta / "ltx" / "0").mkdir(parents=True)
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # fill the filesystem completely
                f.write(b"\0" * 4096)
        cfg = write_config(tmp_path / "l.yml", [{"path": str(db), "meta-path": str(meta), "monitor-interval": "100ms",
                                                 "replica": {"type": "file", "path": str(tmp_path / "r")}}],
                           addr=f"127.0.0.1:{port}")
        # /healthz fails once local syncs have failed for 0.5 s (60 s outside tests).
        bg = start(cfg, tmp_path, env={"LITESTREAM_HEALTHZ_FAILING_S": "0.5"})
        lb = {"db": str(db)}
        try:
            wait_serving(bg, port)
            full = wait_metric(port, lambda f: value(f, "litestream_disk_full", **lb) == 1)
            assert value(full, "litestream_disk_full", **lb) == 1, bg.output()
            assert value(full, "litestream_sync_error_count", **lb) >= 1
            assert value(full, "litestream_txid", **lb) == 0
            assert wait_for(lambda: scrape(port, "/healthz")[0] == 503, timeout=10)
            assert scrape(port, "/healthz")[2] == f"sync failing: {db}\n"
            filler.unlink()
            add_rows(db, ["room again"])
            fine = wait_metric(port, lambda f: value(f, "litestream_disk_full", **lb) == 0 and
                               (value(f, "litestream_txid", **lb) or 0) >= 1, timeout=30)
            assert value(fine, "litestream_disk_full", **lb) == 0, bg.output()
            assert scrape(port, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        finally:
            assert stop(bg) == 0, bg.stdout
