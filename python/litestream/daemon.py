"""The `replicate` daemon: the store plus the services around it, started and stopped in the reference's
order (§3.8): MCP, store, control socket, directory monitors, metrics, heartbeat, exec.

Each service is a module with `start(daemon) -> Service | None` (None: not configured) whose result has
`close()`; a service that cannot start raises `ServiceError` (a clear one-line error, exit 1) or, for the
control socket as in the reference, logs a warning and returns None. Services reach the engine only
through `Daemon` (its store, config and the helpers below), so they can be built and tested apart."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol

from litestream import __version__, logs
from litestream.config import Config

log = logs.get_logger("daemon")
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Service(Protocol):
    def close(self) -> None: ...


class ServiceError(Exception):
    """A service could not start (e.g. its port is in use): replicate exits with this message."""


# In start order; each module's start(daemon) decides whether it is configured.
SERVICES_BEFORE_STORE = ("litestream.server.mcp",)
SERVICES_AFTER_STORE = (
    "litestream.server.control",
    "litestream.dirwatch",
    "litestream.server.metrics",
    "litestream.server.heartbeat",
)


def start_thread_without_signals(thread: threading.Thread) -> None:
    """Start a service thread with SIGINT and SIGTERM blocked (threads it starts inherit that): the
    daemon's main thread waits for them, and a signal the kernel hands to another thread would only set
    CPython's flag, leaving the main thread asleep."""
    sigs = STOP_SIGNALS
    if threading.current_thread() is not threading.main_thread():
        thread.start()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Daemon:
    def __init__(self, config: Config, store, config_path: str = "") -> None:
        self.config = config
        self.store = store
        self.config_path = config_path  # the -config path in config mode ("" on the command-line form)
        self.version = __version__
        self.pid = os.getpid()
        self.started_at_ns = time.time_ns()
        self.started_monotonic = time.monotonic()
        self.stop_event = threading.Event()
        self.services: list[Service] = []
        self._received: list[int] = []

    # ------------------------------------------------------------------------------ for services

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def shutdown(self) -> None:
        """Ask the daemon to stop (as a signal would)."""
        self.stop_event.set()

    # ---------------------------------------------------------------------------------- lifecycle

    def _start_services(self, modules: tuple[str, ...]) -> None:
        import importlib

        for name in modules:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as e:
                if e.name == name:
                    continue  # a service not built yet
                raise
            svc = module.start(self)
            if svc is not None:
                self.services.append(svc)

    def close_services(self) -> None:
        for svc in reversed(self.services):
            try:
                svc.close()
            except Exception as e:  # one service failing to close must not keep the others open
                log.error("service close failed", service=type(svc).__name__, error=str(e))
        self.services.clear()

    def run(self, exec_spec, on_started: Callable[[], None] | None = None) -> int:
        """Replicate until a signal, the exec child's exit or shutdown(); returns the exit code or raises
        ServiceError/CommandError-like errors from execs."""
        from litestream import execs

        def on_signal(signum, frame):
            self._received.append(signum)
            if self.stop_event.is_set():
                self.store.abort_shutdown.set()
            self.stop_event.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        # main() restores SIGPIPE's default for the one-shot commands (`ltx | head`); a daemon must get EPIPE
        # instead when a peer of one of its sockets goes away (a client of the control socket or of the
        # metrics endpoint closing early), not die. Exec children get the default back (subprocess does).
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # Linux hands a process signal to any thread that does not block it, and CPython runs the handler
        # only in the main thread without waking it: a SIGTERM taken by a worker would leave the main
        # thread asleep. Every thread started from here on inherits the blocked mask; the main thread
        # unblocks once they all run.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            try:
                self._start_services(SERVICES_BEFORE_STORE)
                self.store.open()
                self._start_services(SERVICES_AFTER_STORE)
                if on_started is not None:
                    on_started()
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            # Children are started unblocked (a blocked mask survives exec: the application would ignore
            # the SIGTERM we forward); their waiting threads use start_thread_without_signals.
            runner = execs.start(exec_spec, self)
        except BaseException:
            self.close_services()
            self.store.close()
            raise
        while not self.stop_event.wait(3600):
            pass
        error = runner.finish(self._received[0] if self._received else None) if runner is not None else None
        if self._received and runner is None:
            logs.info("signal received, litestream shutting down", "signal", execs.signal_name(self._received[0]))
        self.close_services()
        self.store.close()
        logs.info("litestream shut down")
        return error
