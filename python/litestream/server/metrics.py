"""Prometheus metrics on `addr` (reference §3.10): GET /metrics, GET /healthz.

Idle costs nothing: the engine keeps plain integers in its own objects (DBStats, Replica, the backend
operation table of backends/opstats.py) and this module reads them only when scraped, through a custom
collector registered on a private CollectorRegistry next to prometheus_client's process collector
(process_*; there are no go_*). A scrape is a few stats per database; between scrapes the server's
thread sleeps in accept().

The text is the reference's (Go client, text format 0.0.4): families sorted by name, a counter named as
the reference names it (`litestream_sync_count`, not prometheus_client's `..._total` form), the
reference's HELP texts (litestream_wal_size's and litestream_total_wal_bytes's with what they really
measure appended), promhttp_metric_handler_* for the scrapes themselves. Database metrics exist
for every database from the start; labelled ones (checkpoints per mode, backend operations) appear
after their first observation, as in the reference. litestream_l0_retention_files_total counts the
files of each database's last L0 retention scan by status; an idle replica is not scanned again until
something changes (replication/jobs.py), so its counts are those of the scan before. Not served:
/debug/pprof (Go's profiler).

Metrics of our own, per replica (`db` = database path, `replica` = the replica's type, or the type and
its index in the database's replica list, `file-0`, `s3-1`, when the database has several):

- litestream_replica_txid: the highest TXID the replica is known to hold (the last position read or
  reached, kept while the replica is failing);
- litestream_replica_lag_txids: database TXID minus that;
- litestream_replica_lag_seconds: 0 when the replica holds the database's TXID, else how long ago the
  oldest L0 file it lacks was written (that file's mtime in the meta directory, which is its LTX
  header timestamp): how much of the newest data a restore from this replica would miss;
- litestream_replica_last_success_timestamp_seconds: the end of the last upload pass that worked;
- litestream_replica_stalled: 1 when the replica lacks data written more than STALL_INTERVALS sync
  intervals ago and has had no successful upload for as long (the silent stops of upstream #1083,
  #1175, #1309 show as 1 here); a single upload running longer than that window also shows;
- litestream_replica_sync_error_count: failed upload passes.

/healthz answers 200 "ok" while the store runs: opened, not shutting down, and no open database whose
local syncs (WAL -> L0) have all failed for HEALTH_FAILING_S (a full disk, an unreadable database);
otherwise 503 with the reason on one line. Replica outages do not fail it (restarting the process
cannot fix a remote; alert on litestream_replica_stalled instead). Tests only: the environment variable
LITESTREAM_HEALTHZ_FAILING_S (seconds) replaces HEALTH_FAILING_S."""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric

from litestream import logs
from litestream.backends import opstats
from litestream.daemon import ServiceError
from litestream.gofmt import format_float, go_quote
from litestream.replication.retention import L0_STATUSES
from litestream.server.listener import Listening

STALL_INTERVALS = 10  # replica_stalled: no upload for this many sync intervals while data waits
HEALTH_FAILING_S = 60.0  # /healthz: a database's local syncs failing for this long is unhealthy
HEALTH_FAILING_ENV = "LITESTREAM_HEALTHZ_FAILING_S"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = logs.get_logger("metrics")


# ----------------------------------------------------------------------------------------- address

def split_host_port(addr: str) -> tuple[str, int]:
    """Go's net.SplitHostPort for `addr`, with a port that must be there and numeric."""
    host, port = "", ""
    if addr.startswith("["):
        end = addr.find("]")
        if end > 0 and addr[end + 1:end + 2] == ":":
            host, port = addr[1:end], addr[end + 2:]
    elif addr.count(":") == 1:
        host, port = addr.split(":")
    if port == "":
        raise ServiceError(f"must specify port for bind address: {go_quote(addr)}")
    if not port.isdigit() or int(port) > 65535:
        raise ServiceError(f"cannot start metrics server on {go_quote(addr)}: invalid port {go_quote(port)}")
    return host, int(port)


