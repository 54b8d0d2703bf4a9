"""What the S3 and OSS backends share: the remote layout, the timestamp metadata and small helpers. No
SDK is imported here, so importing a backend module stays cheap.

Layout (both, as the reference): `<path>/<level %04x>/<min16>-<max16>.ltx`, the key being the path, a
slash and the rest, whatever the path is, so a bucket-root URL (`s3://bucket`, path `.`) writes
`./0000/...` and a config without a path writes `/0000/...`; v0.3 backups are read under
`path.Join(<path>, "generations", ...)`, as v0.3 wrote them.

The two clients differ only in their SDK calls: KeyStoreClient holds the listing, deleting and error
wording above them, so either tool's behaviour (and each message) is written once."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qs

from litestream.backends.base import AuthError, BackendError, NotFoundError, ReadStream, go_join
from litestream.gofmt import format_rfc3339_nano, parse_rfc3339_ns
from litestream.ltx import FileInfo, format_filename, parse_filename

METADATA_KEY_TIMESTAMP = "litestream-timestamp"
MAX_KEYS = 1000  # keys per DeleteObjects request and per listing page
METADATA_CONCURRENCY = 50  # parallel HEADs when exact timestamps are asked for, as the reference
MIN_PART_SIZE = 5 << 20  # S3's smallest multipart part (not the last)
DEFAULT_PART_SIZE = 5 << 20

T = TypeVar("T")
R = TypeVar("R")


def level_prefix(path: str, level: int) -> str:
    return f"{path}/{level:04x}/"


def ltx_key(path: str, level: int, min_txid: int, max_txid: int) -> str:
    return level_prefix(path, level) + format_filename(min_txid, max_txid)


def format_timestamp(timestamp_ms: int) -> str:
    """The metadata value: the header timestamp in UTC as Go's time.RFC3339Nano formats it
    (`2026-11-25T21:55:41.36Z`, trailing zeros trimmed), so the reference reads ours and vice versa."""
    return format_rfc3339_nano(int(timestamp_ms) * 1_000_000, 0)


def parse_timestamp(value: str | None) -> int | None:
    """Unix nanoseconds of a metadata timestamp, or None if it is missing or not RFC 3339 (the caller
    then falls back to LastModified, as the reference does)."""
    if not value:
        return None
    try:
        return parse_rfc3339_ns(value.strip())[0]
    except ValueError:
        return None


def v3_prefix(path: str, *parts: str) -> str:
    """A v0.3 directory as a listing prefix (with its trailing slash)."""
    return go_join(path, "generations", *parts) + "/"


def with_scheme(endpoint: str) -> str:
    """An endpoint as a URL: https:// unless it names its scheme."""
    return endpoint if endpoint.startswith(("http://", "https://")) else "https://" + endpoint


def start_after(prefix: str, seek: int) -> str:
    """Where a level's listing may start: names sort by MinTXID, and every name at or after seek begins
    with its 16 hex digits, which sort after the bare digits."""
    return f"{prefix}{seek:016x}" if seek > 0 else ""


def check_part_size(scheme: str, key: str, part: int, minimum: int) -> None:
    """As the reference: refused on every upload, so a small file cannot hide the mistake."""
    if part < minimum:
        raise BackendError(f"{scheme}: upload to {key}: part size must be at least {minimum} bytes")


def apply_upload_keys(settings: Any, rc: Any) -> None:
    """The part-size and concurrency config keys, which beat URL query values and provider defaults."""
    if rc.part_size is not None:
        settings.part_size = int(rc.part_size)
    if rc.concurrency is not None:
        settings.concurrency = rc.concurrency


def service_error(scheme: str, op: str, where: str, code: str, msg: str, status: Any, *, not_found: bool,
                  denied: bool) -> BackendError:
    """A service's error answer (code, one-line message, HTTP status) as the error to raise; the caller
    says, by its SDK's codes, whether it means a missing object or refused credentials."""
    detail = f"{code}: {msg}" if msg else (code or f"HTTP {status}")
    if not_found:
        what = "bucket" if code == "NoSuchBucket" else "object"
        return NotFoundError(f"{scheme}: {op} {where}: {what} not found ({detail})")
    if denied:
        return AuthError(f"{scheme}: {op} {where}: access denied ({detail}); check access-key-id/"
                         f"secret-access-key and the bucket's permissions")
    return BackendError(f"{scheme}: {op} {where}: {detail}")


class StreamBody(ReadStream):
    """A GET's body: bounded reads, with the SDK's network errors turned into BackendError (`what`
    names the read, `describe` words the SDK's error)."""

    def __init__(self, body: Any, what: str, describe: Callable[[Exception], str]) -> None:
        self._b, self._what, self._describe = body, what, describe

    def read(self, n: int = -1) -> bytes:
        try:
            return self._b.read(None if n is None or n < 0 else n)
        except Exception as e:  # the SDK's read errors and timeouts, of many classes (oss2: its CRC check)
            raise BackendError(f"{self._what}: {self._describe(e)}") from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._b.close()


