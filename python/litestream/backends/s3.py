"""S3 replica (and every S3-compatible store), through boto3.

Config is read as the reference's config/CLI builder reads it (`NewS3ReplicaClientFromConfig`): config
keys beat URL parts, the URL host may name a provider (§2.7 of the reference notes) and a provider's
endpoint brings its defaults (§2.8). Layout and metadata are the reference's (s3common), so either
tool restores what the other replicated.

boto3 is imported only when a client is first used (base.require_sdk), never by `litestream version`.
Where boto3 differs from the Go SDK the closest boto3 setting is used:
- sign-payload maps to botocore's `payload_signing_enabled`; over plain http botocore always signs.
- sign-accept-encoding needs nothing: botocore never signs Accept-Encoding (http.client adds it after
  signing), which is what the setting asks for; Google's endpoint needs the same and gets it.
- require-content-md5 adds Content-MD5 to DeleteObjects (botocore itself now sends only a CRC32).
- custom endpoints get request/response checksums "when required" (no aws-chunked trailers), as the
  reference does for them.
- retries: botocore's "standard" mode, 10 attempts; every call has connect and read timeouts.
- a GetBucketLocation answer of "EU" (old buckets) is taken as eu-west-1, which boto3 needs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from litestream import logs, v3
from litestream.backends import s3common as sc
from litestream.backends.base import (
    DEFAULT_TIMEOUT_S,
    AuthError,
    BackendError,
    Source,
    close_quietly,
    error_line,
    parse_url,
    reject_with_url,
    require_sdk,
)
from litestream.config import ConfigError, ReplicaConfig
from litestream.ltx import FileInfo

DEFAULT_REGION = "us-east-1"
DEFAULT_CONCURRENCY = 5
R2_CONCURRENCY = 2  # Cloudflare R2 limits concurrent multipart uploads
MAX_ATTEMPTS = 10

_AUTH_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem", "InvalidSecurity", "NotSignedUp",
    "InvalidClientTokenId", "UnrecognizedClientException", "Forbidden", "403"})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchBucket"})

log = logs.get_logger("s3")


# ------------------------------------------------------------------------------------------- settings

@dataclass
class S3Settings:
    """Everything a client needs, resolved from config and URL. Secrets are kept out of repr()."""

    bucket: str
    path: str = ""
    region: str = ""
    endpoint: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    force_path_style: bool = False
    skip_verify: bool = False
    sign_payload: bool = True
    sign_accept_encoding: bool = True
    require_content_md5: bool = True
    storage_class: str = ""
    part_size: int = 0  # 0: DEFAULT_PART_SIZE
    concurrency: int = 0  # 0: DEFAULT_CONCURRENCY
    sse_customer_algorithm: str = ""
    sse_customer_key: str = field(default="", repr=False)
    sse_customer_key_md5: str = ""
    sse_kms_key_id: str = ""


def _first_query(raw_url: str) -> dict[str, str]:
    """The URL's query as Go's url.Values.Get sees it: the first value of each key."""
    rest = raw_url.split("?", 1)
    if len(rest) < 2:
        return {}
    query = rest[1].split("#", 1)[0]
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def _bool_query(q: dict[str, str], *keys: str) -> bool | None:
    """BoolQueryValue: true|1|t|yes, false|0|f|no, anything else false (and still counted as set)."""
    for k in keys:
        raw = q.get(k, "")
        if raw:
            return raw.lower() in ("true", "1", "t", "yes")
    return None


def _int_query(q: dict[str, str], *keys: str) -> int | None:
    for k in keys:
        raw = q.get(k, "")
        if raw:
            try:
                n = int(raw, 10) if re.fullmatch(r"[+-]?\d+", raw) else 0
            except ValueError:
                n = 0
            if n <= 0 or n >= 1 << 63:
                raise ConfigError(f'invalid value for query parameter "{k}": "{raw}" (must be a positive integer)')
            return n
    return None


_AWS_RE = re.compile(r"^(.+)\.s3(?:\.([^.]+))?\.amazonaws\.com$")
_DO_RE = re.compile(r"^(?:(.+)\.)?([^.]+)\.digitaloceanspaces.com$")
_B2_RE = re.compile(r"^(?:(.+)\.)?s3.([^.]+)\.backblazeb2.com$")
_FILEBASE_RE = re.compile(r"^(?:(.+)\.)?s3.filebase.com$")
_SCW_RE = re.compile(r"^(?:(.+)\.)?s3.([^.]+)\.scw\.cloud$")


def parse_host(host: str) -> tuple[str, str, str, bool]:
    """(bucket, region, endpoint, force_path_style) of a URL host, as the reference's s3.ParseHost."""
    if ":" in host and ".com" not in host:
        # bucket.host:port (MinIO and the like): a plain-http endpoint, path style. Like the reference,
        # the first dot splits, so 127.0.0.1:9000 alone names bucket "127".
        bucket, sep, rest = host.partition(".")
        if sep:
            return bucket, DEFAULT_REGION, "http://" + rest, True
        return "", "", "http://" + host, True
    if m := _AWS_RE.match(host):
        return m.group(1), m.group(2) or "", "", False
    if m := _DO_RE.match(host):
        return m.group(1) or "", m.group(2), f"https://{m.group(2)}.digitaloceanspaces.com", False
    if m := _B2_RE.match(host):
        return m.group(1) or "", m.group(2), f"https://s3.{m.group(2)}.backblazeb2.com", True
    if m := _FILEBASE_RE.match(host):
        return m.group(1) or "", "", "s3.filebase.com", False
    if m := _SCW_RE.match(host):
        return m.group(1) or "", m.group(2), f"s3.{m.group(2)}.scw.cloud", False
    return host, "", "", False


