"""The one storage seam: every replica backend implements this small protocol and nothing else.

Paths inside a replica: `<root>/ltx/<level>/<min16>-<max16>.ltx` (S3/OSS use `<root>/<level %04x>/...`);
the layout belongs to each backend, callers only speak in levels and TXIDs.

Concurrency model: the engine is threads. Every method here is blocking and may be called from any
thread at once (one replica's sync, compaction and restore fetches overlap); a backend whose SDK is
asyncio (NATS) runs its own event-loop thread and waits on it with the call's timeout. Every network
call is bounded by the client's `timeout_s` (connect and each read), so a hung server surfaces as a
BackendError and `shutdown-sync-timeout` can stop a final sync."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, Self, runtime_checkable

from litestream.backends.url import go_clean
from litestream.ltx import FileInfo

DEFAULT_TIMEOUT_S = 30.0


class BackendError(Exception):
    """A storage operation failed; the message says which replica and what."""


class NotFoundError(BackendError):
    """The file (or bucket, container, directory) does not exist: not worth retrying."""


class AuthError(BackendError):
    """Credentials were refused or lack a permission: reported once, never retried."""


def require_sdk(module: str, rtype: str, extra: str):
    """Import a backend's SDK, or fail with one line naming the extra that installs it."""
    import importlib

    from litestream.config import ConfigError

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{rtype} replicas need the {module.split('.')[0]} package, which is not installed: "
                          f"pip install 'litestream-py[{extra}]'") from None


def reject_with_url(rc: Any, rtype: str, *keys: tuple[str, Any]) -> None:
    """The reference's "cannot specify url & <key> for <type> replica": a replica named by `url` may not
    also set the config keys the URL stands for (each given as (key name, value))."""
    from litestream.config import ConfigError

    if not rc.url:
        return
    for name, value in keys:
        if value:
            raise ConfigError(f"cannot specify url & {name} for {rtype} replica")


def parse_url(url: str, wrap: str = "{}") -> Any:
    """url.parse_replica_url, its ValueError as a ConfigError whose message is `wrap` around the reason."""
    from litestream.backends.url import parse_replica_url
    from litestream.config import ConfigError

    try:
        return parse_replica_url(url)
    except ValueError as e:
        raise ConfigError(wrap.format(e)) from None


def go_join(*elems: str) -> str:
    """Go's path.Join: the non-empty elements joined by "/" and cleaned ("" when all are empty)."""
    parts = [e for e in elems if e]
    return go_clean("/".join(parts)) if parts else ""


def replica_root(path: str) -> str:
    """What delete_all removes: the directory `<path>`. At the root of the bucket, share or login
    directory only `ltx`, the part that is litestream's, never everything there."""
    clean = go_clean(path) if path else "."
    return go_join(path, "ltx") if clean in (".", "/") else clean


def close_quietly(*objs: Any) -> None:
    """Close what a client let go of (None is skipped): a client's close() releases what it can and
    never raises, even over a connection that is already broken."""
    for obj in objs:
        if obj is not None:
            with contextlib.suppress(Exception):
                obj.close()


def error_line(e: BaseException) -> str:
    """An exception's message on one line (its class name when it has none), for a BackendError."""
    return " ".join(str(e).split()) or type(e).__name__


@dataclass(frozen=True)
class Source:
    """What a write stores: a local file (read from its start), or a stream positioned at the file's
    first byte. `size` is known for files and for streams whose writer knows it (None: read to EOF);
    backends use it to choose a single request or a multipart upload without guessing."""

    path: str | None = None
    stream: BinaryIO | None = None
    size: int | None = None

    @classmethod
    def file(cls, path: str) -> Source:
        return cls(path=path, size=os.stat(path).st_size)

    @classmethod
    def of(cls, stream: BinaryIO, size: int | None = None) -> Source:
        return cls(stream=stream, size=size)

    @contextlib.contextmanager
    def reader(self) -> Iterator[BinaryIO]:
        """The bytes to store, from the first; the caller's stream is not closed."""
        if self.path is not None:
            with open(self.path, "rb") as f:
                yield f
        else:
            assert self.stream is not None
            yield self.stream


@runtime_checkable
class ReplicaClient(Protocol):
    type: str

    def init(self) -> None:
        """Prepare the client (connect, check the bucket). Cheap to call again."""

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        """Files of one level in ascending name order, from MinTXID >= seek. use_metadata asks for exact
        CreatedAt values where a backend normally returns approximate ones (timestamp restores)."""
        ...

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        """A readable stream of the file from offset, of at most size bytes (0 = to the end). Raises
        NotFoundError when the file does not exist."""
        ...

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        """The file's path when it is a local file that can be read in place, else None."""
        ...

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        """Store a complete LTX file atomically (readers never see a partial file), with CreatedAt =
        timestamp_ms kept where the backend can keep it (metadata, mtime)."""
        ...

    # Optional: write_ltx_file_with(level, fill) -> FileInfo, where fill(fd) encodes the file into a
    # seekable descriptor the backend provides and returns its Header (which names the file).
    # Backends that can offer one (file) let snapshots and compactions be written once, in place;
    # replication.writes.write_filled falls back to a spool file for the others.

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        """Delete files; ones already gone are not an error."""

    def delete_all(self) -> None: ...

    def close(self) -> None:
        """Release connections and threads. The client is not used afterwards."""


class ReadStream:
    """What a backend's read-only stream derives from its read() and close(): readinto, and use as a
    context manager that closes it (transfer.download reads every open_ltx_file result this way)."""

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LimitedReader(ReadStream):
    """At most `limit` bytes of a stream (the ranged opens of backends whose reads cannot be bounded);
    closing it closes the stream."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self._s, self._left = stream, limit

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data = self._s.read(self._left if n is None or n < 0 else min(n, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._s.close()
