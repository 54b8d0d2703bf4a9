"""Replica backend operations counted per replica type: the numbers behind litestream_replica_operation_*.

Plain integers in one process-wide table, read by the metrics collector at scrape time; nothing is
exported or allocated per operation beyond a dictionary lookup and a few additions under a lock.

`instrument(client)` counts one client without touching its backend module: the protocol's methods are
shadowed on the instance by thin wrappers (the class and isinstance checks are unaffected). What is
counted is calls of the client protocol, not HTTP requests:

- LIST: one per `ltx_files` listing (its duration is the whole iteration);
- GET: one per `open_ltx_file`; bytes are those read through the returned stream's read methods (a
  local file read in place through its descriptor, as the file backend's, counts no bytes);
- PUT: one per `write_ltx_file` / `write_ltx_file_with`; bytes = the stored file's size;
- DELETE: one per file given to `delete_ltx_files`, one per `delete_all`.

A call that raises counts as an operation and as an error whose code is NotFound, AccessDenied or
Error. Unlike the reference, whose backends count only some of these (its file backend none), every
backend is counted the same way."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from litestream.backends.base import AuthError, NotFoundError

OPERATIONS = ("GET", "PUT", "DELETE", "LIST")
# The reference's buckets for litestream_replica_operation_duration_seconds.
BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)


@dataclass
class OpCounts:
    count: int = 0
    bytes: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # code -> count
    # Histogram of durations: observations per bucket (not cumulative; the last one is +Inf) and their sum.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    seconds: float = 0.0


_lock = threading.Lock()
_table: dict[tuple[str, str], OpCounts] = {}


def snapshot() -> dict[tuple[str, str], OpCounts]:
    """A consistent copy of the table, keyed by (replica type, operation)."""
    with _lock:
        return {k: OpCounts(v.count, v.bytes, dict(v.errors), list(v.buckets), v.seconds) for k, v in _table.items()}


def record(rtype: str, op: str, seconds: float, nbytes: int = 0, error: BaseException | None = None,
           count: int = 1) -> None:
    with _lock:
        c = _table.get((rtype, op))
        if c is None:
            c = _table[(rtype, op)] = OpCounts()
        c.count += count
        c.bytes += nbytes
        c.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        c.seconds += seconds
        if error is not None:
            code = error_code(error)
            c.errors[code] = c.errors.get(code, 0) + 1


def add_bytes(rtype: str, op: str, nbytes: int) -> None:
    with _lock:
        c = _table.get((rtype, op))
        if c is None:
            c = _table[(rtype, op)] = OpCounts()
        c.bytes += nbytes


def error_code(e: BaseException) -> str:
    if isinstance(e, NotFoundError):
        return "NotFound"
    if isinstance(e, AuthError):
        return "AccessDenied"
    return "Error"


# ------------------------------------------------------------------------------------------- wrapping

_MARK = "_litestream_opstats"


def instrument(client: Any) -> Any:
    """Count the operations of this client (idempotent). A client that cannot take instance attributes
    is left as it is."""
    if getattr(client, _MARK, False):
        return client
    rtype = str(getattr(client, "type", "") or "unknown")
    try:
        for name, wrap in _WRAPPERS.items():
            fn = getattr(client, name, None)
            if callable(fn):
                setattr(client, name, wrap(rtype, fn))
        setattr(client, _MARK, True)
    except (AttributeError, TypeError):
        pass
    return client


def _timed(rtype: str, op: str, fn: Callable, size_of: Callable[[Any], int] | None = None) -> Callable:
    def call(*args: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        try:
            out = fn(*args, **kw)
        except BaseException as e:
            record(rtype, op, time.monotonic() - t0, error=e)
            raise
        record(rtype, op, time.monotonic() - t0, size_of(out) if size_of is not None else 0)
        return out
    return call


def _info_size(info: Any) -> int:
    return int(getattr(info, "size", 0) or 0)


def _wrap_put(rtype: str, fn: Callable) -> Callable:
    return _timed(rtype, "PUT", fn, _info_size)


def _wrap_list(rtype: str, fn: Callable) -> Callable:
    def ltx_files(*args: Any, **kw: Any) -> Iterator:
        t0 = time.monotonic()
        error: BaseException | None = None
        try:
            yield from fn(*args, **kw)
        except BaseException as e:
            if not isinstance(e, GeneratorExit):
                error = e
            raise
        finally:
            record(rtype, "LIST", time.monotonic() - t0, error=error)
    return ltx_files


def _wrap_get(rtype: str, fn: Callable) -> Callable:
    def open_ltx_file(*args: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        try:
            stream = fn(*args, **kw)
        except BaseException as e:
            record(rtype, "GET", time.monotonic() - t0, error=e)
            raise
        record(rtype, "GET", time.monotonic() - t0)
        return _CountingStream(stream, rtype)
    return open_ltx_file


def _wrap_delete(rtype: str, fn: Callable) -> Callable:
    def delete_ltx_files(infos: Iterable, *args: Any, **kw: Any) -> Any:
        infos = list(infos)
        t0 = time.monotonic()
        try:
            out = fn(infos, *args, **kw)
        except BaseException as e:
            record(rtype, "DELETE", time.monotonic() - t0, error=e, count=len(infos))
            raise
        if infos:
            record(rtype, "DELETE", time.monotonic() - t0, count=len(infos))
        return out
    return delete_ltx_files


def _wrap_delete_all(rtype: str, fn: Callable) -> Callable:
    return _timed(rtype, "DELETE", fn)


_WRAPPERS: dict[str, Callable[[str, Callable], Callable]] = {
    "ltx_files": _wrap_list,
    "open_ltx_file": _wrap_get,
    "write_ltx_file": _wrap_put,
    "write_ltx_file_with": _wrap_put,
    "delete_ltx_files": _wrap_delete,
    "delete_all": _wrap_delete_all,
}


class _CountingStream:
    """The stream open_ltx_file returned, counting the bytes read through it; everything else (fileno,
    seek, attributes) is the stream's own."""

    def __init__(self, stream: Any, rtype: str) -> None:
        self._s = stream
        self._rtype = rtype

    def read(self, n: int = -1) -> bytes:
        data = self._s.read(n)
        if data:
            add_bytes(self._rtype, "GET", len(data))
        return data

    def readinto(self, b: Any) -> int:
        readinto = getattr(self._s, "readinto", None)
        if readinto is None:  # a stream with read() only
            data = self._s.read(len(b))
            b[: len(data)] = data
            n = len(data)
        else:
            n = readinto(b)
        if n:
            add_bytes(self._rtype, "GET", n)
        return n

    def close(self) -> None:
        self._s.close()

    def __enter__(self) -> _CountingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._s.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s, name)
