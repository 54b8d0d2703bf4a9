"""Alibaba Cloud OSS replica, through the official `oss2` SDK.

Config, layout and metadata are the reference's (`newOSSReplicaClientFromConfig`, oss/replica_client.go):
keys `<path>/<level %04x>/<file>`, metadata `x-oss-meta-litestream-timestamp` (RFC3339Nano), region
default cn-hangzhou, endpoint `https://oss-<region>.aliyuncs.com` unless one is given (https:// added
when it has no scheme), OSS V4 signatures (as the reference's SDK v2 uses), static keys or else
OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET (/ OSS_SESSION_TOKEN).

Why oss2 and not boto3 against OSS's S3-compatible API: oss2 speaks OSS's own protocol, as the
reference does, so metadata lands under the same `x-oss-meta-` name on real OSS and either tool reads
what the other wrote. One part of oss2 does not work against the only stand-in there is for tests
(`rclone serve s3`, an S3 server): its listing parser requires un-namespaced XML, which real OSS sends
and an S3 server does not. Listings therefore send oss2's own signed request (`Bucket._do`, the method
all of oss2's calls go through) and parse the XML here, tolerant of both; everything else is oss2's
public API. oss2 is imported only when a client is first used."""

from __future__ import annotations

import contextlib
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from litestream import logs
from litestream.backends import s3common as sc
from litestream.backends.base import (
    DEFAULT_TIMEOUT_S,
    AuthError,
    BackendError,
    Source,
    parse_url,
    reject_with_url,
    require_sdk,
)
from litestream.config import ConfigError, ReplicaConfig
from litestream.gofmt import parse_rfc3339_ns
from litestream.ltx import FileInfo

DEFAULT_REGION = "cn-hangzhou"
DEFAULT_CONCURRENCY = 3  # the reference's uploader default
MIN_PART_SIZE = 100 << 10  # OSS's smallest multipart part
META_HEADER = "x-oss-meta-" + sc.METADATA_KEY_TIMESTAMP
_AUTH_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "SecurityTokenExpired",
                         "InvalidSecurityToken", "AccessForbidden"})

log = logs.get_logger("oss")

_INTERNAL_RE = re.compile(r"^(?:([^.]+)\.)?oss-(.+?)-internal\.aliyuncs\.com$")
_HOST_RE = re.compile(r"^(?:([^.]+)\.)?oss-([^.]+)\.aliyuncs\.com$")


def parse_host(host: str) -> tuple[str, str]:
    """(bucket, region) of `bucket.oss-<region>[-internal].aliyuncs.com`; any other host is the bucket."""
    for rx in (_INTERNAL_RE, _HOST_RE):
        if m := rx.match(host):
            return m.group(1) or "", m.group(2) or ""
    return host, ""


@dataclass
class OSSSettings:
    bucket: str
    path: str = ""
    region: str = ""
    endpoint: str = ""
    access_key_id: str = ""
    access_key_secret: str = field(default="", repr=False)
    part_size: int = 0  # 0: s3common.DEFAULT_PART_SIZE
    concurrency: int = 0  # 0: DEFAULT_CONCURRENCY

    def endpoint_url(self) -> str:
        return sc.with_scheme(self.endpoint or f"oss-{self.region or DEFAULT_REGION}.aliyuncs.com")


def settings_from_config(rc: ReplicaConfig) -> OSSSettings:
    reject_with_url(rc, "oss", ("path", rc.path), ("bucket", rc.bucket))
    bucket, path, region = rc.bucket, rc.path, rc.region
    if rc.url:
        u = parse_url(rc.url)
        ubucket, uregion = parse_host(u.host)
        path = path or u.path
        bucket = bucket or ubucket
        region = region or uregion
    if not bucket:
        raise ConfigError("bucket required for oss replica")
    s = OSSSettings(bucket=bucket, path=path, region=region, endpoint=rc.endpoint, access_key_id=rc.access_key_id,
                    access_key_secret=rc.secret_access_key)
    sc.apply_upload_keys(s, rc)
    return s