def _listen(addr: str, host: str, port: int) -> socket.socket:
    """A listening socket; an empty host listens on every interface (IPv4 and IPv6 where there is both)."""
    try:
        if not host:
            if socket.has_dualstack_ipv6():
                return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
            return socket.create_server(("", port))
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        return socket.create_server(sockaddr[:2], family=family)
    except OSError as e:
        # create_server's message carries a Python-looking suffix; the errno's text is what matters.
        plain = isinstance(e, socket.gaierror) or not e.errno
        reason = (e.strerror or str(e)) if plain else os.strerror(e.errno)
        raise ServiceError(f"cannot start metrics server on {go_quote(addr)}: {reason.lower()}") from None


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ------------------------------------------------------------------------------------------- collect

def _family(name: str, doc: str, typ: str) -> Metric:
    return Metric(name, doc, typ)


class StoreCollector:
    """Reads the engine's counters at scrape time (prometheus_client's custom-collector interface)."""

    def __init__(self, daemon) -> None:
        self.store = daemon.store

    def collect(self) -> Iterator[Metric]:
        now_ns = time.time_ns()
        entries = list(self.store.entries)
        yield from self._databases(entries)
        yield from self._replicas(entries, now_ns)
        yield from _l0_retention(entries)
        yield from _operations(opstats.snapshot())

    @staticmethod
    def _databases(entries: list) -> Iterator[Metric]:
        fams = {
            "db_size": _family("litestream_db_size", "The current size of the real DB", "gauge"),
            "wal_size": _family("litestream_wal_size", "The current size of the real WAL (the offset replicated "
                                "so far in the current WAL)", "gauge"),
            "wal_bytes": _family("litestream_total_wal_bytes", "Total number of bytes written to shadow WAL "
                                 "(WAL bytes copied into L0 files)", "counter"),
            "txid": _family("litestream_txid", "The current transaction ID", "gauge"),
            "syncs": _family("litestream_sync_count", "Number of sync operations performed", "counter"),
            "sync_errors": _family("litestream_sync_error_count", "Number of sync errors that have occurred",
                                   "counter"),
            "sync_s": _family("litestream_sync_seconds", "Time spent syncing shadow WAL, in seconds", "counter"),
            "disk_full": _family("litestream_disk_full", "Whether replication is paused because the local disk "
                                 "is full", "gauge"),
            "cp": _family("litestream_checkpoint_count", "Number of checkpoint operations performed", "counter"),
            "cp_errors": _family("litestream_checkpoint_error_count", "Number of checkpoint errors that have "
                                 "occurred", "counter"),
            "cp_s": _family("litestream_checkpoint_seconds", "Time spent checkpointing WAL, in seconds", "counter"),
            "verify": _family("litestream_compaction_verify_error_count", "Number of post-compaction "
                              "verification failures", "counter"),
        }
        for e in sorted(entries, key=lambda e: e.db.path):
            db = e.db
            st = db.stats
            lb = {"db": db.path}
            try:
                size = os.stat(db.path).st_size
            except OSError:
                size = 0
            pos = db.syncer.pos
            fams["db_size"].add_sample("litestream_db_size", lb, size)
            fams["wal_size"].add_sample("litestream_wal_size", lb, pos.end if pos is not None else 0)
            fams["wal_bytes"].add_sample("litestream_total_wal_bytes", lb, st.wal_bytes)
            fams["txid"].add_sample("litestream_txid", lb, db.txid)
            fams["syncs"].add_sample("litestream_sync_count", lb, st.sync_count)
            fams["sync_errors"].add_sample("litestream_sync_error_count", lb, st.sync_errors)
            fams["sync_s"].add_sample("litestream_sync_seconds", lb, st.sync_ns / 1e9)
            fams["disk_full"].add_sample("litestream_disk_full", lb, 1 if st.disk_full else 0)
            fams["verify"].add_sample("litestream_compaction_verify_error_count", lb, st.compaction_verify_errors)
            modes = sorted(set(st.checkpoints) | set(st.checkpoint_errors) | set(st.checkpoint_ns))
            for mode in modes:
                ml = {"db": db.path, "mode": mode}
                errors = st.checkpoint_errors.get(mode, 0)
                fams["cp"].add_sample("litestream_checkpoint_count", ml, st.checkpoints.get(mode, 0) + errors)
                if errors:  # as the reference: an error's child exists from its first error
                    fams["cp_errors"].add_sample("litestream_checkpoint_error_count", ml, errors)
                fams["cp_s"].add_sample("litestream_checkpoint_seconds", ml, st.checkpoint_ns.get(mode, 0) / 1e9)
        yield from fams.values()

    @staticmethod
    def _replicas(entries: list, now_ns: int) -> Iterator[Metric]:
        txid = _family("litestream_replica_txid", "The highest TXID the replica is known to hold (kept while "
                       "it is failing)", "gauge")
        lag_txids = _family("litestream_replica_lag_txids", "Database TXID minus the replica's TXID", "gauge")
        lag_s = _family("litestream_replica_lag_seconds", "0 when the replica holds the database's TXID, else "
                        "seconds since the oldest L0 file it lacks was written", "gauge")
        last = _family("litestream_replica_last_success_timestamp_seconds", "Unix time of the replica's last "
                       "successful upload pass (0: none yet)", "gauge")
        stalled = _family("litestream_replica_stalled", f"1 when the replica lacks data older than "
                          f"{STALL_INTERVALS} sync intervals and has had no successful upload for as long",
                          "gauge")
        errors = _family("litestream_replica_sync_error_count", "Number of failed replica upload passes",
                         "counter")
        for e in sorted(entries, key=lambda e: e.db.path):
            for i, r in enumerate(e.replicas):
                lb = {"db": e.db.path, "replica": replica_label(e, i)}
                state = replica_state(e, r, now_ns)
                txid.add_sample("litestream_replica_txid", lb, state.txid)
                lag_txids.add_sample("litestream_replica_lag_txids", lb, state.lag_txids)
                lag_s.add_sample("litestream_replica_lag_seconds", lb, state.lag_s)
                last.add_sample("litestream_replica_last_success_timestamp_seconds", lb, r.last_success_ns / 1e9)
                stalled.add_sample("litestream_replica_stalled", lb, 1 if state.stalled else 0)
                errors.add_sample("litestream_replica_sync_error_count", lb, r.failures)
        yield from (txid, lag_txids, lag_s, last, stalled, errors)