class KeyStoreClient:
    """Listing and deleting of an S3-like key store, over three calls each client makes with its SDK:
    `_objects` (listing pages of (key, size, mtime ns)), `_head_timestamp` and `_delete_keys`."""

    settings: Any
    _log: Any

    def _objects(self, prefix: str, start: str = "") -> Iterator[list[tuple[str, int, int]]]:
        raise NotImplementedError

    def _head_timestamp(self, key: str) -> int | None:
        raise NotImplementedError

    def _delete_keys(self, keys: list[str], op: str) -> None:
        raise NotImplementedError

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        prefix = level_prefix(self.settings.path, level)
        for objects in self._objects(prefix, start_after(prefix, seek)):
            rows = []
            for key, size, mtime in objects:
                txids = parse_filename(basename(key))
                if txids is not None and txids[0] >= seek:
                    rows.append((key, txids, size, mtime))
            stamps = parallel_map(self._head_timestamp, [r[0] for r in rows]) if use_metadata and rows else None
            for i, (_key, (lo, hi), size, mtime) in enumerate(rows):
                # A metadata timestamp that cannot be read leaves LastModified, as the reference.
                created = stamps[i] if stamps is not None and stamps[i] is not None else mtime
                yield FileInfo(level, lo, hi, size, created)

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        return None

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        keys = [ltx_key(self.settings.path, i.level, i.min_txid, i.max_txid) for i in infos]
        if keys:
            self._log.debug("deleting ltx files", bucket=self.settings.bucket, count=len(keys))
            self._delete_keys(keys, "delete")

    def delete_all(self) -> None:
        # Listed completely first: deleting while paging can upset continuation tokens on some stores.
        keys = [k for objects in self._objects(self.settings.path + "/") for k, _, _ in objects]
        if keys:
            self._delete_keys(keys, "delete all")


def basename(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def parallel_map(fn: Callable[[T], R], items: Iterable[T], limit: int = METADATA_CONCURRENCY) -> list[R]:
    """fn over items on up to `limit` threads, results in input order (the metadata HEADs of a page)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(limit, len(items)), thread_name_prefix="ls-head") as pool:
        return list(pool.map(fn, items))


def chunks(items: list[T], n: int = MAX_KEYS) -> Iterator[list[T]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def read_full(f, n: int) -> bytes:
    """n bytes, or all up to EOF: a network stream may return less per read."""
    out = bytearray()
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


class CountingReader:
    """A read-only stream that counts what passed through it (the size of a streamed upload), with an
    optional already-read prefix put back in front."""

    def __init__(self, stream, prefix: bytes = b"") -> None:
        self._s, self._prefix, self.n = stream, memoryview(prefix), 0

    def read(self, n: int = -1) -> bytes:
        if self._prefix.nbytes:
            take = self._prefix.nbytes if n is None or n < 0 else min(n, self._prefix.nbytes)
            data = bytes(self._prefix[:take])
            self._prefix = self._prefix[take:]
            if n is None or n < 0:
                data += self._s.read()
        else:
            data = self._s.read(n if n is not None else -1)
        self.n += len(data)
        return data

    def readable(self) -> bool:
        return True


def is_local_host(host: str) -> bool:
    """The reference's IsLocalEndpoint on a bare host (port already removed): loopback, private ranges
    by prefix, *.local and *.localhost. These get http:// in the URL `?endpoint=` form."""
    host = host.lower()
    return (host in ("localhost", "127.0.0.1") or host.startswith(("192.168.", "10.", "172.16.", "172.17.",
            "172.18.", "172.19.", "172.2", "172.30.", "172.31.")) or host.endswith((".local", ".localhost")))


def split_access_point_url(s: str) -> tuple[str, str, dict[str, str]]:
    """(bucket ARN, key prefix, query) of `s3://arn:...:accesspoint/<name>[/prefix][?query]`, split by
    hand as the reference does (the ARN's colons are no URL port). Raises ValueError."""
    rest = s[len("s3://"):]
    query: dict[str, str] = {}
    if "?" in rest:
        rest, raw = rest.split("?", 1)
        query = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    marker = ":accesspoint/"
    idx = rest.lower().find(marker)
    if idx < 0 or idx + len(marker) >= len(rest):
        raise ValueError(f"invalid s3 access point arn: {rest}")
    slash = rest.find("/", idx + len(marker))
    if slash < 0:
        return rest, "", query
    key = go_join("/", rest[slash + 1:]).removeprefix("/")
    return rest[:slash], "" if key == "." else key, query
