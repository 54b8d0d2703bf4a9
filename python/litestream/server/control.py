"""The control socket (`socket:` in the config; reference §3.9): HTTP/1.1 over a unix socket, what the
`start`, `stop`, `sync`, `register`, `unregister`, `list` and `info` commands talk to.

Routes, status codes and bodies are the reference's (server.go): JSON written as Go's json.Encoder
writes it (compact, a trailing newline), request bodies read as its json.Decoder reads them (gojson.py,
Go's error texts in `details`), Go's ServeMux answers for a wrong method (405 with Allow), an unknown
path (404) and an unclean one (301). Paths are expanded here, by the daemon (`~`, `sqlite://`, relative
to the daemon's working directory). Everything goes through the Store's methods.

Not served: /debug/pprof (Go's profiler; Python has no equivalent endpoint). /debug/sync-status has
the reference's shape with the fields we track (see _sync_status).

Idle costs nothing: one thread blocked in accept(); each connection gets a daemon thread."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from litestream import logs
from litestream.backends.url import go_clean
from litestream.config import ConfigError, expand_path
from litestream.gofmt import format_rfc3339_nano, go_json_dumps
from litestream.server import gojson
from litestream.server.gojson import BOOL, INT, STRING, GoJSONError, Struct
from litestream.server.listener import Listening

log = logs.get_logger("control").with_attrs(system="server")

MAX_BODY = 1 << 20  # a request body is a few bytes; more than this is not read (Go reads what it decodes)
IDLE_TIMEOUT_S = 300  # a keep-alive connection left idle this long is closed (its thread ends)
LONG_WAIT_S = 24 * 3600.0  # "no timeout" for a store call that takes one
DEFAULT_TIMEOUT_S = 30

START_REQUEST = Struct("litestream.StartRequest", {"path": STRING, "timeout": INT})
STOP_REQUEST = Struct("litestream.StopRequest", {"path": STRING, "timeout": INT})
SYNC_REQUEST = Struct("litestream.SyncRequest", {"path": STRING, "wait": BOOL, "timeout": INT})
REGISTER_REQUEST = Struct("litestream.RegisterDatabaseRequest", {"path": STRING, "replica_url": STRING})
UNREGISTER_REQUEST = Struct("litestream.UnregisterDatabaseRequest", {"path": STRING, "timeout": INT})


class ControlError(Exception):
    """The server could not start (logged as a warning; replicate goes on without it, as the reference)."""


class Reply(Exception):
    """A handler's answer other than 200 (raised from anywhere in a handler)."""

    def __init__(self, status: int, error: str, details: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if details is not None:
            self.body["details"] = details


def _os_text(e: OSError) -> str:
    """Go's text for a syscall error (its table is strerror in lower case)."""
    if e.errno:
        return os.strerror(e.errno).lower()
    return "invalid argument"  # e.g. "AF_UNIX path too long": the kernel's EINVAL in Go


# ------------------------------------------------------------------------------------------ routes

class Handlers:
    """The endpoints' work, apart from HTTP: each takes the decoded request and returns the 200 body."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.store = daemon.store
        self.started_ns = time.time_ns()
        self.started_mono = time.monotonic()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, path: str) -> threading.Lock:
        """One start/stop/register/unregister at a time per database (the Store's calls are not atomic)."""
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    @staticmethod
    def _decode(body: bytes, spec: Struct) -> dict[str, Any]:
        try:
            return gojson.decode(body, spec)
        except GoJSONError as e:
            raise Reply(400, "invalid request body", str(e)) from None

    @staticmethod
    def _expand(path: str) -> str:
        if path == "":
            raise Reply(400, "path required")
        try:
            return expand_path(path)
        except ConfigError as e:
            raise Reply(400, f"invalid path: {e}") from None

    @staticmethod
    def _local_txid(e) -> int:
        """The highest local L0 TXID, as the reference's MaxLTX (what start, stop and unregister report)."""
        try:
            return e.db.meta.max_l0_txid()
        except OSError as ex:
            raise Reply(500, f"read txid: {ex}") from None

    @staticmethod
    def _open_failed(e) -> bool:
        """The Store's open of this database just failed (it would retry in the background)."""
        return not e.ready and e.errors > 0 and not e.stopped

    def start(self, body: bytes) -> dict[str, Any]:
        req = self._decode(body, START_REQUEST)
        path = self._expand(req["path"])
        e = self.store.find(path)
        if e is None:
            raise Reply(500, f"database not found: {path}")
        with self._lock(path):
            status = "already_running"
            if e.stopped:
                status = "started"
                self.store.start_db(e)
                if self._open_failed(e):
                    error = e.db.stats.last_error
                    self.store.stop_db(e)  # as the reference: a database that cannot open stays stopped
                    raise Reply(500, f"open database: {error}")
        return {"status": status, "path": path, "txid": self._local_txid(e)}

    def stop(self, body: bytes) -> dict[str, Any]:
        req = self._decode(body, STOP_REQUEST)
        path = self._expand(req["path"])
        timeout = req["timeout"] or DEFAULT_TIMEOUT_S
        e = self.store.find(path)
        if e is None:
            raise Reply(500, f"database not found: {path}")
        with self._lock(path):
            status = "already_stopped"
            if not e.stopped:
                status = "stopped"
                self.store.stop_db(e, max(0, timeout))  # final sync and upload, then closed
        return {"status": status, "path": path, "txid": self._local_txid(e)}

    def txid(self, query: dict[str, list[str]]) -> dict[str, Any]:
        raw = (query.get("path") or [""])[0]
        path = self._expand(raw)
        e = self.store.find(path)
        if e is None:
            raise Reply(404, "database not found")
        return {"txid": e.db.txid}

    def sync(self, body: bytes) -> dict[str, Any]:
        req = self._decode(body, SYNC_REQUEST)
        path = self._expand(req["path"])
        wait, timeout = req["wait"], req["timeout"]
        if wait and timeout == 0:
            timeout = DEFAULT_TIMEOUT_S
        timeout_s = float(timeout) if timeout > 0 else LONG_WAIT_S
        e = self.store.find(path)
        if e is None:
            raise Reply(404, f"database not found: {path}")
        if e.stopped:
            raise Reply(409, f"database not open: {path}")
        if not e.ready:
            # Not stopped, but not open yet (its file does not exist, or opening fails and is retried): the
            # reference's open database with nothing to sync, whose replica has no position to wait for.
            if wait:
                why = e.db.stats.last_error if e.errors else "waiting for the database file"
                raise Reply(500, f"sync database: database not ready: {why}")
            return {"status": "no_change", "path": path, "txid": self._local_txid(e),
                    "replicated_txid": self.store.replicated_txid(e)}
        from litestream.store import DatabaseNotOpen

        errors_before = e.db.stats.sync_errors
        try:
            out = self.store.sync_db(e, wait, timeout_s)
        except DatabaseNotOpen:
            raise Reply(409, f"database not open: {path}") from None
        except TimeoutError as ex:
            raise Reply(500, f"sync database: {ex}") from None
        if e.db.stats.sync_errors > errors_before and e.db.stats.failing_since_ns:
            raise Reply(500, f"sync database: {e.db.stats.last_error}")
        status = "no_change" if not out.changed else "synced" if wait else "synced_local"
        return {"status": status, "path": path, "txid": out.txid, "replicated_txid": out.replicated_txid}

    def register(self, body: bytes) -> dict[str, Any]:
        req = self._decode(body, REGISTER_REQUEST)
        if req["path"] == "":
            raise Reply(400, "path required")
        if req["replica_url"] == "":
            raise Reply(400, "replica_url required")
        path = self._expand(req["path"])
        with self._lock(path):
            if self.store.find(path) is not None:
                return {"status": "already_registered", "path": path}
            entry = self._new_entry(path, req["replica_url"])
            if not self.store.add(entry):
                if self.store.find(path) is not None:
                    return {"status": "already_registered", "path": path}
                raise Reply(500, "failed to register database: litestream is shutting down")
            if self._open_failed(entry):
                error = entry.db.stats.last_error
                self.store.remove(path)
                raise Reply(500, f"failed to register database: open db: {error}")
        log.info("registered database", path=path)
        return {"status": "registered", "path": path}

    def _new_entry(self, path: str, url: str):
        """Default database settings and a replica from the URL alone (the reference's
        NewReplicaClientFromURL); compaction, retention and shutdown settings are the store's."""
        from litestream.assemble import db_settings, replica_settings
        from litestream.backends import client_from_url
        from litestream.config import DBConfig, ReplicaConfig
        from litestream.db.database import Database
        from litestream.replica import Replica
        from litestream.store import DBEntry

        try:
            client = client_from_url(url)
        except (ConfigError, ValueError) as e:
            raise Reply(400, f"invalid replica url: {e}") from None
        db = Database(path, db_settings(DBConfig(path=path)))
        for other in list(self.store.entries):
            if other.db.meta.path == db.meta.path:
                raise Reply(500, f"failed to register database: meta directory {db.meta.path} is already used "
                                 f"by {other.path}")
        replica = Replica(db, client, replica_settings(ReplicaConfig(url=url)))
        return DBEntry(db, [replica], source="register")

    def unregister(self, body: bytes) -> dict[str, Any]:
        req = self._decode(body, UNREGISTER_REQUEST)
        path = self._expand(req["path"])
        timeout = req["timeout"] if req["timeout"] > 0 else DEFAULT_TIMEOUT_S
        with self._lock(path):
            e = self.store.remove(path, float(timeout))  # final sync and upload, then forgotten
        if e is None:
            return {"status": "already_unregistered", "path": path, "txid": 0}
        try:
            txid = e.db.meta.max_l0_txid()
        except OSError as ex:
            raise Reply(500, f"failed to read final txid: {ex}") from None
        log.info("unregistered database", path=path)
        return {"status": "unregistered", "path": path, "txid": txid}

    def list_dbs(self) -> dict[str, Any]:
        out = []
        for e in list(self.store.entries):
            if e.stopped:
                status = "stopped"
            elif e.replicas and self.store.background:
                status = "replicating"
            else:
                status = "open"
            item: dict[str, Any] = {"path": e.path, "status": status}
            last = e.last_replica_sync_ns()
            if last:
                item["last_sync_at"] = format_rfc3339_nano(last)
            out.append(item)
        return {"databases": out}

    def info(self) -> dict[str, Any]:
        return {"version": self.daemon.version, "pid": os.getpid(),
                "uptime_seconds": int(time.monotonic() - self.started_mono),
                "started_at": format_rfc3339_nano(self.started_ns), "database_count": len(self.store.entries)}

    def sync_status(self, query: dict[str, list[str]]) -> dict[str, Any]:
        raw = (query.get("path") or [""])[0]
        if raw:
            path = self._expand(raw)
            e = self.store.find(path)
            if e is None:
                raise Reply(404, "database not found")
            return {"databases": [self._sync_status(e)]}
        return {"databases": [self._sync_status(e) for e in list(self.store.entries)]}

    def _sync_status(self, e) -> dict[str, Any]:
        """The reference's SyncDiagnostic with what we know: whether a sync of the database is queued or
        running (`active`), when the last sync ended (`updated_at`), the TXID, the WAL's current size, the
        WAL offset replicated up to, the error of the failing sync. Not tracked, so omitted: phase,
        started_at, elapsed_seconds, snapshotting, checkpoint_mode, reason, executor_* (a checkpoint runs
        inside a sync here, so `operation` is always "sync")."""
        scheduler = self.store.scheduler
        active = scheduler is not None and not scheduler.wait_keys([("sync", id(e))], timeout=0)
        d: dict[str, Any] = {"path": e.path, "active": active}
        stats = e.db.stats
        if active or stats.last_sync_ns:
            d["operation"] = "sync"
        if stats.last_sync_ns:
            d["updated_at"] = format_rfc3339_nano(stats.last_sync_ns)
        if e.db.txid:
            d["txid"] = e.db.txid
        with contextlib.suppress(OSError):
            if size := os.stat(e.db.wal_path).st_size:
                d["wal_size"] = size
        pos = getattr(e.db.syncer, "pos", None)
        if pos is not None and pos.end:
            d["last_synced_wal_offset"] = pos.end
        if stats.failing_since_ns and stats.last_error:
            d["error"] = stats.last_error
        return d


# (path) -> (method, handler name, takes): takes is "body", "query" or "" (nothing)
ROUTES: dict[str, tuple[str, str, str]] = {
    "/start": ("POST", "start", "body"),
    "/stop": ("POST", "stop", "body"),
    "/txid": ("GET", "txid", "query"),
    "/register": ("POST", "register", "body"),
    "/unregister": ("POST", "unregister", "body"),
    "/sync": ("POST", "sync", "body"),
    "/list": ("GET", "list_dbs", ""),
    "/info": ("GET", "info", ""),
    "/debug/sync-status": ("GET", "sync_status", "query"),
}


def clean_path(p: str) -> str:
    """Go's ServeMux cleanPath: path.Clean of the rooted path, a trailing slash kept."""
    if not p.startswith("/"):
        p = "/" + p
    out = go_clean(p)
    return out + "/" if p.endswith("/") and out != "/" else out


def _split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target: origin-form ("/list?x", where "//list" is a path, not a host)
    or absolute-form ("http://localhost/list")."""
    if not target.startswith("/"):
        url = urlsplit(target)
        return url.path or "/", url.query
    path, _, query = target.partition("?")
    return path, query.partition("#")[0]


# --------------------------------------------------------------------------------------------- http

class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the router (Go's mux answers 405/404 itself, never 501).
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        body = self._read_body()
        # The target as sent: http.server rewrites a leading "//" in self.path, which Go's mux redirects.
        words = self.requestline.split()
        raw_path, query = _split_target(words[1] if len(words) >= 2 else self.path)
        path = unquote(raw_path)
        if self.command != "CONNECT" and clean_path(path) != path:
            self._redirect(clean_path(path) + (f"?{query}" if query else ""))
            return
        route = ROUTES.get(path)
        if route is None:
            self._plain(404, "404 page not found")
            return
        method, name, takes = route
        allowed = ("GET", "HEAD") if method == "GET" else (method,)
        if self.command not in allowed:
            self._plain(405, "Method Not Allowed", {"Allow": ", ".join(allowed)})
            return
        fn = getattr(self.server.handlers, name)
        try:
            if takes == "body":
                result = fn(body)
            elif takes == "query":
                result = fn(parse_qs(query, keep_blank_values=True))
            else:
                result = fn()
            status = 200
        except Reply as r:
            status, result = r.status, r.body
        except Exception as e:  # a bug must answer 500, not drop the connection
            log.error("control request failed", path=path, error=str(e))
            status, result = 500, {"error": str(e)}
        self._send(status, "application/json", go_json_dumps(result, indent=None).encode())

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            return self._read_chunked()
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            return b""
        if n > MAX_BODY:
            self.close_connection = True  # the rest is never read
        return self.rfile.read(min(n, MAX_BODY)) if n > 0 else b""

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while len(out) <= MAX_BODY:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                break
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline(1024)
        self.close_connection = True
        return bytes(out)

    def _plain(self, status: int, text: str, extra: dict[str, str] | None = None) -> None:
        # Go's http.Error: text/plain, nosniff, a newline after the text.
        headers = {**(extra or {}), "X-Content-Type-Options": "nosniff"}
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode(), headers)

    def _redirect(self, location: str) -> None:
        if self.command in ("GET", "HEAD"):
            from html import escape

            body = f'<a href="{escape(location, quote=True)}">Moved Permanently</a>.\n\n'.encode()
            self._send(301, "text/html; charset=utf-8", body, {"Location": location})
        else:
            self._send(301, None, b"", {"Location": location})

    def _send(self, status: int, ctype: str | None, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response_only(status)  # no Server header: Go sends none
        fields = dict(headers or {})
        if ctype is not None:
            fields["Content-Type"] = ctype
        for k in sorted(fields):  # Go writes the handler's headers sorted, then Date and Content-Length
            self.send_header(k, fields[k])
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log (the reference writes none)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a request in progress (a long `sync -wait`) never holds up the exit
    block_on_close = False

    def __init__(self, sock: socket.socket, handlers: Handlers) -> None:
        socketserver.BaseServer.__init__(self, sock.getsockname(), _Handler)
        self.socket = sock
        self.handlers = handlers

    def handle_error(self, request, client_address) -> None:
        # A client that goes away (or idles out) mid-answer is no error of ours; anything else is logged
        # on one line (socketserver would print a traceback to stderr).
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        log.error("control connection failed", error=repr(exc))


def listen(path: str, perms: int) -> socket.socket:
    """The listening socket at `path`, with the reference's checks and error texts."""
    if not path:
        raise ControlError("socket path required")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ControlError(f"check socket path: lstat {path}: {_os_text(e)}") from None
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"socket path exists but is not a socket: {path}")
        try:
            os.remove(path)  # left by a process that is gone (or is about to lose its socket)
        except OSError as e:
            raise ControlError(f"remove existing socket: remove {path}: {_os_text(e)}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(path)
        except OSError as e:
            raise ControlError(f"listen on unix socket: listen unix {path}: bind: {_os_text(e)}") from None
        sock.listen(128)
        try:
            os.chmod(path, perms)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.remove(path)
            raise ControlError(f"chmod socket: chmod {path}: {_os_text(e)}") from None
    except BaseException:
        sock.close()
        raise
    return sock


class ControlService(Listening):
    def __init__(self, daemon, path: str, perms: int) -> None:
        self.path = path
        self.sock = listen(path, perms)
        self.ino = os.stat(path).st_ino
        self.handlers = Handlers(daemon)  # its start time: the socket is ready (the reference's startedAt)
        self.server = _Server(self.sock, self.handlers)
        log.info("control socket listening", path=path)
        self.serve(self.sock, self.server, "litestream-control")

    def close(self) -> None:
        super().close()
        # Go's listener removes its socket file on close; only ours (another process may have taken the path).
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.ino:
                os.remove(self.path)


def start(daemon) -> ControlService | None:
    sc = daemon.config.socket
    if sc is None or not sc.enabled:
        return None
    try:
        return ControlService(daemon, sc.path, sc.permissions)
    except ControlError as e:
        logs.warn("failed to start control server", error=str(e))
        return None