def replica_label(e, i: int) -> str:
    rtype = e.replicas[i].client.type
    return rtype if len(e.replicas) == 1 else f"{rtype}-{i}"


@dataclass(frozen=True, slots=True)
class ReplicaState:
    txid: int
    lag_txids: int
    lag_s: float
    stalled: bool


def replica_state(e, r, now_ns: int) -> ReplicaState:
    """Position, lag and stall of one replica (see the module docstring)."""
    db = e.db
    txid = r.pos if r.pos is not None else r.known_pos
    lag = max(0, db.txid - txid)
    if lag == 0:
        return ReplicaState(txid, 0, 0.0, False)
    lag_ns = max(0, now_ns - _written_ns(db, txid + 1, now_ns))
    window_ns = STALL_INTERVALS * (r.settings.sync_interval_s or 1.0) * 1e9
    stalled = lag_ns > window_ns and now_ns - r.last_success_ns > window_ns
    return ReplicaState(txid, lag, lag_ns / 1e9, stalled)


def _written_ns(db, txid: int, now_ns: int) -> int:
    """When the L0 file of txid was written (its mtime, set to its header timestamp). When it is not there
    (the replica will be given a snapshot), the oldest local L0 file after it."""
    try:
        return os.stat(db.meta.l0_path(txid)).st_mtime_ns
    except OSError:
        pass
    for t in db.meta.l0_txids():
        if t > txid:
            with contextlib.suppress(OSError):
                return os.stat(db.meta.l0_path(t)).st_mtime_ns
    return db.stats.last_sync_ns or now_ns


