"""Google Cloud Storage replica (`gs://bucket[/path]`): objects `<path>/ltx/<level>/<min>-<max>.ltx`,
CreatedAt in the object metadata `litestream-timestamp` (RFC 3339 with nanoseconds, as the reference
writes it). Listings return the metadata at no extra cost, so CreatedAt is always exact, as in the
reference, whatever use_metadata says.

Credentials are Google's Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the
metadata server). STORAGE_EMULATOR_HOST points both tools at an emulator and turns authentication off;
the Go SDK takes `host:port` or a URL there, google-cloud-storage only a URL, so a bare host gets
http:// as the Go SDK gives it.

google-cloud-storage is imported by init() only (base.require_sdk): this module imports cheaply. The
layout, listing and deleting are the same as Azure's and come from objstore.py."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from litestream.backends.base import (
    DEFAULT_TIMEOUT_S,
    AuthError,
    BackendError,
    NotFoundError,
    Source,
    close_quietly,
    parse_url,
    reject_with_url,
    require_sdk,
)
from litestream.backends.objstore import (
    BlobStoreClient,
    created_ns,
    level_dir,
    level_files,
    ltx_key,
    mount_pool,
    one_line,
    read_exact,
    seekable_at_start,
)
from litestream.backends.objstore import replica_prefix as replica_prefix  # named here for callers of gcs
from litestream.config import ConfigError, ReplicaConfig
from litestream.gofmt import format_rfc3339_nano, ms_to_ns
from litestream.ltx import FileInfo

METADATA_TIMESTAMP = "litestream-timestamp"
# Objects up to this size go up in one request (google-cloud-storage's own multipart limit); larger ones
# as a resumable upload in chunks of this size (a multiple of 256 KiB, as the API requires), which GCS
# makes visible only once the last chunk is in: either way a reader never sees a partial object.
CHUNK_SIZE = 8 << 20
# Ranged reads fetch this much per request, so an open file holds at most one window in memory.
READ_WINDOW = 8 << 20


def from_config(rc: ReplicaConfig) -> GCSReplicaClient:
    reject_with_url(rc, "gs", ("path", rc.path), ("bucket", rc.bucket))
    bucket, path = rc.bucket, rc.path
    if rc.url:
        u = parse_url(rc.url)
        # URL parts fill only what the keys left empty (the reference's rule; with url, path and
        # bucket cannot be keys, so this is the URL's).
        path = path or u.path
        bucket = bucket or u.host
    if not bucket:
        raise ConfigError("bucket required for gs replica")
    return GCSReplicaClient(bucket, path)


def emulator_endpoint() -> str | None:
    host = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if not host:
        return None
    return host if "://" in host else f"http://{host}"


class ChunkedReader(io.RawIOBase):
    """A forward-only stream over ranged GETs of at most `window` bytes each. The first window is
    fetched at construction, so a missing object fails in open_ltx_file as the protocol asks; `fetch`
    returns fewer bytes than asked only at the object's end."""

    def __init__(self, fetch: Callable[[int, int], bytes], start: int, size: int, window: int,
                 wrap: Callable[[Exception], Exception]) -> None:
        super().__init__()
        self._fetch, self._wrap, self._window = fetch, wrap, window
        self._pos = start
        self._end = start + size if size > 0 else None
        self._buf = memoryview(b"")
        self._eof = False
        self._fill()

    def _fill(self) -> None:
        want = self._window if self._end is None else min(self._window, self._end - self._pos)
        if want <= 0:
            self._eof = True
            return
        data = self._fetch(self._pos, want)
        self._pos += len(data)
        if len(data) < want:
            self._eof = True
        self._buf = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if not self._buf:
            if self._eof:
                return 0
            try:
                self._fill()
            except BackendError:
                raise
            except Exception as e:
                raise self._wrap(e) from None
            if not self._buf:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._buf = memoryview(b"")
        self._eof = True
        super().close()


