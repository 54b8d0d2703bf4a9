"""Azure Blob Storage replica: blobs `<path>/ltx/<level>/<min>-<max>.ltx` in one container, CreatedAt in
the blob metadata `litestreamtimestamp` (Azure metadata names are C# identifiers: no hyphen), RFC 3339
with nanoseconds as the reference writes it. Listings carry the metadata, so CreatedAt is always exact,
as in the reference, whatever use_metadata says.

URLs, two forms:
- the reference's `abs://[account@]container[/path]`;
- the migration guide's `abs://<account>/<container>[/path]`, recognised when the `account-name` key
  equals the URL's host (and there is no user part): the host is then the account, the first path
  segment the container. The reference reads that URL as container `<account>`, path `<container>/...`,
  which is not what the guide means; a host that is not the configured account keeps its reading.

Credentials, first match wins (the reference's order): a SAS token (`sas-token`, else
$LITESTREAM_AZURE_SAS_TOKEN); a shared key (`account-key`, else $LITESTREAM_AZURE_ACCOUNT_KEY, with an
account name); DefaultAzureCredential (environment, managed identity, Azure CLI, ...). The endpoint
defaults to https://<account>.blob.core.windows.net. Keys and tokens never appear in a message or log.

azure-storage-blob (and azure-identity, for the last case only) are imported by init() only. The key layout,
listing, deleting and message helpers are the same as GCS's and come from objstore.py (no SDK either)."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from litestream.backends.base import (
    DEFAULT_TIMEOUT_S,
    AuthError,
    BackendError,
    NotFoundError,
    Source,
    close_quietly,
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
from litestream.backends.url import go_clean
from litestream.config import ConfigError, ReplicaConfig
from litestream.gofmt import format_rfc3339_nano, ms_to_ns
from litestream.ltx import FileInfo

METADATA_TIMESTAMP = "litestreamtimestamp"
# Blobs up to this size are one Put Blob; larger ones are staged blocks of BLOCK_SIZE made visible by
# one Put Block List, so a reader never sees a partial blob (uncommitted blocks are never listed).
SINGLE_PUT_SIZE = 8 << 20
BLOCK_SIZE = 8 << 20
# Downloads fetch this much per request: an open file holds at most one chunk in memory.
GET_CHUNK_SIZE = 8 << 20
_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
# Upload concurrency of one large blob (blocks staged in parallel).
UPLOAD_CONCURRENCY = 4


def from_config(rc: ReplicaConfig) -> ABSReplicaClient:
    reject_with_url(rc, "abs", ("path", rc.path), ("bucket", rc.bucket))
    account, container, path = rc.account_name, rc.bucket, rc.path
    if rc.url:
        user, host, upath = split_url(rc.url)
        segments = upath.strip("/").split("/", 1) if upath.strip("/") else []
        if user is None and account and host.lower() == account.lower() and segments:
            # The migration guide's form: abs://<account>/<container>[/path].
            container = segments[0]
            path = go_clean(segments[1]).lstrip("/") if len(segments) > 1 else ""
        else:
            if not account and user is not None:
                account = user
            container = container or host
            path = path or go_clean(upath).lstrip("/")
    if not container:
        raise ConfigError("bucket required for abs replica")
    return ABSReplicaClient(container, path, account_name=account, account_key=rc.account_key,
                            sas_token=rc.sas_token, endpoint=rc.endpoint)


def split_url(s: str) -> tuple[str | None, str, str]:
    """(user name or None, host as written, unescaped path) of a URL, as Go's url.Parse gives them:
    the host keeps its case and port."""
    try:
        u = urlsplit(s)
    except ValueError as e:
        raise ConfigError(f"parse {s!r}: {e}".replace("'", '"')) from None
    user, sep, host = u.netloc.rpartition("@")
    username = unquote(user.split(":", 1)[0]) if sep else None
    return username, host, unquote(u.path)


class _Redactor:
    """Removes the configured secrets (and any `sig=` of a SAS URL) from a message."""

    _SIG = re.compile(r"(?i)(\bsig=)[^&\s'\"]+")

    def __init__(self, *secrets: str) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, msg: str) -> str:
        for s in self._secrets:
            msg = msg.replace(s, "REDACTED")
        return self._SIG.sub(r"\1REDACTED", msg)


def _retry_policy(blob: Any, give_up: threading.Event) -> Any:
    """The SDK's exponential retry (5 retries from 1 s), which stops retrying once give_up is set."""

    class Retry(blob.ExponentialRetry):
        def increment(self, settings, request, response=None, error=None) -> bool:
            return not give_up.is_set() and super().increment(settings, request, response, error)

    return Retry(initial_backoff=1, increment_base=2, retry_total=5, random_jitter_range=1)