def _l0_retention(entries: list) -> Iterator[Metric]:
    """The reference's gauge, labelled by the database's basename; a database appears after its first L0
    retention scan. Several replicas of a database, or databases of one basename (a recursive directory),
    add up: one sample per label set, where the reference's last scan would overwrite the others'."""
    fam = _family("litestream_l0_retention_files_total", "Number of L0 files by status during retention "
                  "enforcement", "gauge")
    totals: Counter[tuple[str, str]] = Counter()
    for e in entries:
        for r in e.replicas:
            if r.l0_counts is not None:
                for status in L0_STATUSES:
                    totals[(os.path.basename(e.db.path), status)] += getattr(r.l0_counts, status)
    for (name, status), n in sorted(totals.items()):
        fam.add_sample("litestream_l0_retention_files_total", {"db": name, "status": status}, n)
    yield fam


def _operations(table: dict) -> Iterator[Metric]:
    total = _family("litestream_replica_operation_total", "The number of replica operations performed", "counter")
    nbytes = _family("litestream_replica_operation_bytes", "The number of bytes used by replica operations",
                     "counter")
    hist = _family("litestream_replica_operation_duration_seconds", "Duration of replica operations by type "
                   "and operation", "histogram")
    errors = _family("litestream_replica_operation_errors_total", "Number of replica operation errors by type, "
                     "operation, and error code", "counter")
    for (rtype, op), c in sorted(table.items()):
        lb = {"operation": op, "replica_type": rtype}
        total.add_sample("litestream_replica_operation_total", lb, c.count)
        if op in ("GET", "PUT"):
            nbytes.add_sample("litestream_replica_operation_bytes", lb, c.bytes)
        cumulative = 0
        for le, n in zip((*opstats.BUCKETS, float("inf")), c.buckets, strict=True):
            cumulative += n
            hist.add_sample("litestream_replica_operation_duration_seconds_bucket", {**lb, "le": format_float(le)},
                            cumulative)
        hist.add_sample("litestream_replica_operation_duration_seconds_sum", lb, c.seconds)
        hist.add_sample("litestream_replica_operation_duration_seconds_count", lb, cumulative)
        for code, n in sorted(c.errors.items()):
            errors.add_sample("litestream_replica_operation_errors_total", {"code": code, **lb}, n)
    yield from (total, nbytes, hist, errors)