class GCSReplicaClient(BlobStoreClient):
    type = "gs"

    def __init__(self, bucket: str, path: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not bucket:
            raise BackendError("bucket required for gs replica")
        self.bucket_name, self.path, self.timeout_s = bucket, path, timeout_s
        self._lock = threading.Lock()
        self._client: Any = None
        self._bucket: Any = None
        self._retry: Any = None
        self._give_up = threading.Event()

    def __repr__(self) -> str:
        return f"GCSReplicaClient(bucket={self.bucket_name!r}, path={self.path!r})"

    # ------------------------------------------------------------------------------------ plumbing

    def init(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            storage = require_sdk("google.cloud.storage", "gs", "gcs")
            from google.cloud.storage.retry import DEFAULT_RETRY

            endpoint = emulator_endpoint()
            try:
                # project=None: nothing here needs a project, and ADC without one must not fail.
                client = storage.Client(project=None,
                                        client_options={"api_endpoint": endpoint} if endpoint else None)
            except Exception as e:
                # The reference's wording for this one (the classification stays ours).
                err = self._error("create client", e)
                raise type(err)(f"failed to create GCS client (bucket: {self.bucket_name}): "
                                f"{one_line(getattr(e, 'message', '') or e, 300)}") from None
            with contextlib.suppress(Exception):  # an SDK without the requests session keeps its pool
                mount_pool(client._http)
            self._client, self._bucket = client, client.bucket(self.bucket_name)
            # The SDK's policy (exponential back-off for 408/429/5xx and connection errors), also
            # for uploads: an LTX file's name fixes its content, so writing it again is harmless.
            # Shutdown past shutdown-sync-timeout stops it (stop_retrying): its deadline is two minutes.
            should_retry = DEFAULT_RETRY._predicate
            self._retry = DEFAULT_RETRY.with_predicate(lambda exc: not self._give_up.is_set() and should_retry(exc))

    def stop_retrying(self) -> None:
        """From now on every call is one attempt (the store is shutting down past its deadline)."""
        self._give_up.set()

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.timeout_s, self.timeout_s)  # (connect, each read)

    def _error(self, op: str, e: Exception, key: str | None = None) -> BackendError:
        """One line naming the bucket (and object) and what failed; never a credential (GCS tokens
        travel in headers, which no message here includes)."""
        what = f"gs: {op} {key!r} in bucket {self.bucket_name!r}" if key else \
            f"gs: {op} in bucket {self.bucket_name!r}"
        code = getattr(e, "code", None)
        try:
            from google.api_core import exceptions as gexc
            from google.auth import exceptions as gauth
        except ImportError:  # pragma: no cover - the SDK brings both
            return BackendError(f"{what}: {one_line(e)}")
        if isinstance(e, gexc.NotFound) or code == 404:
            return NotFoundError(f"{what}: not found")
        if isinstance(e, gexc.Unauthorized | gexc.Forbidden) or code in (401, 403):
            msg = getattr(e, "message", "") or str(e)
            return AuthError(f"{what}: permission denied (HTTP {code}): {one_line(msg, 200)}")
        if isinstance(e, gauth.GoogleAuthError):
            return AuthError(f"{what}: Google credentials unavailable or refused: {one_line(e, 200)}")
        if isinstance(e, gexc.GoogleAPICallError):
            return BackendError(f"{what}: HTTP {code}: {one_line(getattr(e, 'message', '') or e)}")
        return BackendError(f"{what}: {type(e).__name__}: {one_line(e)}")

    # ------------------------------------------------------------------------------------ listing

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        self.init()
        prefix = level_dir(self.path, level) + "/"
        # Names sort by MinTXID (fixed-width hex), so the server can start at seek.
        start = prefix + format(seek, "016x") if seek > 0 else None
        return level_files(level, prefix, seek, lambda: self._client.list_blobs(
            self._bucket, prefix=prefix, start_offset=start, timeout=self._timeout, retry=self._retry,
            fields="items(name,size,timeCreated,metadata),nextPageToken"),
            lambda e: self._error("list", e, prefix), created_at_ns)

    # ------------------------------------------------------------------------------------ reading

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        self.init()
        key = ltx_key(self.path, level, min_txid, max_txid)
        blob = self._bucket.blob(key)
        from google.api_core.exceptions import RequestRangeNotSatisfiable

        def fetch(pos: int, n: int) -> bytes:
            # The first response names the object's generation (blob.generation); later windows ask
            # for that generation, so an overwrite meanwhile fails the read instead of mixing files.
            try:
                return blob.download_as_bytes(start=pos, end=pos + n - 1, raw_download=True, checksum=None,
                                              timeout=self._timeout, retry=self._retry)
            except RequestRangeNotSatisfiable:
                return b""  # at or past the end: the file's length was a multiple of the window
            except Exception as e:
                raise self._error("read", e, key) from None

        return ChunkedReader(fetch, offset, size, READ_WINDOW,  # type: ignore[return-value]
                             lambda e: self._error("read", e, key))

    # ------------------------------------------------------------------------------------ writing

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        self.init()
        key = ltx_key(self.path, level, min_txid, max_txid)
        blob = self._bucket.blob(key, chunk_size=CHUNK_SIZE)
        blob.metadata = {METADATA_TIMESTAMP: format_rfc3339_nano(ms_to_ns(timestamp_ms))}
        try:
            with src.reader() as f, contextlib.ExitStack() as stack:
                stream, size = f, src.size
                if size is not None and size <= CHUNK_SIZE:
                    # One request, from memory, read here completely: the SDK takes a single read()
                    # of the stream, which a raw stream may answer short.
                    stream = io.BytesIO(read_exact(f, size))
                elif size is None or not seekable_at_start(f):
                    # A resumable upload re-reads a chunk after a failure (seek), and the size picks
                    # the kind of upload: a stream that cannot seek, or of unknown size, is staged.
                    stream = stack.enter_context(tempfile.TemporaryFile(prefix="litestream-gs-"))
                    size = _copy(f, stream)
                    stream.seek(0)
                blob.upload_from_file(stream, size=size, content_type="application/octet-stream",
                                      timeout=self._timeout, retry=self._retry)
        except BackendError:
            raise
        except Exception as e:
            raise self._error("write", e, key) from None
        return FileInfo(level, min_txid, max_txid, size, timestamp_ms * 1_000_000)

    # ------------------------------------------------------------------------------------ deleting

    def _delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._bucket.blob(key).delete(timeout=self._timeout, retry=self._retry)
        except NotFound:
            pass  # already gone
        except Exception as e:
            raise self._error("delete", e, key) from None

    def _names(self, prefix: str) -> list[str]:
        try:
            return [b.name for b in self._client.list_blobs(self._bucket, prefix=prefix, timeout=self._timeout,
                                                            retry=self._retry, fields="items(name),nextPageToken")]
        except Exception as e:
            raise self._error("list", e, prefix) from None

    def close(self) -> None:
        with self._lock:
            client, self._client, self._bucket = self._client, None, None
        close_quietly(client)


def created_at_ns(blob: Any) -> int:
    """CreatedAt of a listed object (objstore.created_ns): metadata, else its creation time."""
    return created_ns((blob.metadata or {}).get(METADATA_TIMESTAMP), blob.time_created)


def _copy(src: BinaryIO, dst: BinaryIO) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        dst.write(chunk)
        n += len(chunk)
    return n