class _DownloadReader(io.RawIOBase):
    """A StorageStreamDownloader as a forward-only stream: the SDK fetches one chunk per request (the
    first one already in download_blob, so a missing blob fails at open) and pins the blob's ETag for
    the rest, so an overwrite meanwhile fails the read instead of mixing two files."""

    def __init__(self, downloader: Any, wrap: Any) -> None:
        super().__init__()
        self._d, self._wrap = downloader, wrap
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if not self._buf:
            if self._d is None:
                return 0
            try:
                data = self._d.read(max(len(b), GET_CHUNK_SIZE))
            except Exception as e:
                raise self._wrap(e) from None
            if not data:
                self._d = None
                return 0
            self._buf = memoryview(data)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._d, self._buf = None, memoryview(b"")
        super().close()


class ABSReplicaClient(BlobStoreClient):
    type = "abs"

    def __init__(self, container: str, path: str = "", *, account_name: str = "", account_key: str = "",
                 sas_token: str = "", endpoint: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not container:
            raise BackendError("bucket required for abs replica")
        self.container, self.path = container, path
        self.account_name, self.endpoint, self.timeout_s = account_name, endpoint, timeout_s
        self._account_key, self._sas_token = account_key, sas_token
        self._lock = threading.Lock()
        self._give_up = threading.Event()
        self._service: Any = None
        self._cc: Any = None
        self._closers: list[Any] = []  # the service client, and DefaultAzureCredential's own sessions
        self._redact = _Redactor(account_key, sas_token)

    def __repr__(self) -> str:  # no key, no token
        return f"ABSReplicaClient(container={self.container!r}, path={self.path!r})"

    # ------------------------------------------------------------------------------------ plumbing

    def _credential(self) -> tuple[Any, str]:
        """The credential to use and how it was chosen (for the debug log)."""
        from litestream.logs import Logger

        log = Logger()
        sas = self._sas_token or os.environ.get("LITESTREAM_AZURE_SAS_TOKEN", "")
        key = self._account_key or os.environ.get("LITESTREAM_AZURE_ACCOUNT_KEY", "")
        self._redact = _Redactor(self._account_key, self._sas_token, sas, key, sas.removeprefix("?"))
        if sas:
            if key:
                log.warn("both SAS token and account key configured, using SAS token")
            # A string credential is a SAS token to the SDK, which appends it to every request URL.
            return sas.removeprefix("?"), "SAS token"
        if key and self.account_name:
            try:
                base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                # The reference's wording; the position of the first bad character, never the key.
                bad = next((i for i, ch in enumerate(key) if ch not in _B64), None)
                at = f" at input byte {bad}" if bad is not None else ""
                raise BackendError(f"abs: cannot create shared key credential: decode account key: illegal "
                                   f"base64 data{at}") from None
            return {"account_name": self.account_name, "account_key": key}, "shared key"
        identity = require_sdk("azure.identity", "abs", "abs")
        try:
            return identity.DefaultAzureCredential(), "default credential chain"
        except Exception as e:
            raise AuthError(f"abs: cannot create default azure credential: {self._line(e)}") from None

    def init(self) -> None:
        with self._lock:
            if self._service is not None:
                return
            endpoint = self.endpoint
            if not endpoint:
                if not self.account_name:
                    raise BackendError("abs: account name is required when endpoint is not specified")
                endpoint = f"https://{self.account_name}.blob.core.windows.net"
            blob = require_sdk("azure.storage.blob", "abs", "abs")
            credential, how = self._credential()
            from litestream.logs import Logger

            Logger().debug(f"using {how} authentication", "container", self.container)
            try:
                import requests
                from azure.core.pipeline.transport import RequestsTransport

                session = requests.Session()
                mount_pool(session)
                # Bounded per request; the SDK retries connection errors, timeouts, 408, 429, 5xx.
                transport = RequestsTransport(session=session, session_owner=True,
                                              connection_timeout=self.timeout_s, read_timeout=self.timeout_s)
                service = blob.BlobServiceClient(
                    endpoint, credential=credential, transport=transport,
                    retry_policy=_retry_policy(blob, self._give_up),
                    max_single_put_size=SINGLE_PUT_SIZE, max_block_size=BLOCK_SIZE,
                    max_single_get_size=GET_CHUNK_SIZE, max_chunk_get_size=GET_CHUNK_SIZE,
                    user_agent="litestream")
            except Exception as e:
                raise BackendError(f"abs: cannot create azure blob client: {self._line(e)}") from None
            self._service, self._cc = service, service.get_container_client(self.container)
            self._closers = [service] + ([credential] if hasattr(credential, "close") else [])

    def stop_retrying(self) -> None:
        """From now on every request is one attempt (the store is shutting down past its deadline)."""
        self._give_up.set()

    def _line(self, e: Any, limit: int = 300) -> str:
        return one_line(self._redact(str(e)), limit)

    def _error(self, op: str, e: Exception, key: str | None = None) -> BackendError:
        """One line naming the container (and blob) and what failed. Built from the status and the
        service's error code, not from the SDK's message, which spans lines and may echo request URLs
        (a SAS token is in every one)."""
        from azure.core import exceptions as aexc

        what = f"abs: {op} {key!r} in container {self.container!r}" if key else \
            f"abs: {op} in container {self.container!r}"
        status = getattr(e, "status_code", None)
        code = getattr(e, "error_code", None)
        code = getattr(code, "value", code)  # a StorageErrorCode enum, or the service's string
        detail = f"HTTP {status}" + (f" {code}" if code else "") if status else ""
        if isinstance(e, aexc.ResourceNotFoundError) or status == 404:
            return NotFoundError(f"{what}: not found ({detail or 'missing'})")
        if isinstance(e, aexc.ClientAuthenticationError) or status in (401, 403):
            reason = detail or self._line(e, 200)
            return AuthError(f"{what}: access denied ({reason})")
        if isinstance(e, aexc.HttpResponseError) and status:
            first = self._line(str(e).splitlines()[0] if str(e) else "", 160)
            return BackendError(f"{what}: {detail}: {first}")
        return BackendError(f"{what}: {type(e).__name__}: {self._line(e)}")

    # ------------------------------------------------------------------------------------ listing

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        self.init()
        prefix = level_dir(self.path, level) + "/"
        # Blob Storage lists in name order and cannot start at a name, so seek filters (in level_files).
        return level_files(level, prefix, seek,
                           lambda: self._cc.list_blobs(name_starts_with=prefix, include=["metadata"]),
                           lambda e: self._error("list", e, prefix), created_at_ns)

    # ------------------------------------------------------------------------------------ reading

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        self.init()
        key = ltx_key(self.path, level, min_txid, max_txid)
        try:
            d = self._cc.download_blob(key, offset=offset if offset or size > 0 else None,
                                       length=size if size > 0 else None,
                                       max_concurrency=1)
        except Exception as e:
            if getattr(e, "status_code", None) == 416:  # at or past the end
                return io.BytesIO(b"")
            raise self._error("read", e, key) from None
        return _DownloadReader(d, lambda e: self._error("read", e, key))  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------ writing

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        blob = require_sdk("azure.storage.blob", "abs", "abs")
        self.init()
        key = ltx_key(self.path, level, min_txid, max_txid)
        options = dict(overwrite=True, metadata={METADATA_TIMESTAMP: format_rfc3339_nano(ms_to_ns(timestamp_ms))},
                       content_settings=blob.ContentSettings(content_type="application/octet-stream"),
                       standard_blob_tier=blob.StandardBlobTier.HOT)
        try:
            with src.reader() as f:
                if src.size is not None and src.size <= SINGLE_PUT_SIZE:
                    # Read here, completely: the SDK's single put takes one read() of the stream,
                    # which a raw stream may answer short.
                    data = read_exact(f, src.size)
                    self._cc.upload_blob(key, data, length=len(data), **options)
                    size = len(data)
                elif src.size is not None:
                    # Staged blocks, read by the SDK (in parallel from a file, which it can seek).
                    stream = f if seekable_at_start(f) else _Counting(f)
                    self._cc.upload_blob(key, stream, length=src.size, max_concurrency=UPLOAD_CONCURRENCY,
                                         **options)
                    size = src.size
                else:
                    counted = _Counting(f)
                    self._cc.upload_blob(key, counted, max_concurrency=1, **options)
                    size = counted.n
        except BackendError:
            raise
        except Exception as e:
            raise self._error("write", e, key) from None
        return FileInfo(level, min_txid, max_txid, size, timestamp_ms * 1_000_000)

    # ------------------------------------------------------------------------------------ deleting

    def _delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._cc.delete_blob(key)
        except ResourceNotFoundError:
            pass  # already gone
        except Exception as e:
            raise self._error("delete", e, key) from None

    def _names(self, prefix: str) -> list[str]:
        try:
            return [b.name for b in self._cc.list_blobs(name_starts_with=prefix)]
        except Exception as e:
            raise self._error("list", e, prefix) from None

    def close(self) -> None:
        with self._lock:
            closers, self._closers, self._service, self._cc = self._closers, [], None, None
        close_quietly(*closers)


def created_at_ns(props: Any) -> int:
    """The metadata timestamp when it parses, else the blob's creation time (the reference's fallback).
    Metadata names are case-insensitive in Azure, so the lookup is too."""
    meta = props.metadata or {}
    ts = meta.get(METADATA_TIMESTAMP)
    if ts is None:
        ts = next((v for k, v in meta.items() if k.lower() == METADATA_TIMESTAMP), None)
    return created_ns(ts, getattr(props, "creation_time", None))


class _Counting:
    """The bytes read from a stream (the stored size when the Source did not know it). It has no seek,
    so the SDK reads it in order, as a stream that is not a file must be."""

    def __init__(self, f: BinaryIO) -> None:
        self._f, self.n = f, 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.n += len(data)
        return data