def from_config(rc: ReplicaConfig) -> OSSReplicaClient:
    return OSSReplicaClient(settings_from_config(rc))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_list_v2(body: bytes) -> tuple[list[tuple[str, int, int]], list[str], bool, str]:
    """A ListObjectsV2 answer, namespaced (S3 servers) or not (OSS): ([(key, size, mtime ns)], common
    prefixes, truncated, next continuation token)."""
    root = ET.fromstring(body)
    objects: list[tuple[str, int, int]] = []
    prefixes: list[str] = []
    truncated, token = False, ""
    for el in root:
        tag = _local(el.tag)
        if tag == "Contents":
            f = {_local(c.tag): (c.text or "") for c in el}
            mtime = 0
            with contextlib.suppress(ValueError):
                mtime = parse_rfc3339_ns(f.get("LastModified", ""))[0]
            objects.append((f.get("Key", ""), int(f.get("Size") or 0), mtime))
        elif tag == "CommonPrefixes":
            prefixes += [c.text or "" for c in el if _local(c.tag) == "Prefix"]
        elif tag == "IsTruncated":
            truncated = (el.text or "").strip().lower() == "true"
        elif tag == "NextContinuationToken":
            token = el.text or ""
    return objects, prefixes, truncated, token


def _spaced(e: Exception) -> str:
    """An SDK read error's message on one line (empty if it has none, as before)."""
    return " ".join(str(e).split())


