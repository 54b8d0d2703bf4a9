"""What the GCS and Azure Blob Storage backends share: the reference's layout for both
(`<path>/ltx/<level>/<min16>-<max16>.ltx`), the level listing over an SDK's object iterator, CreatedAt
from a metadata timestamp, deleting, and small stream helpers. Like s3common for S3 and OSS, it imports
no SDK, so importing a backend module stays cheap."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from litestream.backends.base import BackendError, go_join, replica_root
from litestream.gofmt import parse_rfc3339_ns, time_to_ns
from litestream.ltx import FileInfo, format_filename, parse_filename

# Connections kept per host (parallel restores and uploads share one client).
POOL_SIZE = 32


def level_dir(root: str, level: int) -> str:
    return go_join(root, "ltx", str(level))


def ltx_key(root: str, level: int, min_txid: int, max_txid: int) -> str:
    return go_join(level_dir(root, level), format_filename(min_txid, max_txid))


def replica_prefix(root: str) -> str:
    """What delete_all removes: everything under `<path>/` (at the bucket's root only `ltx/`)."""
    return replica_root(root) + "/"


def one_line(s: Any, limit: int = 300) -> str:
    """An SDK message on one line, cut to a readable length (some carry whole JSON error bodies)."""
    s = " ".join(str(s).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def mount_pool(session: Any) -> None:
    """POOL_SIZE connections per host on a requests session: restores fetch in parallel (-parallelism),
    and beyond requests' 10 per host urllib3 drops connections and warns on stderr."""
    from requests.adapters import HTTPAdapter

    adapter = HTTPAdapter(pool_maxsize=POOL_SIZE)
    for scheme in ("https://", "http://"):
        session.mount(scheme, adapter)


def seekable_at_start(f: Any) -> bool:
    """A stream the SDKs may seek around in: a file (or the like) still at its first byte."""
    try:
        return bool(f.seekable()) and f.tell() == 0
    except (AttributeError, OSError, ValueError):
        return False


def read_exact(f: BinaryIO, n: int) -> bytes:
    """n bytes of a stream (a write's Source states its size; a shorter one is an error, not a
    truncated file)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            raise BackendError(f"source ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def created_ns(timestamp: str | None, created: Any) -> int:
    """CreatedAt of an object: its metadata timestamp when it parses (Go's time.Parse(RFC3339Nano)
    accepts what ours do), else the object's creation time, as the reference falls back."""
    if timestamp:
        try:
            return parse_rfc3339_ns(timestamp)[0]
        except ValueError:
            pass
    return time_to_ns(created)[0] if created is not None else 0


def level_files(level: int, prefix: str, seek: int, listing: Callable[[], Iterable[Any]],
                error: Callable[[Exception], BackendError], created_at: Callable[[Any], int]) -> Iterator[FileInfo]:
    """The LTX files of one level from an SDK's object iterator (`listing()`, objects with .name and
    .size), in its name order from MinTXID >= seek. The SDKs fetch pages lazily, inside next(), so an
    error there is mapped by `error` as one at the start is."""
    try:
        it = iter(listing())
    except Exception as e:
        raise error(e) from None
    while True:
        try:
            obj = next(it)
        except StopIteration:
            return
        except Exception as e:
            raise error(e) from None
        rest = obj.name[len(prefix):]
        txids = parse_filename(rest) if "/" not in rest else None
        if txids is None or txids[0] < seek:
            continue
        yield FileInfo(level, txids[0], txids[1], int(obj.size or 0), created_at(obj))


class BlobStoreClient:
    """Deleting, over two calls each client makes with its SDK: `_names` (every object name under a
    prefix) and `_delete` (one object; one already gone is no error)."""

    path: str

    def init(self) -> None:
        raise NotImplementedError

    def _names(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def _delete(self, key: str) -> None:
        raise NotImplementedError

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        return None

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        keys = [ltx_key(self.path, i.level, i.min_txid, i.max_txid) for i in infos]
        if not keys:
            return
        self.init()
        for key in keys:
            self._delete(key)

    def delete_all(self) -> None:
        self.init()
        for name in self._names(replica_prefix(self.path)):
            self._delete(name)
