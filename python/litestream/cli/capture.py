"""Run a CLI command inside a running process (the daemon's MCP tools) and collect what it prints.

The commands write to sys.stdout and sys.stderr, and their log lines go through the daemon's log handler,
which looks sys.stdout/sys.stderr up at each write (logs.SlogHandler with "stdout"/"stderr"). So
install() replaces both, once, with a proxy that writes to the buffer held in a context variable when
the current context has one, and to the real stream otherwise: a command run by run() in a thread of its
own (with its own context) has everything it prints, logs included, in its buffer, in order (stdout and
stderr combined, like Go's CombinedOutput), while every other thread of the daemon keeps writing to the
real streams. Threads a command starts do not inherit the context (threading.Thread runs in an empty
one), so what they print goes to the daemon's output; no command prints from such threads.

Inside run() logs.keep_config is set as well, so a command's init_log()/configure() (restore always
calls it; the others from the config's `logging:` section) cannot replace the daemon's handler or level:
its log lines keep the daemon's format and level.

A command that raises (or calls sys.exit) ends as an exit status with the error text, never as an
exception in the caller."""

from __future__ import annotations

import io
import sys
import threading
from contextvars import ContextVar
from typing import IO, Any

_buffer: ContextVar[io.StringIO | None] = ContextVar("litestream_capture_buffer", default=None)
_lock = threading.Lock()


class _Redirect(io.TextIOBase):
    """sys.stdout/sys.stderr: the context's buffer while a command runs in it, else the real stream."""

    def __init__(self, real: IO[str]) -> None:
        super().__init__()
        self.real = real

    def _target(self) -> IO[str]:
        buf = _buffer.get()
        return buf if buf is not None else self.real

    def write(self, s: str) -> int:
        return self._target().write(s)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        # Captured output is never a terminal: no colours, no progress lines.
        return _buffer.get() is None and self.real.isatty()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        if _buffer.get() is not None:
            raise io.UnsupportedOperation("captured output has no file descriptor")
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.real, "errors", None)

    def __getattr__(self, name: str) -> Any:
        # Everything else (buffer, mode, name, reconfigure...) is the real stream's.
        return getattr(self.real, name)


def install() -> None:
    """Put the proxies in place (idempotent; until uninstall())."""
    with _lock:
        if not isinstance(sys.stdout, _Redirect):
            sys.stdout = _Redirect(sys.stdout)
        if not isinstance(sys.stderr, _Redirect):
            sys.stderr = _Redirect(sys.stderr)


def uninstall() -> None:
    """Give the real streams back (only if the proxies are still the ones in place)."""
    with _lock:
        if isinstance(sys.stdout, _Redirect):
            sys.stdout = sys.stdout.real
        if isinstance(sys.stderr, _Redirect):
            sys.stderr = sys.stderr.real


def run(argv: list[str]) -> tuple[int, str]:
    """(exit status, combined output) of `litestream <argv>` run in the current context, which must be
    one of its own (a worker thread's copy): the buffer and the logging flag are set in it and reset after.
    install() must have been called."""
    from litestream import logs

    buf = io.StringIO()
    token = _buffer.set(buf)
    keep = logs.keep_config.set(True)
    try:
        code = _run(argv)
    finally:
        logs.keep_config.reset(keep)
        _buffer.reset(token)
    return code, buf.getvalue()


def _run(argv: list[str]) -> int:
    from litestream.cli import main

    try:
        return int(main.run(argv) or 0)
    except SystemExit as e:
        # sys.exit(n) in a command: its status (a message given instead is printed, as Python does).
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        sys.stderr.write(f"{e.code}\n")
        return 1
    except Exception as e:  # a bug in a command must not end the daemon's server
        sys.stderr.write(f"Error: {type(e).__name__}: {e}\n")
        return 1