class OSSReplicaClient(sc.KeyStoreClient):
    type = "oss"
    _log = log

    def __init__(self, settings: OSSSettings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._bucket: Any = None

    def __repr__(self) -> str:
        s = self.settings
        return f"OSSReplicaClient(bucket={s.bucket!r}, path={s.path!r}, endpoint={s.endpoint!r})"

    def _where(self, key: str = "") -> str:
        return f"oss://{self.settings.bucket}/{key}"

    def init(self) -> None:
        self._b()

    def _b(self) -> Any:
        with self._lock:
            if self._bucket is None:
                self._bucket = self._make_bucket()
            return self._bucket

    def _make_bucket(self) -> Any:
        oss2 = require_sdk("oss2", "oss", "oss")
        s = self.settings
        if s.access_key_id and s.access_key_secret:
            auth = oss2.AuthV4(s.access_key_id, s.access_key_secret)
        else:
            from oss2.credentials import EnvironmentVariableCredentialsProvider

            auth = oss2.ProviderAuthV4(EnvironmentVariableCredentialsProvider())
        region = s.region or DEFAULT_REGION
        session = oss2.Session(pool_size=max(sc.METADATA_CONCURRENCY, self._concurrency() * 2))
        # connect_timeout is oss2's timeout for the connection and for each read.
        # enable_crc=False: oss2 checks each transfer with a CRC-64 computed in pure Python (256 MiB
        # uploaded at 24 MB/s here); every LTX file carries its own CRC-64, verified by the core on read.
        bucket = oss2.Bucket(auth, s.endpoint_url(), s.bucket, session=session, connect_timeout=self.timeout_s,
                             region=region, app_name="litestream", enable_crc=False)
        log.debug("oss client", bucket=s.bucket, endpoint=s.endpoint_url(), region=region)
        return bucket

    def _concurrency(self) -> int:
        return self.settings.concurrency if self.settings.concurrency > 0 else DEFAULT_CONCURRENCY

    @contextlib.contextmanager
    def _errors(self, op: str, key: str) -> Iterator[None]:
        from oss2 import exceptions as ox

        where = self._where(key)
        try:
            yield
        except ox.RequestError as e:  # network: connection refused, timeouts
            raise BackendError(f"oss: {op} {where}: {' '.join(str(e.exception).split())}") from None
        except ox.ClientError as e:  # raised before sending, e.g. no credentials in the environment
            text = " ".join(str(e.body).removeprefix("ClientError: ").split())
            if "access key" in text.lower():
                raise AuthError(f"oss: {op} {where}: {text}; set access-key-id and secret-access-key or "
                                f"OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET") from None
            raise BackendError(f"oss: {op} {where}: {text}") from None
        except ox.OssError as e:
            code, msg = str(e.code or ""), " ".join(str(e.message or "").split())
            raise sc.service_error("oss", op, where, code, msg, e.status,
                                   not_found=isinstance(e, ox.NotFound) or e.status == 404,
                                   denied=code in _AUTH_CODES or e.status in (401, 403)) from None

    # -- listing

    def _objects(self, prefix: str, start: str = "") -> Iterator[list[tuple[str, int, int]]]:
        """ListObjectsV2 pages of (key, size, mtime ns). See the module docstring for why the response is
        parsed here."""
        bucket = self._b()
        params = {"list-type": "2", "prefix": prefix, "max-keys": str(sc.MAX_KEYS)}
        if start:
            params["start-after"] = start
        while True:
            with self._errors("list", prefix):
                resp = bucket._do("GET", bucket.bucket_name, "", params=params)
                body = resp.read()
            try:
                objects, _, truncated, token = parse_list_v2(body)
            except ET.ParseError as e:
                raise BackendError(f"oss: list {self._where(prefix)}: bad listing: {e}") from None
            yield objects
            if not truncated or not token:
                return
            params["continuation-token"] = token
            params.pop("start-after", None)

    def _head_timestamp(self, key: str) -> int | None:
        from oss2.exceptions import OssError

        try:
            head = self._b().head_object(key)
        except OssError:
            return None  # as the reference: LastModified stands in
        return sc.parse_timestamp(head.headers.get(META_HEADER))

    # -- reads

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        key = sc.ltx_key(self.settings.path, level, min_txid, max_txid)
        rng: tuple[int, int | None] | None = None
        if size > 0:
            rng = (offset, offset + size - 1)
        elif offset > 0:
            rng = (offset, None)
        # "standard" range behaviour: a range past the end is an error, not the whole object.
        headers = {"x-oss-range-behavior": "standard"} if rng else None
        bucket = self._b()
        with self._errors("get", key):
            result = bucket.get_object(key, byte_range=rng, headers=headers)
        return sc.StreamBody(result, f"oss: read {self._where(key)}", _spaced)  # type: ignore[return-value]

    # -- writes

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        key = sc.ltx_key(self.settings.path, level, min_txid, max_txid)
        part = self.settings.part_size or sc.DEFAULT_PART_SIZE
        sc.check_part_size("oss", key, part, MIN_PART_SIZE)
        headers = {META_HEADER: sc.format_timestamp(timestamp_ms), "Content-Type": "application/octet-stream"}
        bucket = self._b()
        with src.reader() as f:
            head = sc.read_full(f, part)
            if len(head) < part:
                # One PutObject, atomic by itself.
                with self._errors("put", key):
                    bucket.put_object(key, head, headers=headers)
                n = len(head)
            else:
                n = self._multipart(bucket, key, head, f, part, headers)
        return FileInfo(level, min_txid, max_txid, n, timestamp_ms * 1_000_000)

    def _multipart(self, bucket, key: str, first: bytes, f, part: int, headers: dict[str, str]) -> int:
        """Parts read in order and sent `concurrency` at a time; the object appears only when the upload
        is completed, and any failure aborts it, so no reader ever sees part of a file."""
        from oss2.models import PartInfo

        with self._errors("upload to", key):
            upload_id = bucket.init_multipart_upload(key, headers=headers).upload_id
        total = 0
        try:
            futures: list[Future] = []
            with ThreadPoolExecutor(self._concurrency(), thread_name_prefix="ls-oss-part") as pool:
                data, num = first, 1
                while data:
                    while sum(not x.done() for x in futures) >= self._concurrency():
                        wait(futures, return_when=FIRST_COMPLETED)
                    futures.append(pool.submit(self._upload_part, bucket, key, upload_id, num, data))
                    total += len(data)
                    if len(data) < part:
                        break
                    data, num = sc.read_full(f, part), num + 1
                parts = [PartInfo(i + 1, fut.result()) for i, fut in enumerate(futures)]
            with self._errors("upload to", key):
                bucket.complete_multipart_upload(key, upload_id, parts)
        except BaseException:
            with contextlib.suppress(Exception):
                bucket.abort_multipart_upload(key, upload_id)
            raise
        return total

    def _upload_part(self, bucket, key: str, upload_id: str, num: int, data: bytes) -> str:
        with self._errors("upload to", key):
            return bucket.upload_part(key, upload_id, num, data).etag

    # -- deletes

    def _delete_keys(self, keys: list[str], op: str) -> None:
        bucket = self._b()
        for batch in sc.chunks(keys):
            with self._errors(op, batch[0]):
                out = bucket.batch_delete_objects(batch)
            # As the reference: every key asked for must come back as deleted (OSS lists missing ones too).
            missing = sorted(set(batch) - set(out.deleted_keys))
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise BackendError(f"oss: failed to delete files: {self._where(missing[0])}{more}")

    def close(self) -> None:
        with self._lock:
            bucket, self._bucket = self._bucket, None
        if bucket is not None:
            with contextlib.suppress(Exception):
                bucket.session.session.close()