class ScrapeCollector:
    """promhttp_metric_handler_*: the reference's counts of scrapes (the one being served is in flight,
    not yet counted)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.codes = {"200": 0, "500": 0, "503": 0}

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            flight = _family("promhttp_metric_handler_requests_in_flight", "Current number of scrapes being "
                             "served.", "gauge")
            flight.add_sample("promhttp_metric_handler_requests_in_flight", {}, self.in_flight)
            total = _family("promhttp_metric_handler_requests_total", "Total number of scrapes by HTTP status "
                            "code.", "counter")
            for code, n in sorted(self.codes.items()):
                total.add_sample("promhttp_metric_handler_requests_total", {"code": code}, n)
        yield flight
        yield total


# --------------------------------------------------------------------------------------------- render

def render(metrics: Iterable[Metric]) -> bytes:
    """The Prometheus text format as the Go client writes it: families by name, empty ones left out, a
    family's HELP/TYPE under the name its samples carry (prometheus_client's own counters are named
    without their _total suffix)."""
    out: list[str] = []
    fams = []
    for m in metrics:
        if not m.samples:
            continue
        name = m.name
        if m.type == "counter" and all(s.name != name for s in m.samples):
            name += "_total"
        fams.append((name, m))
    for name, m in sorted(fams, key=lambda f: f[0]):
        typ = "untyped" if m.type == "unknown" else m.type
        doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {typ}\n")
        for s in m.samples:
            if s.name.endswith("_created"):
                continue  # OpenMetrics only
            if s.labels:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels.items())
                out.append(f"{s.name}{{{labels}}} {format_float(float(s.value))}\n")
            else:
                out.append(f"{s.name} {format_float(float(s.value))}\n")
    return "".join(out).encode()


def _escape(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ------------------------------------------------------------------------------------------- health

def health(daemon, failing_s: float = HEALTH_FAILING_S) -> tuple[int, str]:
    """(status, one-line body) of /healthz; see the module docstring."""
    store = daemon.store
    if daemon.stop_event.is_set() or store.closing.is_set() or store.scheduler is None:
        return 503, "shutting down"
    now_ns = time.time_ns()
    for e in list(store.entries):
        since = e.db.stats.failing_since_ns
        if since and store.is_open(e) and now_ns - since >= failing_s * 1e9:
            return 503, f"sync failing: {e.db.path}"
    return 200, "ok"


def _env_seconds(name: str, default: float) -> float:
    try:
        v = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return v if v >= 0 else default


# --------------------------------------------------------------------------------------------- serve

class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "litestream"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is dropped after this

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            status, text = health(self.server.daemon, self.server.failing_s)
            self._send(status, "text/plain; charset=utf-8", (text + "\n").encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"404 page not found\n")

    do_HEAD = do_GET

    def _metrics(self) -> None:
        scrapes = self.server.scrapes
        with scrapes.lock:
            scrapes.in_flight += 1
        code = 500
        try:
            body = render(self.server.registry.collect())
            code = 200
        except Exception as e:  # a broken collector must not take the server down
            log.error("metrics collection failed", error=str(e))
            body = f"An error has occurred while serving metrics:\n\n{e}\n".encode()
        finally:
            with scrapes.lock:
                scrapes.in_flight -= 1
        gz = code == 200 and "gzip" in (self.headers.get("Accept-Encoding") or "")
        self._send(code, CONTENT_TYPE if code == 200 else "text/plain; charset=utf-8",
                   gzip.compress(body, 1) if gz else body, gzip_encoded=gz)
        with scrapes.lock:
            scrapes.codes[str(code)] = scrapes.codes.get(str(code), 0) + 1

    def _send(self, status: int, ctype: str, body: bytes, gzip_encoded: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if gzip_encoded:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log (the reference writes none)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a scrape in progress never holds up the exit

    def __init__(self, sock: socket.socket, daemon) -> None:
        socketserver.BaseServer.__init__(self, sock.getsockname()[:2], _Handler)
        self.socket = sock
        self.daemon = daemon
        self.scrapes = ScrapeCollector()
        self.failing_s = _env_seconds(HEALTH_FAILING_ENV, HEALTH_FAILING_S)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StoreCollector(daemon))
        self.registry.register(ProcessCollector(registry=None))
        self.registry.register(self.scrapes)


class MetricsService(Listening):
    def __init__(self, daemon, addr: str) -> None:
        host, port = split_host_port(addr)
        self.sock = _listen(addr, host, port)
        self.server = _Server(self.sock, daemon)
        self.port = self.sock.getsockname()[1]
        self.serve(self.sock, self.server, "litestream-metrics")
        # As the reference: an empty host is shown as localhost (port 0: the one the system chose).
        shown = _join_host_port(host or "localhost", self.port if port == 0 else port)
        logs.info("serving metrics on", "url", f"http://{shown}/metrics")



def start(daemon) -> MetricsService | None:
    addr = daemon.config.addr
    if not addr:
        return None
    return MetricsService(daemon, addr)