def region_from_arn(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[3] if len(parts) >= 4 else ""


def endpoint_host(endpoint: str) -> str:
    """extractEndpointHost: host[:port] of an endpoint with or without scheme; "" if it has userinfo."""
    e = endpoint.strip().lower()
    if not e:
        return ""
    if e.startswith(("http://", "https://")):
        with contextlib.suppress(ValueError):
            u = urlsplit(e)
            if u.netloc:
                return "" if "@" in u.netloc else u.netloc
    with contextlib.suppress(ValueError):
        if "@" in urlsplit("//" + e).netloc:
            return ""
    return e


def is_local_endpoint(endpoint: str) -> bool:
    host = endpoint_host(endpoint)
    if not host:
        return False
    if ":" in host:
        host = host[:host.rindex(":")]
    return sc.is_local_host(host)


def ensure_endpoint_scheme(endpoint: str) -> str:
    """The URL `?endpoint=` form: http:// for local and private hosts, https:// otherwise."""
    if not endpoint or endpoint.startswith(("http://", "https://")):
        return endpoint
    return ("http://" if is_local_endpoint(endpoint) else "https://") + endpoint


def _host_suffix(endpoint: str, suffix: str) -> bool:
    host = endpoint_host(endpoint)
    return bool(host) and host.endswith(suffix)


def is_tigris(endpoint: str) -> bool:
    return endpoint_host(endpoint) in ("fly.storage.tigris.dev", "t3.storage.dev")


def is_gcs(endpoint: str) -> bool:
    """Google Cloud Storage's XML API (`storage.googleapis.com` and the like)."""
    host = endpoint_host(endpoint)
    with contextlib.suppress(ValueError):
        host = urlsplit("//" + host).hostname or host
    labels = host.rstrip(".").split(".")
    if len(labels) < 3 or labels[-2:] != ["googleapis", "com"] or "" in labels:
        return False
    if len(labels) > 3 and "storage" in labels[1].split("-"):
        return False
    return "storage" in labels[0].split("-")


_CLOUD_MARKERS = (".amazonaws.com", ".digitaloceanspaces.com", ".backblazeb2.com", ".filebase.com", ".scw.cloud",
                  ".r2.cloudflarestorage.com", "tigris.dev", "t3.storage.dev", ".supabase.co")


def is_minio_like(endpoint: str) -> bool:
    """A custom endpoint with a port that is none of the known providers."""
    host = endpoint_host(endpoint)
    return ":" in host and not any(m in host for m in _CLOUD_MARKERS)


def _provider_defaults(endpoint: str) -> tuple[bool, bool, bool]:
    """(Tigris: MD5 off, path style, R2: 2 parts at once) as the endpoint's provider calls for. Every
    provider of the table also needs signed payloads, which is the default anyway."""
    tigris = is_tigris(endpoint)
    path_style = (_host_suffix(endpoint, ".backblazeb2.com") or endpoint_host(endpoint) == "s3.filebase.com"
                  or _host_suffix(endpoint, ".supabase.co") or is_minio_like(endpoint))
    return tigris, path_style, _host_suffix(endpoint, ".r2.cloudflarestorage.com")


def settings_from_config(rc: ReplicaConfig) -> S3Settings:
    """The reference's NewS3ReplicaClientFromConfig, with its messages."""
    reject_with_url(rc, "s3", ("path", rc.path), ("bucket", rc.bucket))
    bucket, path, region, endpoint = rc.bucket, rc.path, rc.region, rc.endpoint
    skip_verify, storage_class = rc.skip_verify, rc.storage_class
    sign = rc.sign_payload
    require_md5 = rc.require_content_md5
    # An endpoint means a non-AWS store, and all of those but AWS use path style.
    force_path_style = endpoint != "" if rc.force_path_style is None else rc.force_path_style
    upart = uconc = None
    if rc.url:
        u = parse_url(rc.url)
        upath = u.path
        # An access point ARN (split by the URL parser) names the bucket and its region.
        is_arn = rc.url.lower().startswith("s3://arn:")
        q = dict(u.query) if is_arn else _first_query(rc.url)
        if u.host.startswith("arn:"):
            ubucket, uregion, uendpoint, ufps = u.host, region_from_arn(u.host), "", False
        else:
            ubucket, uregion, uendpoint, ufps = parse_host(u.host)
        if q.get("endpoint"):
            uendpoint = ensure_endpoint_scheme(q["endpoint"])
            if q.get("forcePathStyle") != "false":
                ufps = True
        if q.get("region"):
            uregion = q["region"]
        if q.get("forcePathStyle"):
            ufps = q["forcePathStyle"] == "true"
        if q.get("skipVerify"):  # camelCase only in this builder, compared with "true", as the reference
            skip_verify = q["skipVerify"] == "true"
        usign = _bool_query(q, "signPayload", "sign-payload")
        umd5 = _bool_query(q, "requireContentMD5", "require-content-md5")
        ustorage = q.get("storageClass") or q.get("storage-class") or ""
        upart = _int_query(q, "partSize", "part-size")
        uconc = _int_query(q, "concurrency")
        # URL parts fill only what the config left unset.
        path = path or upath
        bucket = bucket or ubucket
        region = region or uregion
        endpoint = endpoint or uendpoint
        storage_class = storage_class or ustorage
        force_path_style = force_path_style or ufps
        if sign is None:
            sign = usign
        if require_md5 is None:
            require_md5 = umd5
    if not bucket:
        raise ConfigError("bucket required for s3 replica")

    tigris, path_style, r2 = _provider_defaults(endpoint)
    if sign is None:
        sign = True
    if require_md5 is None:
        require_md5 = not tigris
    # Only the config key counts as "set" here: a URL's forcePathStyle=false does not stop it.
    if rc.force_path_style is None and path_style:
        force_path_style = True

    s = S3Settings(bucket=bucket, path=path, region=region, endpoint=endpoint, access_key_id=rc.access_key_id,
                   secret_access_key=rc.secret_access_key, force_path_style=force_path_style,
                   skip_verify=skip_verify, sign_payload=sign,
                   sign_accept_encoding=True if rc.sign_accept_encoding is None else rc.sign_accept_encoding,
                   require_content_md5=require_md5, storage_class=storage_class)
    if r2:
        s.concurrency = R2_CONCURRENCY
    if upart is not None:
        s.part_size = upart
    if uconc is not None:
        s.concurrency = uconc
    sc.apply_upload_keys(s, rc)
    if rc.sse_customer_key or rc.sse_customer_key_path:
        s.sse_customer_algorithm = rc.sse_customer_algorithm or "AES256"
        if rc.sse_customer_key_path:
            p = rc.sse_customer_key_path
            if p.startswith("~"):
                p = os.path.expanduser("~") + p[1:]
            try:
                with open(p, "rb") as f:
                    s.sse_customer_key = f.read().decode("utf-8", "replace").strip()
            except OSError as e:
                reason = (e.strerror or str(e)).lower()
                raise ConfigError(f'cannot read sse-customer-key-path "{rc.sse_customer_key_path}": '
                                  f"open {p}: {reason}") from None
        else:
            s.sse_customer_key = rc.sse_customer_key
    if rc.sse_kms_key_id:
        s.sse_kms_key_id = rc.sse_kms_key_id
    validate_sse(s)
    return s


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _go_b64decode(s: str) -> bytes:
    """base64.StdEncoding.DecodeString, with Go's error text (CR and LF are skipped, as Go does)."""
    for i, ch in enumerate(s):
        if ch not in _B64 and ch not in "=\r\n":
            raise ValueError(f"illegal base64 data at input byte {i}")
    try:
        return base64.b64decode(s.replace("\r", "").replace("\n", ""), validate=True)
    except ValueError:
        raise ValueError(f"illegal base64 data at input byte {len(s.rstrip('=')) // 4 * 4}") from None


def validate_sse(s: S3Settings) -> None:
    """The reference's validateSSEConfig (it runs at Init; here at config time, with its messages). Fills
    in the key's MD5."""
    if s.sse_customer_key and s.sse_kms_key_id:
        raise ConfigError("s3: cannot use both sse-customer-key and sse-kms-key-id; they are mutually exclusive")
    if not s.sse_customer_key:
        return
    if not s.sse_customer_algorithm:
        s.sse_customer_algorithm = "AES256"
    elif s.sse_customer_algorithm != "AES256":
        raise ConfigError(f's3: sse-customer-algorithm must be AES256, got "{s.sse_customer_algorithm}"')
    try:
        key = _go_b64decode(s.sse_customer_key)
    except ValueError as e:
        raise ConfigError(f"s3: sse-customer-key must be valid base64: {e}") from None
    if len(key) != 32:
        raise ConfigError(f"s3: sse-customer-key must be 256-bit (32 bytes) when decoded, got {len(key)} bytes")
    if not s.sse_customer_key_md5:
        s.sse_customer_key_md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
    if s.endpoint:
        ep = sc.with_scheme(s.endpoint)
        if ep.startswith("http://"):
            host = urlsplit(ep).hostname or ""
            ok = host == "localhost"
            with contextlib.suppress(ValueError):
                ip = ipaddress.ip_address(host)
                ok = ok or ip.is_loopback or ip.is_private
            if not ok:
                raise ConfigError("s3: sse-customer-key requires HTTPS endpoint (HTTP only allowed for "
                                  "localhost/private networks)")


def from_config(rc: ReplicaConfig) -> S3ReplicaClient:
    return S3ReplicaClient(settings_from_config(rc))


def _query_first(q: dict[str, str], *keys: str) -> str:
    return next((q[k] for k in keys if q.get(k)), "")


def settings_from_url(raw_url: str) -> S3Settings:
    """The reference's URL factory (`register` over the control socket): the URL alone, with the hyphen
    aliases and the SSE query keys the config builder does not read, credentials from AWS_* then
    LITESTREAM_* variables, and LITESTREAM_S3_ENDPOINT as the default endpoint."""
    u = parse_url(raw_url)
    is_arn = raw_url.lower().startswith("s3://arn:")
    q = dict(u.query) if is_arn else _first_query(raw_url)
    if u.host.startswith("arn:"):
        bucket, region, endpoint, fps = u.host, region_from_arn(u.host), "", False
    else:
        bucket, region, endpoint, fps = parse_host(u.host)
    fps_query = _bool_query(q, "forcePathStyle", "force-path-style")
    if q.get("endpoint"):
        endpoint = ensure_endpoint_scheme(q["endpoint"])
        if fps_query is None or fps_query:
            fps = True
    region = q.get("region") or region
    if fps_query is not None:
        fps = fps_query
    skip_verify = bool(_bool_query(q, "skipVerify", "skip-verify"))
    sign = _bool_query(q, "signPayload", "sign-payload")
    require_md5 = _bool_query(q, "requireContentMD5", "require-content-md5")
    concurrency = _int_query(q, "concurrency")
    part_size = _int_query(q, "partSize", "part-size")
    if not bucket:
        raise ConfigError("bucket required for s3 replica URL")
    fps_set = bool(q.get("forcePathStyle") or q.get("force-path-style"))
    if not endpoint and os.environ.get("LITESTREAM_S3_ENDPOINT"):
        endpoint = ensure_endpoint_scheme(os.environ["LITESTREAM_S3_ENDPOINT"])
        if not fps_set:
            fps = True
    tigris, path_style, r2 = _provider_defaults(endpoint)
    if require_md5 is None and tigris:
        require_md5 = False
    if path_style and not fps_set:
        fps = True
    s = S3Settings(bucket=bucket, path=u.path, region=region, endpoint=endpoint,
                   access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("LITESTREAM_ACCESS_KEY_ID", ""),
                   secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY")
                   or os.environ.get("LITESTREAM_SECRET_ACCESS_KEY", ""),
                   force_path_style=fps, skip_verify=skip_verify, sign_payload=True if sign is None else sign,
                   require_content_md5=True if require_md5 is None else require_md5,
                   storage_class=_query_first(q, "storageClass", "storage-class"))
    if r2:
        s.concurrency = R2_CONCURRENCY
    if concurrency is not None:
        s.concurrency = concurrency
    if part_size is not None:
        s.part_size = part_size
    s.sse_customer_algorithm = _query_first(q, "sseCustomerAlgorithm", "sse-customer-algorithm")
    s.sse_customer_key = _query_first(q, "sseCustomerKey", "sse-customer-key")
    s.sse_customer_key_md5 = _query_first(q, "sseCustomerKeyMD5", "sse-customer-key-md5")
    s.sse_kms_key_id = _query_first(q, "sseKmsKeyId", "sse-kms-key-id")
    validate_sse(s)
    return s


def from_url(raw_url: str) -> S3ReplicaClient:
    return S3ReplicaClient(settings_from_url(raw_url))


# ------------------------------------------------------------------------------------------- client

class S3ReplicaClient(sc.KeyStoreClient):
    type = "s3"
    _log = log

    def __init__(self, settings: S3Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: Any = None
        self._region = ""
        self._give_up = threading.Event()

    def __repr__(self) -> str:
        s = self.settings
        return f"S3ReplicaClient(bucket={s.bucket!r}, path={s.path!r}, endpoint={s.endpoint!r})"

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def path(self) -> str:
        return self.settings.path

    def _where(self, key: str = "") -> str:
        return f"s3://{self.settings.bucket}/{key}"

    # -- setup

    def init(self) -> None:
        self._s3()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _endpoint_url(self) -> str | None:
        ep = self.settings.endpoint
        return sc.with_scheme(ep) if ep else None

    def _session(self):
        boto3 = require_sdk("boto3", "s3", "s3")
        s = self.settings
        if os.environ.get("LITESTREAM_S3_DEBUG"):
            _enable_sdk_debug()
        if s.access_key_id and s.secret_access_key:
            return boto3.session.Session(aws_access_key_id=s.access_key_id,
                                         aws_secret_access_key=s.secret_access_key)
        # The default chain: environment, ~/.aws/credentials and config (profile), container and
        # instance metadata, web identity.
        if os.environ.get("AWS_PROFILE") == "":
            # An empty AWS_PROFILE (`AWS_PROFILE= litestream ...`, a blank line of an env file) is unset for
            # the Go SDK the reference uses; botocore would look for a profile named "".
            import botocore.session

            bs = botocore.session.Session(session_vars={"profile": (None, ["AWS_DEFAULT_PROFILE"], None, None)})
            return boto3.session.Session(botocore_session=bs)
        return boto3.session.Session()

    def _config(self, region: str, pool: int):
        from botocore.config import Config

        s = self.settings
        kw: dict[str, Any] = {}
        if s.endpoint:
            kw.update(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        return Config(region_name=region, signature_version="s3v4", connect_timeout=self.timeout_s,
                      read_timeout=self.timeout_s, retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
                      max_pool_connections=pool, user_agent_extra="litestream",
                      s3={"addressing_style": "path" if s.force_path_style else "auto",
                          "payload_signing_enabled": s.sign_payload, "use_arn_region": True}, **kw)

    def _make_client(self) -> Any:
        with self._errors("create client for", None):  # a missing profile, a bad config file: one line
            return self._build_client()

    def _build_client(self) -> Any:
        s = self.settings
        session = self._session()
        region = s.region
        if not region:
            region = DEFAULT_REGION if s.endpoint else self._find_region(session)
        self._region = region
        # HEADs of a listing page, the parts of an upload and a few callers at once, without urllib3
        # dropping (and warning about) pooled connections.
        pool = sc.METADATA_CONCURRENCY + 2 * self._concurrency() + 8
        client = session.client("s3", endpoint_url=self._endpoint_url(), config=self._config(region, pool),
                                verify=False if s.skip_verify else None)
        events = client.meta.events
        events.register_first("needs-retry.s3", self._no_retry_after_give_up)
        events.register_first("needs-retry.s3", _retry_too_many_requests)
        if s.require_content_md5:
            events.register("before-sign.s3.DeleteObjects", _add_content_md5)
        if is_tigris(s.endpoint):
            events.register("before-sign.s3", _tigris_consistent)
        if not s.sign_accept_encoding or is_gcs(s.endpoint):
            events.register("before-sign.s3", _drop_accept_encoding)
        if s.skip_verify:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        log.debug("s3 client", bucket=s.bucket, endpoint=s.endpoint, region=region,
                  path_style=s.force_path_style)
        return client

    def stop_retrying(self) -> None:
        """From now on every request is one attempt (the store is shutting down past its deadline)."""
        self._give_up.set()

    def _no_retry_after_give_up(self, response=None, caught_exception=None, operation=None, **_kw) -> None:
        """A needs-retry hook: after stop_retrying, what botocore would retry (a connection error, a 5xx or
        429) fails at once instead; returning None never stops a retry, so this raises."""
        if not self._give_up.is_set():
            return
        op = getattr(operation, "name", "request")
        if caught_exception is not None:
            raise BackendError(f"s3: {op} s3://{self.settings.bucket}/: {error_line(caught_exception)} "
                               f"(not retried: shutting down)")
        status = getattr(response[0], "status_code", 0) if response else 0
        if status >= 500 or status == 429:
            raise BackendError(f"s3: {op} s3://{self.settings.bucket}/: HTTP {status} (not retried: shutting down)")

    def _find_region(self, session) -> str:
        """GetBucketLocation from us-east-1 (empty answer: us-east-1), as the reference does when neither
        region nor endpoint is given."""
        client = session.client("s3", endpoint_url=self._endpoint_url(), config=self._config(DEFAULT_REGION, 4),
                                verify=False if self.settings.skip_verify else None)
        try:
            with self._errors("cannot lookup bucket region", ""):
                out = client.get_bucket_location(Bucket=self.settings.bucket)
        finally:
            client.close()
        loc = out.get("LocationConstraint") or DEFAULT_REGION
        return "eu-west-1" if loc == "EU" else loc

    def _concurrency(self) -> int:
        return self.settings.concurrency if self.settings.concurrency > 0 else DEFAULT_CONCURRENCY

    @contextlib.contextmanager
    def _errors(self, op: str, key: str | None) -> Iterator[None]:
        """SDK failures as one line naming the operation and object; never credentials."""
        from botocore import exceptions as bx

        where = self._where(key or "")
        try:
            yield
        except bx.ClientError as e:
            err = e.response.get("Error", {}) or {}
            code = str(err.get("Code", "") or "")
            status = int((e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 0) or 0)
            msg = " ".join(str(err.get("Message", "") or "").split())
            raise sc.service_error(
                "s3", op, where, code, msg, status,
                not_found=code in _NOT_FOUND_CODES or (status == 404 and code not in ("NoSuchUpload",)),
                denied=code in _AUTH_CODES or status in (401, 403)) from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as e:
            raise AuthError(f"s3: {op} {where}: {error_line(e)}; set access-key-id and secret-access-key, "
                            f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials") from None
        except bx.BotoCoreError as e:
            raise BackendError(f"s3: {op} {where}: {error_line(e)}") from None

    def _sse_c(self) -> dict[str, str]:
        s = self.settings
        if not s.sse_customer_key:
            return {}
        return {"SSECustomerAlgorithm": s.sse_customer_algorithm, "SSECustomerKey": s.sse_customer_key,
                "SSECustomerKeyMD5": s.sse_customer_key_md5}

    def _put_args(self, timestamp_ms: int) -> dict[str, Any]:
        s = self.settings
        args: dict[str, Any] = {"Metadata": {sc.METADATA_KEY_TIMESTAMP: sc.format_timestamp(timestamp_ms)}}
        if s.storage_class:
            args["StorageClass"] = s.storage_class
        args.update(self._sse_c())
        if s.sse_kms_key_id:
            args["ServerSideEncryption"] = "aws:kms"
            args["SSEKMSKeyId"] = s.sse_kms_key_id
        return args

    # -- listing

    def _list(self, prefix: str, start_after: str = "", delimiter: str = "") -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages (each a response dict), following continuation tokens."""
        client = self._s3()
        kw: dict[str, Any] = {"Bucket": self.settings.bucket, "Prefix": prefix, "MaxKeys": sc.MAX_KEYS}
        if start_after:
            kw["StartAfter"] = start_after
        if delimiter:
            kw["Delimiter"] = delimiter
        while True:
            with self._errors("list", prefix):
                page = client.list_objects_v2(**kw)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kw["ContinuationToken"] = token
            kw.pop("StartAfter", None)

    def _objects(self, prefix: str, start: str = "") -> Iterator[list[tuple[str, int, int]]]:
        """Listing pages as (key, size, LastModified ns), the form KeyStoreClient lists and deletes by."""
        for page in self._list(prefix, start):
            yield [(o["Key"], int(o.get("Size", 0)), _datetime_ns(o.get("LastModified")))
                   for o in page.get("Contents") or ()]

    def _head_timestamp(self, key: str) -> int | None:
        """The metadata timestamp of one object; None (LastModified is used) if it cannot be read, as the
        reference treats a failed HEAD."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._s3().head_object(Bucket=self.settings.bucket, Key=key, **self._sse_c())
        except (ClientError, BotoCoreError):
            return None
        return sc.parse_timestamp((head.get("Metadata") or {}).get(sc.METADATA_KEY_TIMESTAMP))

    # -- reads

    def _get(self, key: str, op: str, range_: str = "") -> sc.StreamBody:
        kw: dict[str, Any] = {"Bucket": self.settings.bucket, "Key": key, **self._sse_c()}
        if range_:
            kw["Range"] = range_
        client = self._s3()
        with self._errors(op, key):
            out = client.get_object(**kw)
        return sc.StreamBody(out["Body"], f"s3: read {self._where(key)}", error_line)

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        key = sc.ltx_key(self.settings.path, level, min_txid, max_txid)
        # No Range for a whole file: `bytes=0-` of an empty object is a 416 on S3.
        rng = f"bytes={offset}-{offset + size - 1}" if size > 0 else (f"bytes={offset}-" if offset else "")
        return self._get(key, "get", rng)  # type: ignore[return-value]

    # -- writes

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        key = sc.ltx_key(self.settings.path, level, min_txid, max_txid)
        part = self.settings.part_size or sc.DEFAULT_PART_SIZE
        sc.check_part_size("s3", key, part, sc.MIN_PART_SIZE)
        args = self._put_args(timestamp_ms)
        client = self._s3()
        with src.reader() as f:
            body: Any = None
            if src.size is not None and src.size < part:
                # One PutObject. A local file is sent as is (seekable: retries rewind it); a stream is read
                # first (less than one part) for the same reason.
                body = f if src.path is not None else sc.read_full(f, src.size)
            elif src.size is None:
                head = sc.read_full(f, part)
                body = head if len(head) < part else sc.CountingReader(f, head)
            if isinstance(body, bytes) or body is f:
                n = len(body) if isinstance(body, bytes) else int(src.size or 0)
                with self._errors("put", key):
                    client.put_object(Bucket=self.settings.bucket, Key=key, Body=body, ContentLength=n, **args)
            else:
                # A stream is counted on its way (its size may be unknown); a local file has its size.
                counter = body if body is not None else (None if src.path is not None else sc.CountingReader(f))
                self._upload_multipart(client, key, counter if counter is not None else f, part, args)
                n = counter.n if counter is not None else int(src.size or 0)
        return FileInfo(level, min_txid, max_txid, n, timestamp_ms * 1_000_000)

    def _upload_multipart(self, client, key: str, stream, part: int, args: dict[str, Any]) -> None:
        """A multipart upload (s3transfer): parts in parallel, completed (and so visible) only when every
        part is in; a failure aborts it and leaves nothing."""
        from boto3.s3.transfer import TransferConfig

        cfg = TransferConfig(multipart_threshold=part, multipart_chunksize=part,
                             max_concurrency=self._concurrency(), use_threads=True,
                             preferred_transfer_client="classic")
        with self._errors("upload to", key):
            client.upload_fileobj(stream, self.settings.bucket, key, ExtraArgs=args, Config=cfg)

    # -- deletes

    def _delete_keys(self, keys: list[str], op: str) -> None:
        client = self._s3()
        for batch in sc.chunks(keys):
            with self._errors(op, batch[0]):
                out = client.delete_objects(Bucket=self.settings.bucket,
                                            Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = [e for e in out.get("Errors") or () if e.get("Code") != "NoSuchKey"]
            if errors:
                first = errors[0]
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                detail = f"{first.get('Code', '')}: {' '.join(str(first.get('Message', '')).split())}"
                exc = AuthError if first.get("Code") in _AUTH_CODES else BackendError
                raise exc(f"s3: {op} {self._where(first.get('Key', ''))}: {detail}{more}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        close_quietly(client)

    # ------------------------------------------------------------------- v0.3.x backups (read-only)

    def v3_generations(self) -> list[str]:
        prefix = sc.v3_prefix(self.settings.path)
        out = set()
        for page in self._list(prefix, delimiter="/"):
            for cp in page.get("CommonPrefixes") or ():
                name = cp.get("Prefix", "")[len(prefix):].rstrip("/")
                if v3.is_generation(name):
                    out.add(name)
        return sorted(out)

    def _v3_objects(self, generation: str, sub: str) -> Iterator[tuple[str, int, int]]:
        for objects in self._objects(sc.v3_prefix(self.settings.path, generation, sub)):
            for key, size, mtime in objects:
                yield sc.basename(key), size, mtime

    def v3_snapshots(self, generation: str) -> list[v3.SnapshotV3]:
        out = []
        for name, size, mtime in self._v3_objects(generation, "snapshots"):
            idx = v3.parse_snapshot_name(name)
            if idx is not None:
                out.append(v3.SnapshotV3(generation, idx, size, mtime))
        return sorted(out, key=lambda s: s.index)

    def v3_wal_segments(self, generation: str) -> list[v3.SegmentV3]:
        out = []
        for name, size, mtime in self._v3_objects(generation, "wal"):
            parsed = v3.parse_segment_name(name)
            if parsed is not None:
                out.append(v3.SegmentV3(generation, parsed[0], parsed[1], size, mtime))
        return sorted(out, key=lambda s: (s.index, s.offset))

    def v3_open(self, relpath: str) -> BinaryIO:
        return self._get(sc.go_join(self.settings.path, relpath), "get")  # type: ignore[return-value]


def _datetime_ns(dt) -> int:
    """Unix nanoseconds of the SDK's aware datetime (LastModified), without float rounding."""
    if dt is None:
        return 0
    import calendar

    return calendar.timegm(dt.utctimetuple()) * 1_000_000_000 + dt.microsecond * 1000


def _retry_too_many_requests(response=None, attempts: int = 0, **_kw) -> float | None:
    """HTTP 429 (R2, B2 and other S3-compatibles throttle with it) retried like SlowDown: botocore's
    standard mode knows only AWS's throttling codes. Returns the delay, or None to let botocore decide."""
    if response is None or attempts >= MAX_ATTEMPTS:
        return None
    http = response[0]
    if getattr(http, "status_code", 0) != 429:
        return None
    import random

    return min(20.0, 0.5 * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)


def _add_content_md5(request, **_kw) -> None:
    """Content-MD5 on DeleteObjects (require-content-md5): S3 requires an integrity header there and some
    S3-compatible stores accept only this one."""
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, (bytes, bytearray)) and "Content-MD5" not in request.headers:
        request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


def _tigris_consistent(request, **_kw) -> None:
    request.headers["X-Tigris-Consistent"] = "true"


def _drop_accept_encoding(request, **_kw) -> None:
    if "Accept-Encoding" in request.headers:
        del request.headers["Accept-Encoding"]


_debug_on = False


def _enable_sdk_debug() -> None:
    """LITESTREAM_S3_DEBUG: botocore's own debug log on stderr (it logs signatures, never secret keys)."""
    global _debug_on
    if _debug_on:
        return
    _debug_on = True
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("botocore", "s3transfer"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)


__all__ = ["S3ReplicaClient", "S3Settings", "from_config", "parse_host", "settings_from_config"]
