"""The MCP server on `mcp-addr` (reference §3.14): Streamable HTTP at "/" (and at the SDK's usual "/mcp"),
server info "Litestream MCP Server" 1.0.0, the reference's seven tools with its argument names and
JSON schema types.

Differences from the reference, on purpose:

- The tools run the commands in this process (cli/capture.py: their output, log lines included, is
  collected per call; the daemon's own output and logging are left alone), not whatever `litestream`
  is first on $PATH; so the answers come from this build, and a missing binary cannot break them.
- A host-less address (":3001") listens on 127.0.0.1 only; the reference listens on every interface,
  and there is no authentication at all. Give a host ("0.0.0.0:3001") to listen elsewhere. On loopback
  the SDK's DNS-rebinding protection is on (Host/Origin must name a loopback address), so a web page
  cannot reach the server through a browser.
- A port in use or any other bind failure stops `replicate` with a one-line error; the reference logs
  it and replicates on without the server.
- litestream_restore passes its booleans as flags (the reference sends `-flag true`, which makes every
  such call fail with "too many arguments") and writes only a new path: the output (o, or the
  database path itself when o is absent) must not exist and must not be a database this process
  replicates; with if_db_not_exists the command's own check applies (an existing output is skipped).
- litestream_reset on a database this process replicates stops it first (final sync and upload),
  resets, and starts it again, instead of removing its files under the running replication.
- litestream_info finds the database paths with `databases -json`, so paths with spaces work.
- Arguments of the wrong JSON type are a tool error (the reference ignores them silently); tool
  annotations say what each tool really does (mcp-go marks every tool destructive).

The server runs on an asyncio loop in a thread of its own, with uvicorn's HTTP protocol on a socket
bound in start() (so bind errors are reported before the store opens). uvicorn.Server.serve() is not
used because its main loop wakes ten times a second; here the loop sleeps until a request comes.
Tool calls run in a daemon thread each, so a long restore never blocks the loop and cannot hold up
the process's exit. Shutdown: stop accepting, wait up to GRACE_S for running tool calls (the reference's
10 s), end the sessions (which closes open SSE streams), close the remaining connections.

The `mcp` package (the `litestream-py[mcp]` extra) and uvicorn are imported only here, and only when
mcp-addr is set."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from litestream import logs
from litestream.daemon import ServiceError
from litestream.gofmt import go_quote

if TYPE_CHECKING:
    import asyncio

GRACE_S = 10.0  # shutdown grace, as the reference's MCP server
START_TIMEOUT_S = 30.0
SERVER_NAME = "Litestream MCP Server"
SERVER_VERSION = "1.0.0"  # the reference's serverInfo version
PATHS = ("/", "/mcp")  # the reference's path, and the Python SDK's default

log = logs.get_logger("mcp")


# ---------------------------------------------------------------------------------------- address

def parse_addr(addr: str) -> tuple[str, int]:
    """(host, port) of `host:port`, `[v6]:port` or `:port`; ServiceError naming the address otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise ServiceError(f"invalid mcp-addr {go_quote(addr)}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ServiceError(f"invalid mcp-addr {go_quote(addr)}: too many colons in address (use [host]:port)")
    if not port.isdigit() or int(port) > 65535:
        raise ServiceError(f"invalid mcp-addr {go_quote(addr)}: invalid port {go_quote(port)}")
    return host, int(port)


def _listen(addr: str, host: str, port: int) -> socket.socket:
    """The listening socket. No host: 127.0.0.1 (loopback only, see the module doc). A name listens on
    one of its addresses, IPv4 first, as Go does."""
    try:
        if not host:
            return socket.create_server(("127.0.0.1", port))
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        infos.sort(key=lambda i: i[0] != socket.AF_INET)
        family, _, _, _, sockaddr = infos[0]
        return socket.create_server(sockaddr[:2], family=family)
    except OSError as e:
        plain = isinstance(e, socket.gaierror) or not e.errno
        reason = (e.strerror or str(e)) if plain else os.strerror(e.errno)
        raise ServiceError(f"cannot start MCP server on {go_quote(addr)}: {reason.lower()}") from None


def _is_loopback(ip: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(ip.split("%")[0]).is_loopback
    except ValueError:
        return False


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ------------------------------------------------------------------------------------------- tools

@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    properties: dict[str, dict[str, str]]  # argument -> {"type": ..., "description": ...}
    required: tuple[str, ...] = ()
    annotations: dict[str, bool] = field(default_factory=dict)

    def input_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": {k: dict(v) for k, v in self.properties.items()}}
        if self.required:
            schema["required"] = list(self.required)
        return schema


def _s(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


def _b(description: str) -> dict[str, str]:
    return {"type": "boolean", "description": description}


_CONFIG = _s("Litestream config file to read. Optional: defaults to the config this litestream runs with.")
_READ_LOCAL = {"readOnlyHint": True, "openWorldHint": False}
_READ_REPLICA = {"readOnlyHint": True, "openWorldHint": True}

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("litestream_info",
             "A summary of this Litestream: version, config path, databases and the LTX files of each.",
             {"config": _CONFIG}, annotations=_READ_REPLICA),
    ToolSpec("litestream_databases", "The databases of the config and the type of their replica.",
             {"config": _CONFIG}, annotations=_READ_LOCAL),
    ToolSpec("litestream_restore",
             "Restore a database from its replica into a new file (o, which must not exist yet; an existing "
             "file or a database this Litestream replicates is never overwritten).",
             {"path": _s("Database path (from the config) or replica URL to restore from."),
              "o": _s("Output path for the restored database; must not exist. Optional for a database path "
                      "only together with if_db_not_exists."),
              "config": _s("Litestream config file, for a database path. Optional; not used with a "
                           "replica URL."),
              "txid": _s("Restore up to this transaction ID (16 hex digits). Optional."),
              "timestamp": _s("Restore the state at this time (RFC 3339). Optional."),
              "parallelism": _s("How many LTX files to download at once. Optional."),
              "if_db_not_exists": _b("Succeed without restoring when the output already exists. Optional."),
              "if_replica_exists": _b("Succeed without restoring when the replica has no backup. Optional.")},
             ("path",), {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False,
                         "openWorldHint": True}),
    ToolSpec("litestream_ltx", "The LTX files of a database's replica (or of a replica URL), level 0.",
             {"path": _s("Database path (from the config) or replica URL."),
              "config": _s("Litestream config file, for a database path. Optional; not used with a "
                           "replica URL.")},
             ("path",), _READ_REPLICA),
    ToolSpec("litestream_version", "The Litestream version.", {}, annotations=_READ_LOCAL),
    ToolSpec("litestream_status",
             "Local replication state of each database: status, local transaction ID, WAL size.",
             {"config": _CONFIG, "path": _s("Only this database path. Optional.")}, annotations=_READ_LOCAL),
    ToolSpec("litestream_reset",
             "Remove a database's local LTX files, so that replication starts over with a snapshot. The "
             "database file is not changed.",
             {"path": _s("Database path."), "config": _CONFIG},
             ("path",), {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": True,
                         "openWorldHint": False}),
)
TOOLS_BY_NAME = {t.name: t for t in TOOLS}


class ToolError(Exception):
    """Ends a tool call with isError and this text."""


def _is_url(s: str) -> bool:
    # The reference's test for "a replica URL, not a database path" (the CLI rejects -config with one).
    return "://" in s


class Tools:
    """The tools' work, synchronous: each call runs in a thread (and a context) of its own."""

    def __init__(self, daemon, run_command: Callable[[list[str]], tuple[int, str]]) -> None:
        self.daemon = daemon
        self.run_command = run_command

    def call(self, name: str, args: dict[str, Any]) -> tuple[bool, str]:
        """(is_error, text) of one tool call."""
        spec = TOOLS_BY_NAME[name]
        try:
            _check_args(spec, args)
            return False, getattr(self, name.removeprefix("litestream_"))(args)
        except ToolError as e:
            return True, str(e)
        except Exception as e:  # a bug here must be an answer, not a dead request
            log.error("MCP tool failed", tool=name, error=str(e))
            return True, f"Error: {type(e).__name__}: {e}"

    # Every command's argv as the reference builds it (its flags, -config defaulting to the daemon's).
    def _config(self, args: dict[str, Any]) -> str:
        return args.get("config", self.daemon.config_path)

    def _run(self, argv: list[str]) -> str:
        code, out = self.run_command(argv)
        if code:
            raise ToolError(f"{out.strip()}: exit status {code}")
        return out

    def databases(self, args: dict[str, Any]) -> str:
        return self._run(["databases", "-config", self._config(args)])

    def status(self, args: dict[str, Any]) -> str:
        argv = ["status", "-config", self._config(args)]
        if "path" in args:
            argv.append(args["path"])
        return self._run(argv)

    def version(self, args: dict[str, Any]) -> str:
        return self._run(["version"])

    def ltx(self, args: dict[str, Any]) -> str:
        argv = ["ltx"]
        config = self._config(args)
        if not _is_url(args["path"]) and config:
            argv += ["-config", config]
        return self._run([*argv, args["path"]])

    def info(self, args: dict[str, Any]) -> str:
        config = self._config(args)
        parts = ["=== Litestream Status Report ===\n\n"]
        code, out = self.run_command(["version"])
        if code:
            raise ToolError(f"Failed to get version info: {out.strip()}: exit status {code}")
        parts += ["Version Information:\n", out, "\n", "Current Config Path:\n", config + "\n\n"]
        code, out = self.run_command(["databases", "-config", config])
        if code:
            raise ToolError(f"Failed to get databases info: {out.strip()}: exit status {code}")
        parts += ["Databases:\n", out, "\n", "LTX Files:\n"]
        paths = list(dict.fromkeys(self._database_paths(config, out)))
        ltx_config = ["-config", config] if config else []
        for path in paths:
            code, out = self.run_command(["ltx", *ltx_config, path])
            if code:
                parts += [f"Failed to get LTX files for {path}: exit status {code}\n", out]
                continue
            parts += [f"Database: {path}\n", out, "\n"]
        return "".join(parts)

    def _database_paths(self, config: str, table: str) -> list[str]:
        """The paths of `databases -json` (exact, spaces included); failing that, the first column of the
        table, as the reference reads it."""
        code, out = self.run_command(["databases", "-json", "-config", config])
        if code == 0:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                return [row["path"] for row in json.loads(out)]
        return [line.split()[0] for line in table.splitlines()[1:] if line.split()]

    def restore(self, args: dict[str, Any]) -> str:
        path = args["path"]
        argv = ["restore"]
        if "o" in args:
            argv += ["-o", args["o"]]
        if not _is_url(path):
            config = self._config(args)
            if config:
                argv += ["-config", config]
        for key in ("txid", "timestamp", "parallelism"):
            if key in args:
                argv += [f"-{key}", args[key]]
        if_db_not_exists = args.get("if_db_not_exists") is True
        if if_db_not_exists:
            argv.append("-if-db-not-exists")
        if args.get("if_replica_exists") is True:
            argv.append("-if-replica-exists")
        self._check_restore_target(self._restore_target(args), if_db_not_exists)
        return self._run([*argv, path])

    @staticmethod
    def _restore_target(args: dict[str, Any]) -> str:
        """The file the command would write, as it finds it: o (relative to our cwd), else the database
        path expanded like the config's paths; "" for a replica URL without o (the command refuses)."""
        if args.get("o"):
            return os.path.abspath(args["o"])
        if _is_url(args["path"]):
            return ""
        from litestream.config import ConfigError, expand_path

        try:
            return expand_path(args["path"])
        except ConfigError as e:
            raise ToolError(f"Error: {e}") from None

    def _check_restore_target(self, full: str, if_db_not_exists: bool) -> None:
        """Only a new file: never an existing one, never a database of this process."""
        if not full:
            return
        exists = os.path.lexists(full)
        if if_db_not_exists and exists:
            return  # the command only reports that the database exists
        if self._entry(full) is not None:
            raise ToolError(f"Error: refusing to restore onto {full}: it is a database this litestream "
                            "replicates; give o a path that does not exist")
        if exists:
            raise ToolError(f"Error: refusing to restore onto {full}: the path exists; litestream_restore "
                            "writes only a new file (give o a path that does not exist)")

    def reset(self, args: dict[str, Any]) -> str:
        argv = ["reset", "-config", self._config(args), args["path"]]
        entry = self._entry(os.path.abspath(args["path"]))
        store = self.daemon.store
        if entry is None or entry.stopped:
            return self._run(argv)
        # The running replication holds the state the reset removes: stop it (final sync and upload),
        # reset, start it again (it then begins with a snapshot). Its logs are the daemon's.
        log.info("stopping database for reset", db=entry.db.path)
        store.stop_db(entry)
        try:
            return self._run(argv)
        finally:
            store.start_db(entry)
            log.info("database started again after reset", db=entry.db.path)

    def _entry(self, path: str):
        """The store's entry for `path` (symlinks resolved), if this process replicates it."""
        real = os.path.realpath(path)
        for e in list(self.daemon.store.entries):
            if os.path.realpath(e.db.path) == real:
                return e
        return None


def _check_args(spec: ToolSpec, args: dict[str, Any]) -> None:
    for key in spec.required:
        if key not in args:
            raise ToolError(f"Error: missing required argument {go_quote(key)}")
    for key, value in args.items():
        prop = spec.properties.get(key)
        if prop is None:
            continue  # unknown arguments are ignored, as the reference does
        want = prop["type"]
        ok = isinstance(value, str) if want == "string" else isinstance(value, bool)
        if not ok:
            raise ToolError(f"Error: argument {go_quote(key)} must be a {want}, not {json.dumps(value)}")


# ------------------------------------------------------------------------------------------ server

def _import_sdk() -> SimpleNamespace:
    """The SDK's pieces (version 2: handlers given to the lowlevel Server's constructor)."""
    try:
        import mcp.types
        import uvicorn
        from mcp.server.lowlevel import Server
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
        from mcp.server.transport_security import TransportSecuritySettings
        from mcp.shared.exceptions import MCPError
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError as e:
        raise ServiceError(f"mcp-addr is set, but the MCP server needs the mcp package, version 2 ({e}): "
                           "pip install 'litestream-py[mcp]'") from None
    from importlib.metadata import version

    if int(version("mcp").split(".")[0]) < 2:
        raise ServiceError(f"mcp-addr is set, but the MCP server needs the mcp package version 2 or later "
                           f"(installed: {version('mcp')}): pip install 'litestream-py[mcp]'")
    return SimpleNamespace(types=mcp.types, uvicorn=uvicorn, Server=Server, ASGIApp=StreamableHTTPASGIApp,
                           SessionManager=StreamableHTTPSessionManager, Security=TransportSecuritySettings,
                           MCPError=MCPError, Starlette=Starlette, Route=Route)


class _ToSlog(logging.Handler):
    """The SDK's and uvicorn's warnings and errors, as lines of the daemon's log."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None and not hasattr(record, "slog_attrs"):
            record.slog_attrs = [logs.Attr("error", str(record.exc_info[1]))]
        logging.getLogger("litestream").handle(record)


def _route_library_logs() -> None:
    handler = _ToSlog()
    for name in ("mcp", "uvicorn"):
        lg = logging.getLogger(name)
        if not any(isinstance(h, _ToSlog) for h in lg.handlers):
            lg.addHandler(handler)
        lg.propagate = False
        lg.setLevel(logging.WARNING)


class MCPService:
    def __init__(self, daemon, addr: str, sock: socket.socket) -> None:
        from litestream.cli import capture

        self.daemon = daemon
        self.addr = addr
        self.sock = sock
        self.tools = Tools(daemon, capture.run)
        self.loopback = _is_loopback(sock.getsockname()[0])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._inflight = 0
        self._idle: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._thread_main, name="mcp-server", daemon=True)

    # ----------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise ServiceError(f"cannot start MCP server on {go_quote(self.addr)}: not ready after "
                               f"{START_TIMEOUT_S:g}s")
        if self._error is not None:
            raise ServiceError(f"cannot start MCP server on {go_quote(self.addr)}: {self._error}")

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(GRACE_S + 5)
        with contextlib.suppress(OSError):
            self.sock.close()
        if self._inflight == 0:
            # (A call still running past the grace period keeps the proxies, so it cannot print into
            # the daemon's output.)
            from litestream.cli import capture

            capture.uninstall()

    def _thread_main(self) -> None:
        import asyncio  # here, not at the top: replicate without mcp-addr imports this module too

        try:
            asyncio.run(self._serve())
        except BaseException as e:  # startup failed (or the server died): start() reports it
            if not self._ready.is_set():
                self._error = e
                self._ready.set()
            else:
                log.error("MCP server error", error=str(e))

    async def _serve(self) -> None:
        import asyncio

        sdk = _import_sdk()
        types = sdk.types
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        tools = [types.Tool(name=t.name, description=t.description, input_schema=t.input_schema(),
                            annotations=types.ToolAnnotations(**_annotations(t.annotations))) for t in TOOLS]
        schemas = {t.name: t.input_schema() for t in TOOLS}

        async def list_tools(ctx, params) -> Any:
            return types.ListToolsResult(tools=tools)

        async def call_tool(ctx, params) -> Any:
            if params.name not in TOOLS_BY_NAME:
                raise sdk.MCPError(-32602, f"tool {go_quote(params.name)} not found")
            is_error, text = await self._in_thread(self.tools.call, params.name, dict(params.arguments or {}))
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)

        server = sdk.Server(SERVER_NAME, version=SERVER_VERSION, on_list_tools=list_tools,
                            on_call_tool=call_tool, get_tool_input_schema=schemas.get)
        security = None
        if self.loopback:
            security = sdk.Security(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*",
                                 "http://127.0.0.1", "http://localhost", "http://[::1]"])
        manager = sdk.SessionManager(app=server, security_settings=security)
        endpoint = sdk.ASGIApp(manager)
        app = sdk.Starlette(routes=[sdk.Route(p, endpoint=endpoint) for p in PATHS])
        config = sdk.uvicorn.Config(app, http="h11", ws="none", lifespan="off", log_config=None,
                                    log_level="warning", access_log=False, server_header=False,
                                    date_header=False, timeout_graceful_shutdown=int(GRACE_S))
        config.load()
        http = sdk.uvicorn.Server(config)
        http.lifespan = config.lifespan_class(config)
        async with manager.run():
            await http.startup(sockets=[self.sock])
            self._ready.set()
            await self._stop.wait()
            for s in http.servers:
                s.close()  # no new connections
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GRACE_S):
                    await self._idle.wait()  # running tool calls finish (a command cannot be interrupted)
            # Leaving the manager ends every session, which closes their open streams.
        http.config.timeout_graceful_shutdown = 1
        await http.shutdown(sockets=[])

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in a new daemon thread with an empty context (so capture.run's buffer is its own)."""
        import asyncio
        import contextvars

        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        assert self._idle is not None

        def deliver(ok: bool, value: Any) -> None:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
            if not fut.done():
                fut.set_result(value) if ok else fut.set_exception(value)

        def work() -> None:
            try:
                value, ok = contextvars.Context().run(fn, *args), True
            except BaseException as e:
                value, ok = e, False
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits for the answer
                loop.call_soon_threadsafe(deliver, ok, value)

        self._inflight += 1
        self._idle.clear()
        threading.Thread(target=work, name="mcp-tool", daemon=True).start()
        return await fut


def _annotations(a: dict[str, bool]) -> dict[str, bool]:
    names = {"readOnlyHint": "read_only_hint", "destructiveHint": "destructive_hint",
             "idempotentHint": "idempotent_hint", "openWorldHint": "open_world_hint"}
    return {names[k]: v for k, v in a.items()}


def start(daemon) -> MCPService | None:
    addr = daemon.config.mcp_addr
    if not addr:
        return None
    host, port = parse_addr(addr)
    _import_sdk()  # a missing extra is a clear error before anything listens
    sock = _listen(addr, host, port)
    bound = _join(*sock.getsockname()[:2])
    from litestream.cli import capture

    capture.install()
    _route_library_logs()
    svc = MCPService(daemon, addr, sock)
    t0 = time.monotonic()
    try:
        svc.start()
    except BaseException:
        svc.close()
        raise
    if not host:
        # The reference listens on every interface here, with no authentication.
        log.info("Starting MCP Streamable HTTP server", "addr", addr, "listen", bound,
                 "note", "no host in mcp-addr: loopback only")
    else:
        log.info("Starting MCP Streamable HTTP server", "addr", addr, "listen", bound)
    if not svc.loopback:
        log.warn("MCP server listens beyond loopback and has no authentication", "listen", bound)
    log.debug("MCP server ready", "seconds", round(time.monotonic() - t0, 3))
    return svc
