"""NATS replica: a JetStream object store (`nats://[user:pass@]host[:port]/<bucket>`), through nats-py.

Layout and metadata are the reference's, so either tool restores what the other replicated: objects
`ltx/<level>/<min16>-<max16>.ltx` in the bucket (no path prefix: the URL path is the whole bucket name),
CreatedAt in the object header `Litestream-Timestamp` (the LTX header time, UTC, Go's RFC3339Nano, e.g.
`2025-11-24T16:00:00.123Z`). The object-store wire format is the one nats.go writes: stream `OBJ_<bucket>`,
chunks on `$O.<bucket>.C.<nuid>`, the object's JSON info on `$O.<bucket>.M.<base64url(name)>` (rolled
up, so only the last info of a name is kept), a SHA-256 digest; a delete is an info with `deleted` set
and the chunks purged. Listings read every info of the bucket (as the reference does) and carry the
headers, so CreatedAt is always exact, whatever use_metadata says.

Config as the reference's builder (`newNATSReplicaClientFromConfig`): the URL's bucket beats the
`bucket` key; auth precedence jwt+seed > creds > nkey > username+password > token; `tls`, `root-cas`,
`client-cert` + `client-key` (both or neither); `max-reconnects` (-1 = unlimited), `reconnect-wait` (2s),
`timeout` (10s); server `nats://127.0.0.1:4222` when the URL has no host. Differences, all on the side
of working where the reference fails:
- a missing bucket is created (INFO `created NATS object store bucket`) on the first write; the
  reference refuses to start (`bucket must be created beforehand`). Listing or restoring from a missing
  bucket does not create it: it is empty, as a missing directory is for a file replica.
- the migration guide's setup step (`nats stream create my-app-bucket --subjects="my-app-bucket.>"`)
  makes a plain stream, not an object store: an object store `my-app-bucket` is the stream
  `OBJ_my-app-bucket` on subjects `$O.my-app-bucket.>`, which do not overlap the guide's. So with the
  guide's config the reference fails (`bucket "my-app-bucket" ... must be created beforehand`) while
  ours creates the object store beside the guide's stream and says so (the plain stream is unused and
  can be deleted). A stream named `OBJ_<bucket>` that is not an object store, or another stream whose
  subjects overlap, is a one-line error saying what to change (`nats object add <bucket>` makes the
  right thing by hand).
- URL userinfo (`nats://user:pass@host/bucket`) is used when the username/password keys are empty (the
  reference's config builder drops it; its URL-only factory uses it).
- `nkey` takes an nkey seed (`SU...`, or a file holding one), which can sign the server's nonce; the
  reference passes a public key without a signature handler, which cannot connect. jwt+seed, creds and
  nkeys need the `nkeys` package.
- `nats://host` (path ".") is taken as no bucket in the URL, so the `bucket` key applies; `path` is not
  used by NATS replicas (as in the reference) and a warning says so.

Concurrency: the engine's threads call the blocking methods; the client owns one asyncio loop thread
(started by init(), stopped by close()) and every step is a coroutine submitted to it and waited for
with the client's timeout. Nothing waits on a whole large object: reads and writes go chunk by chunk
(128 KiB, as nats.go), each chunk bounded by the timeout. Writes stream from the Source with up to
8 chunks unacknowledged; readers pull chunks through an ephemeral pull consumer with a small credit
(at most ~1.5 MiB buffered per open stream), so a 1 GiB snapshot never sits in memory. The object store
has no ranged get: a read at an offset first maps the object's chunks from a headers-only pass (the
`Nats-Msg-Size` of each chunk, ~100 bytes each, cached per object) and then starts at the chunk holding
the offset, so the parallel ranged reads of a large restore cost one pass, not one per range. A chunk
lost on a reconnect (a gap in the consumer sequence) restarts the consumer after the last chunk read.

nats-py is imported by init() only (base.require_sdk): this module imports cheaply."""

from __future__ import annotations

import asyncio
import base64
import bisect
import collections
import concurrent.futures
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import ssl
import threading
import time
from array import array
from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from litestream import logs
from litestream.backends import s3common as sc
from litestream.backends.base import AuthError, BackendError, NotFoundError, Source, require_sdk
from litestream.config import ConfigError, ReplicaConfig
from litestream.ltx import FileInfo, format_filename, parse_filename

DEFAULT_URL = "nats://127.0.0.1:4222"  # nats.DefaultURL
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RECONNECT_WAIT_S = 2.0
DEFAULT_MAX_RECONNECTS = -1  # unlimited
PING_INTERVAL_S = 120
MAX_PINGS_OUT = 2
RECONNECT_BUF_SIZE = 8 << 20
HEADER_TIMESTAMP = "Litestream-Timestamp"
CHUNK_SIZE = 128 * 1024  # nats.go's default object chunk
WRITE_WINDOW = 8  # chunks published and not yet acknowledged
READ_WINDOW = 8  # chunks requested ahead by an open stream (it starts at 1 and doubles)
MAP_WINDOW = 1024  # header-only chunk messages requested at once when mapping an object
LIST_WINDOW = 512  # object infos requested at once when listing
DELETE_BATCH = 32  # deletes run at once
MAP_CACHE = 32  # objects whose chunk map is kept
RESTARTS = 3  # consumer restarts per open stream (reconnects, lost chunks)
ZERO_TIME = "0001-01-01T00:00:00Z"  # what nats.go stores as an info's mtime (the real one is the message's)
VALID_BUCKET_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_ROLLUP = {"Nats-Rollup": "sub"}

log = logs.get_logger("nats")

T = TypeVar("T")


# ------------------------------------------------------------------------------------------- settings

@dataclass
class NATSSettings:
    """Everything a client needs, resolved from config and URL. Secrets are kept out of repr()."""

    bucket: str
    url: str = ""  # nats://host[:port], no userinfo; "" = DEFAULT_URL
    jwt: str = field(default="", repr=False)
    seed: str = field(default="", repr=False)
    creds: str = ""
    nkey: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    tls: bool = False
    root_cas: list[str] = field(default_factory=list)
    client_cert: str = ""
    client_key: str = ""
    max_reconnects: int = DEFAULT_MAX_RECONNECTS
    reconnect_wait_s: float = DEFAULT_RECONNECT_WAIT_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    ignored_path: str = ""

    @property
    def server(self) -> str:
        return self.url or DEFAULT_URL

    def auth_method(self) -> str:
        """Which credentials are used, by the reference's precedence."""
        if self.jwt and self.seed:
            return "jwt"
        if self.creds:
            return "creds"
        if self.nkey:
            return "nkey"
        if self.username and self.password:
            return "user"
        if self.token:
            return "token"
        return ""


def settings_from_config(rc: ReplicaConfig) -> NATSSettings:
    """The reference's newNATSReplicaClientFromConfig, with its messages."""
    url = bucket = ""
    username, password = rc.username, rc.password
    if rc.url:
        from litestream.backends.url import parse_replica_url

        try:
            u = parse_replica_url(rc.url)
        except ValueError as e:
            raise ConfigError(f"invalid NATS URL: {e}") from None
        if u.scheme != "nats":
            raise ConfigError(f"invalid scheme for NATS replica: {u.scheme}")
        # Go's u.Host: the URL's own host[:port] (brackets of an IPv6 address kept), without userinfo.
        hostport = urlsplit(rc.url).netloc.rpartition("@")[2]
        if hostport:
            url = f"nats://{hostport}"
        # "." is path.Clean("") (a URL without a path): no bucket there.
        bucket = "" if u.path == "." else u.path.strip("/")
        if not username and not password and u.username:
            username, password = u.username, u.password or ""
    bucket = bucket or rc.bucket
    if not bucket:
        raise ConfigError("bucket required for NATS replica")
    if not VALID_BUCKET_RE.match(bucket):
        raise ConfigError(f'invalid NATS bucket name "{bucket}": only letters, digits, "-" and "_" are allowed '
                          f"(the URL path is the whole bucket name; NATS replicas have no sub-path)")
    if bool(rc.client_cert) != bool(rc.client_key):
        raise ConfigError("client-cert and client-key must both be specified for mutual TLS authentication")
    s = NATSSettings(bucket=bucket, url=url, jwt=rc.jwt, seed=rc.seed, creds=rc.creds, nkey=rc.nkey,
                     username=username, password=password, token=rc.token, tls=bool(rc.tls),
                     root_cas=list(rc.root_cas or []), client_cert=rc.client_cert, client_key=rc.client_key,
                     ignored_path=rc.path)
    if rc.max_reconnects is not None:
        s.max_reconnects = rc.max_reconnects
    if rc.reconnect_wait is not None:
        if int(rc.reconnect_wait) < 0:
            raise ConfigError("reconnect-wait must not be negative for NATS replica")
        s.reconnect_wait_s = int(rc.reconnect_wait) / 1e9
    if rc.timeout is not None:
        if int(rc.timeout) <= 0:
            raise ConfigError("timeout must be positive for NATS replica")
        s.timeout_s = int(rc.timeout) / 1e9
    if s.auth_method() == "nkey" and not _is_seed(s.nkey) and not os.path.isfile(os.path.expanduser(s.nkey)):
        raise ConfigError("nkey must be an nkey seed (SU...) or a file holding one: a public key alone cannot "
                          "sign the server's challenge (nats: nkey defined without a signature handler)")
    return s


def _is_seed(s: str) -> bool:
    return s.strip().startswith("S") and len(s.strip()) >= 50


def from_config(rc: ReplicaConfig) -> NATSReplicaClient:
    return NATSReplicaClient(settings_from_config(rc))


# ------------------------------------------------------------------------------------------- helpers

def ltx_name(level: int, min_txid: int, max_txid: int) -> str:
    return f"ltx/{level}/{format_filename(min_txid, max_txid)}"


def encode_name(name: str) -> str:
    """An object name as its meta subject token: base64url with padding, as nats.go encodes it."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def digest_value(sha: bytes) -> str:
    return "SHA-256=" + base64.urlsafe_b64encode(sha).decode()


def decode_digest(value: str) -> bytes | None:
    """The SHA-256 of an info's digest (`SHA-256=<base64url>`; nats.go splits at the first "=")."""
    parts = (value or "").split("=", 1)
    if len(parts) != 2:
        return None
    try:
        return base64.urlsafe_b64decode(parts[1])
    except ValueError:
        return None


def header_value(headers: Any, key: str) -> str | None:
    """The first value of a header in an info's JSON (nats.go writes lists; tolerate a bare string)."""
    if not isinstance(headers, dict):
        return None
    for k, v in headers.items():
        if k.lower() == key.lower():
            if isinstance(v, list):
                return str(v[0]) if v else None
            return str(v)
    return None


@dataclass(frozen=True)
class AckMeta:
    """What a JetStream message's reply subject says about it."""

    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int


def parse_ack(reply: str) -> AckMeta | None:
    """`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>` (v1, 9 tokens) or
    `$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>[.<rand>]`."""
    t = reply.split(".")
    if len(t) < 9 or t[0] != "$JS" or t[1] != "ACK":
        return None
    base = 4 if len(t) == 9 else 6
    try:
        return AckMeta(int(t[base + 1]), int(t[base + 2]), int(t[base + 3]), int(t[base + 4]))
    except (ValueError, IndexError):
        return None


def _one_line(e: BaseException | str) -> str:
    text = e if isinstance(e, str) else (str(e) or type(e).__name__)
    return " ".join(text.split())[:300]


class _ApiError(Exception):
    """A JetStream API error answer."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.err_code, self.description = code, err_code, description


class _ConsumerLost(Exception):
    """The consumer of an open stream is gone or skipped a message: restart it after the last one read."""


# JetStream API error codes used here.
ERR_STREAM_NOT_FOUND = 10059
ERR_NO_MESSAGE = 10037
ERR_CONSUMER_NOT_FOUND = 10014
ERR_STREAM_NAME_IN_USE = 10058
ERR_SUBJECTS_OVERLAP = 10065
ERR_JS_NOT_ENABLED = (10039, 10076)


# ------------------------------------------------------------------------------------------- loop

class _Loop:
    """One asyncio loop on its own thread; the engine's threads submit coroutines and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="litestream-nats", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(self.loop)
                for t in pending:
                    t.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)


async def _guarded(coro: Coroutine[Any, Any, T]) -> tuple[bool, Any]:
    """A coroutine's result or exception as a value: a call that timed out and was given up on must not
    leave a task whose exception nobody retrieves (asyncio would print it)."""
    try:
        return True, await coro
    except asyncio.CancelledError:
        raise
    except BaseException as e:  # handed to the waiting thread, which raises it
        return False, e


# ------------------------------------------------------------------------------------------- client

class NATSReplicaClient:
    type = "nats"

    def __init__(self, settings: NATSSettings) -> None:
        self.settings = settings
        self.timeout_s = settings.timeout_s
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._nc: Any = None
        self._bucket_ok = False
        self._bucket_lock: asyncio.Lock | None = None
        self._maps: collections.OrderedDict[str, tuple[array, array]] = collections.OrderedDict()
        self._map_tasks: dict[str, asyncio.Future] = {}
        self._perm_error: tuple[float, str] | None = None
        self._warned_path = False

    def __repr__(self) -> str:
        s = self.settings
        return f"NATSReplicaClient(server={s.server!r}, bucket={s.bucket!r})"

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def stream(self) -> str:
        return f"OBJ_{self.settings.bucket}"

    def _where(self, name: str = "") -> str:
        return f"{self.settings.server}/{self.settings.bucket}" + (f" object {name}" if name else "")

    # -- calls into the loop

    def _call(self, coro: Coroutine[Any, Any, T], what: str, steps: int = 1) -> T:
        """Run a coroutine on the loop and wait for it: each of its network steps is bounded by the
        timeout, and so is the whole (steps of them, plus a margin)."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise BackendError(f"nats: {what} {self._where()}: client is closed")
        fut = loop.submit(_guarded(coro))
        limit = self.timeout_s * steps + 2.0
        try:
            ok, value = fut.result(limit)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise BackendError(f"nats: {what} {self._where()}: timed out after {limit:g}s") from None
        if not ok:
            raise value
        return value

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start a coroutine without waiting for it (cleanup that must not hold a caller up)."""
        loop = self._loop
        if loop is None or not loop.loop.is_running():
            coro.close()
            return
        try:
            loop.submit(coro)
        except RuntimeError:
            coro.close()

    def _error(self, op: str, e: BaseException, name: str = "") -> BackendError:
        """An SDK or API failure as one line naming the operation, server, bucket and object; never a
        credential (nats-py's messages hold none, and the server URL carries no userinfo here)."""
        import nats.errors as ne

        where = self._where(name)
        if isinstance(e, BackendError):
            return e
        if isinstance(e, ne.AuthorizationError) or "authorization violation" in str(e).lower():
            return AuthError(f"nats: {op} {where}: authorization violation; check the replica's credentials "
                             f"({self._auth_hint()})")
        if isinstance(e, ne.InvalidUserCredentialsError):
            return AuthError(f"nats: {op} {where}: invalid user credentials ({self._auth_hint()})")
        if isinstance(e, _ApiError):
            if e.err_code in ERR_JS_NOT_ENABLED:
                return BackendError(f"nats: {op} {where}: JetStream is not enabled ({e.description}); start "
                                    f"nats-server with -js or enable JetStream for the account")
            if e.err_code in (ERR_STREAM_NOT_FOUND, ERR_NO_MESSAGE):
                what = "bucket" if e.err_code == ERR_STREAM_NOT_FOUND else "object"
                return NotFoundError(f"nats: {op} {where}: {what} not found ({e.description})")
            if e.code in (401, 403):
                return AuthError(f"nats: {op} {where}: permission denied ({e.description})")
            return BackendError(f"nats: {op} {where}: {e.description} (err_code {e.err_code})")
        if isinstance(e, ne.NoRespondersError):
            return BackendError(f"nats: {op} {where}: no responders: JetStream is not enabled on the server "
                                f"(start nats-server with -js) or the bucket's stream is gone")
        if isinstance(e, (asyncio.TimeoutError, ne.TimeoutError)):
            perm = self._perm_error
            if perm is not None and time.monotonic() - perm[0] < 2 * self.timeout_s + 5:
                return AuthError(f"nats: {op} {where}: permission denied ({perm[1]})")
            return BackendError(f"nats: {op} {where}: timed out after {self.timeout_s:g}s")
        if isinstance(e, ConnectionRefusedError):
            return BackendError(f"nats: {op} {where}: connection refused")
        if isinstance(e, ssl.SSLError):
            return BackendError(f"nats: {op} {where}: TLS: {_one_line(e)}")
        return BackendError(f"nats: {op} {where}: {_one_line(e)}")

    def _auth_hint(self) -> str:
        m = self.settings.auth_method()
        return {"jwt": "jwt/seed", "creds": "creds file", "nkey": "nkey seed", "user": "username/password",
                "token": "token", "": "none were given"}[m]

    # -- setup

    def init(self) -> None:
        with self._lock:
            if self._loop is not None and self._nc is not None and not self._nc.is_closed:
                return
            nats = require_sdk("nats", "nats", "nats")
            if self.settings.auth_method() in ("jwt", "creds", "nkey"):
                try:
                    import nkeys  # noqa: F401 - nats-py signs the server's nonce with it
                except ImportError:
                    raise ConfigError("NATS jwt/creds/nkey authentication needs the nkeys package, which is not "
                                      "installed: pip install nkeys") from None
            if self.settings.ignored_path and not self._warned_path:
                self._warned_path = True
                log.warn("path is not used by NATS replicas: objects are ltx/<level>/... in the bucket",
                         bucket=self.settings.bucket, path=self.settings.ignored_path)
            if self._loop is None:
                self._loop = _Loop()
            tls = self._tls_context()
            self._nc = self._call(self._connect(nats, tls), "connect", steps=2)
        self._call(self._ensure_bucket(create=False), "open bucket", steps=3)

    def _tls_context(self) -> ssl.SSLContext | None:
        """nats.Secure / RootCAs / ClientCert: any of them means TLS (RootCAs replace the system roots)."""
        s = self.settings
        if not (s.tls or s.root_cas or s.client_cert):
            return None
        ctx = ssl.create_default_context()
        if s.root_cas:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
            for ca in s.root_cas:
                try:
                    ctx.load_verify_locations(cafile=os.path.expanduser(ca))
                except (OSError, ssl.SSLError) as e:
                    raise BackendError(f"nats: error loading root CA file {ca}: {_one_line(e)}") from None
        if s.client_cert:
            try:
                ctx.load_cert_chain(os.path.expanduser(s.client_cert), os.path.expanduser(s.client_key))
            except (OSError, ssl.SSLError) as e:
                raise BackendError(f"nats: error loading client certificate {s.client_cert}: "
                                   f"{_one_line(e)}") from None
        return ctx

    async def _connect(self, nats: Any, tls: ssl.SSLContext | None) -> Any:
        s = self.settings
        errors: list[BaseException] = []

        async def error_cb(e: Exception) -> None:
            errors.append(e)
            text = str(e)
            if "permissions violation" in text.lower():
                self._perm_error = (time.monotonic(), _one_line(text))
            if self._nc is not None:
                log.debug("nats error", bucket=s.bucket, error=_one_line(e))

        async def disconnected_cb() -> None:
            if self._nc is not None and not self._nc.is_closed:
                log.warn("nats disconnected", server=s.server)

        async def reconnected_cb() -> None:
            log.info("nats reconnected", server=s.server)

        opts: dict[str, Any] = dict(
            servers=[s.server], name="litestream", error_cb=error_cb, disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb, connect_timeout=s.timeout_s, ping_interval=PING_INTERVAL_S,
            max_outstanding_pings=MAX_PINGS_OUT, pending_size=RECONNECT_BUF_SIZE,
            # The first connect fails fast (a refused port is not retried 60 times, a refused login not
            # at all), as nats.Connect does; reconnecting is switched on once connected.
            allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.05)
        if tls is not None:
            opts["tls"] = tls
        method = s.auth_method()
        if method == "jwt":
            import nkeys

            jwt, seed = s.jwt.strip(), s.seed.strip()
            opts["user_jwt_cb"] = lambda: bytearray(jwt.encode())

            def sign(nonce: str) -> bytes:
                kp = nkeys.from_seed(bytearray(seed.encode()))
                try:
                    return base64.b64encode(kp.sign(nonce.encode()))
                finally:
                    kp.wipe()

            opts["signature_cb"] = sign
        elif method == "creds":
            opts["user_credentials"] = os.path.expanduser(s.creds)
        elif method == "nkey":
            if _is_seed(s.nkey):
                opts["nkeys_seed_str"] = s.nkey.strip()
            else:
                opts["nkeys_seed"] = os.path.expanduser(s.nkey)
        elif method == "user":
            opts["user"], opts["password"] = s.username, s.password
        elif method == "token":
            opts["token"] = s.token
        nc = nats.NATS()
        try:
            await asyncio.wait_for(nc.connect(**opts), s.timeout_s * 2)
        except BaseException as e:
            # After a failed handshake nats-py's close() can wait on a dead transport: do not wait long.
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(nc.close(), 0.5)
            cause: BaseException = e
            if type(e).__name__ == "NoServersError" and errors:
                cause = errors[-1]  # the last attempt's own error, not "no servers available"
            if isinstance(cause, asyncio.CancelledError):
                raise
            raise self._error("connect to", cause) from None
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = s.max_reconnects
        nc.options["reconnect_time_wait"] = s.reconnect_wait_s
        log.debug("nats connected", server=s.server, bucket=s.bucket, auth=method or "none")
        return nc

    async def _api(self, subject: str, payload: dict[str, Any] | None = None, timeout: float | None = None
                   ) -> dict[str, Any]:
        """One JetStream API request; an error answer raises _ApiError."""
        data = json.dumps(payload).encode() if payload is not None else b""
        resp = await self._nc.request(f"$JS.API.{subject}", data, timeout=timeout or self.timeout_s)
        return _js_answer(resp.data, f"nats: {subject}: bad JetStream answer")

    async def _ensure_bucket(self, create: bool) -> bool:
        """Whether the bucket's stream exists (creating it when asked); checks it is an object store."""
        if self._bucket_ok:
            return True
        if self._bucket_lock is None:
            self._bucket_lock = asyncio.Lock()
        async with self._bucket_lock:
            if self._bucket_ok:
                return True
            b = self.settings.bucket
            try:
                info = await self._api(f"STREAM.INFO.{self.stream}")
            except _ApiError as e:
                if e.err_code != ERR_STREAM_NOT_FOUND:
                    raise self._error("open bucket", e) from None
                info = None
            except Exception as e:
                raise self._error("open bucket", e) from None
            if info is None:
                if not create:
                    return False
                info = await self._create_bucket()
            cfg = info.get("config") or {}
            subjects = set(cfg.get("subjects") or ())
            want = {f"$O.{b}.C.>", f"$O.{b}.M.>"}
            if not want <= subjects:
                raise BackendError(f'nats: open bucket {self._where()}: stream "{self.stream}" exists but is not an '
                                   f"object store (subjects {sorted(subjects)}); delete it or use another bucket name")
            if not cfg.get("allow_rollup_hdrs"):
                raise BackendError(f'nats: open bucket {self._where()}: stream "{self.stream}" does not allow '
                                   f"rollups, which an object store needs; recreate it with `nats object add {b}`")
            self._bucket_ok = True
            return True

    async def _create_bucket(self) -> dict[str, Any]:
        b = self.settings.bucket
        cfg = {"name": self.stream, "subjects": [f"$O.{b}.C.>", f"$O.{b}.M.>"], "retention": "limits",
               "max_bytes": -1, "storage": "file", "num_replicas": 1, "discard": "new",
               "allow_rollup_hdrs": True, "allow_direct": True}
        try:
            info = await self._api(f"STREAM.CREATE.{self.stream}", cfg)
        except _ApiError as e:
            if e.err_code == ERR_STREAM_NAME_IN_USE:  # created by someone else meanwhile
                return await self._api(f"STREAM.INFO.{self.stream}")
            if e.err_code == ERR_SUBJECTS_OVERLAP:
                raise BackendError(f'nats: create bucket {self._where()}: the object store\'s subjects "$O.{b}.>" '
                                   f"overlap another stream's ({e.description}); change that stream's subjects or "
                                   f"create the bucket with `nats object add {b}`") from None
            raise BackendError(f"nats: create bucket {self._where()}: {e.description} (err_code {e.err_code}); "
                               f"create it with `nats object add {b}`") from None
        except Exception as e:
            err = self._error("create bucket", e)
            raise type(err)(f"{err}; create it with `nats object add {b}`") from None
        note = ""
        with contextlib.suppress(Exception):
            # The migration guide's `nats stream create <bucket>` makes a plain stream of that name:
            # say that it is not what litestream uses, or its owner keeps looking for the files there.
            await self._api(f"STREAM.INFO.{b}")
            note = (f'stream "{b}" is a plain JetStream stream, not an object store; litestream does not use it '
                    f'(the object store is stream "{self.stream}")')
        if note:
            log.info("created NATS object store bucket", bucket=b, stream=self.stream, server=self.settings.server,
                     note=note)
        else:
            log.info("created NATS object store bucket", bucket=b, stream=self.stream, server=self.settings.server)
        return info

    def _ready(self) -> None:
        if self._loop is None or self._nc is None or self._nc.is_closed:
            self.init()

    # -- object infos

    async def _get_info(self, name: str, show_deleted: bool = False) -> dict[str, Any] | None:
        """An object's info (None: no such object, or deleted unless asked for)."""
        subj = f"$O.{self.settings.bucket}.M.{encode_name(name)}"
        try:
            out = await self._api(f"STREAM.MSG.GET.{self.stream}", {"last_by_subj": subj})
        except _ApiError as e:
            if e.err_code == ERR_NO_MESSAGE:
                return None
            if e.err_code == ERR_STREAM_NOT_FOUND:
                self._bucket_ok = False
                return None
            raise
        try:
            info = json.loads(base64.b64decode((out.get("message") or {}).get("data") or ""))
        except ValueError:
            raise BackendError(f"nats: get {self._where(name)}: bad object info") from None
        if not isinstance(info, dict) or (info.get("deleted") and not show_deleted):
            return None
        return info

    async def _publish_info(self, info: dict[str, Any]) -> None:
        subj = f"$O.{self.settings.bucket}.M.{encode_name(info['name'])}"
        ack = await self._nc.request(subj, json.dumps(info, separators=(",", ":")).encode(),
                                     timeout=self.timeout_s, headers=_ROLLUP)
        _check_pub_ack(ack)

    async def _purge(self, subject: str) -> None:
        await self._api(f"STREAM.PURGE.{self.stream}", {"filter": subject})

    # -- listing

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        self._ready()
        prefix = f"ltx/{level}/"
        rows = []
        for info, ts_ns in self._list_infos():
            name = str(info.get("name", ""))
            if not name.startswith(prefix):
                continue
            txids = parse_filename(name[len(prefix):])
            if txids is None or txids[0] < seek:
                continue
            created = sc.parse_timestamp(header_value(info.get("headers"), HEADER_TIMESTAMP))
            rows.append(FileInfo(level, txids[0], txids[1], int(info.get("size") or 0),
                                 created if created is not None else ts_ns))
        rows.sort(key=lambda i: (i.min_txid, i.max_txid))
        return iter(rows)

    def _list_infos(self) -> list[tuple[dict[str, Any], int]]:
        """Every live object's info with its message time, read with one consumer, a page per call."""
        for attempt in range(RESTARTS):
            lister = _Pull(self, f"$O.{self.settings.bucket}.M.>", {"deliver_policy": "last_per_subject"},
                           window=LIST_WINDOW, first=LIST_WINDOW)
            out: list[tuple[dict[str, Any], int]] = []
            try:
                if not self._call(self._open_pull(lister), "list", steps=3):
                    return []
                while True:
                    page = self._call(lister.take(LIST_WINDOW), "list", steps=3)
                    if page is None:
                        return out
                    for data, meta in page:
                        try:
                            info = json.loads(data)
                        except ValueError:
                            continue  # nats.go skips an info it cannot read
                        if isinstance(info, dict) and not info.get("deleted"):
                            out.append((info, meta.timestamp_ns))
            except _ConsumerLost:
                if attempt == RESTARTS - 1:
                    raise BackendError(f"nats: list {self._where()}: listing interrupted {RESTARTS} times") from None
            finally:
                self._spawn(lister.close())
        return []

    async def _open_pull(self, pull: _Pull) -> bool:
        """Open a consumer on the bucket; False when the bucket does not exist."""
        if not await self._ensure_bucket(create=False):
            return False
        try:
            await pull.open()
        except _ApiError as e:
            if e.err_code == ERR_STREAM_NOT_FOUND:
                self._bucket_ok = False
                return False
            raise self._error("list", e) from None
        except BackendError:
            raise
        except Exception as e:
            raise self._error("list", e) from None
        return True

    # -- reads

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        return None

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        self._ready()
        name = ltx_name(level, min_txid, max_txid)
        dl = _Download(self, name, offset, size)
        self._call(dl.begin(), "get", steps=3)
        if dl.offset > 0 and not dl.finished:
            self._call(dl.locate(), "get", steps=dl.locate_steps())
        return _ObjectReader(self, dl, size)  # type: ignore[return-value]

    async def _chunk_map(self, info: dict[str, Any]) -> tuple[array, array]:
        """(stream sequence, start offset) of each chunk of an object, from one headers-only pass;
        concurrent ranged reads of one object share it."""
        key = f"{info.get('name')}\x00{info.get('nuid')}"
        hit = self._maps.get(key)
        if hit is not None:
            self._maps.move_to_end(key)
            return hit
        task = self._map_tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._build_map(info))
            self._map_tasks[key] = task
            task.add_done_callback(lambda _t: self._map_tasks.pop(key, None))
        result = await asyncio.shield(task)
        self._maps[key] = result
        while len(self._maps) > MAP_CACHE:
            self._maps.popitem(last=False)
        return result

    async def _build_map(self, info: dict[str, Any]) -> tuple[array, array]:
        name = str(info.get("name"))
        subj = f"$O.{self.settings.bucket}.C.{info['nuid']}"
        for attempt in range(RESTARTS):
            seqs, starts = array("q"), array("q")
            pos = 0
            pull = _Pull(self, subj, {"deliver_policy": "all", "headers_only": True}, window=MAP_WINDOW,
                         first=MAP_WINDOW)
            try:
                await pull.open()
                while (got := await pull.next()) is not None:
                    msg, meta = got
                    n = int((msg.headers or {}).get("Nats-Msg-Size", len(msg.data)))
                    seqs.append(meta.stream_seq)
                    starts.append(pos)
                    pos += n
            except _ConsumerLost:
                if attempt == RESTARTS - 1:
                    raise BackendError(f"nats: get {self._where(name)}: chunk map interrupted") from None
                continue
            finally:
                await pull.close()
            if len(seqs) != int(info.get("chunks") or 0) or pos != int(info.get("size") or 0):
                raise BackendError(f"nats: get {self._where(name)}: object changed while being read "
                                   f"({len(seqs)} chunks of {pos} bytes, its info says {info.get('chunks')} of "
                                   f"{info.get('size')})")
            return seqs, starts
        raise BackendError(f"nats: get {self._where(name)}: chunk map interrupted")

    # -- writes

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        self._ready()
        name = ltx_name(level, min_txid, max_txid)
        up = _Upload(self, name)
        self._call(up.begin(), "put", steps=4)
        sha = hashlib.sha256()
        total = chunks = 0
        try:
            with src.reader() as f:
                while True:
                    data = sc.read_full(f, up.chunk_size)
                    if not data:
                        break
                    sha.update(data)
                    total += len(data)
                    chunks += 1
                    self._call(up.send(data), "put", steps=2)
                    if len(data) < up.chunk_size:
                        break
            stamp = sc.format_timestamp(timestamp_ms)
            self._call(up.finish(total, chunks, sha.digest(), stamp), "put", steps=WRITE_WINDOW + 3)
        except BaseException:
            # Nothing was published under the name: readers never see the chunks; purge them.
            with contextlib.suppress(Exception):
                self._call(up.abort(), "put", steps=WRITE_WINDOW + 2)
            raise
        return FileInfo(level, min_txid, max_txid, total, timestamp_ms * 1_000_000)

    # -- deletes

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        names = [ltx_name(i.level, i.min_txid, i.max_txid) for i in infos]
        if not names:
            return
        self._ready()
        log.debug("deleting ltx files", bucket=self.settings.bucket, count=len(names))
        self._delete_names(names)

    def _delete_names(self, names: list[str]) -> None:
        for i in range(0, len(names), DELETE_BATCH):
            self._call(self._delete_batch(names[i:i + DELETE_BATCH]), "delete", steps=4)

    async def _delete_batch(self, names: list[str]) -> None:
        if not await self._ensure_bucket(create=False):
            return
        results = await asyncio.gather(*(self._delete_one(n) for n in names), return_exceptions=True)
        for name, r in zip(names, results, strict=True):
            if isinstance(r, BaseException):
                raise self._error("delete", r, name) from None

    async def _delete_one(self, name: str) -> None:
        """As nats.go's Delete: a rolled-up info marked deleted, then the chunks purged."""
        info = await self._get_info(name, show_deleted=True)
        if info is None or info.get("deleted") or not info.get("nuid"):
            return
        marker = dict(info)
        marker.update(size=0, chunks=0, mtime=ZERO_TIME, deleted=True)
        marker.pop("digest", None)
        await self._publish_info(marker)
        await self._purge(f"$O.{self.settings.bucket}.C.{info['nuid']}")

    def delete_all(self) -> None:
        self._ready()
        names = [str(info.get("name")) for info, _ in self._list_infos()]
        if names:
            self._delete_names(names)

    def close(self) -> None:
        with self._lock:
            loop, nc = self._loop, self._nc
            self._loop, self._nc, self._bucket_ok = None, None, False
        if loop is None:
            return
        if nc is not None:
            with contextlib.suppress(Exception):
                loop.submit(_close_nc(nc)).result(self.timeout_s + 1)
        loop.stop()
        self._maps.clear()


async def _close_nc(nc: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 5)


def _check_pub_ack(msg: Any) -> dict[str, Any]:
    """A PubAck, or the error it carries (a 503 status: no stream takes the subject)."""
    status = (msg.headers or {}).get("Status") if getattr(msg, "headers", None) else None
    if status == "503":
        import nats.errors as ne

        raise ne.NoRespondersError()
    return _js_answer(msg.data, "nats: bad publish acknowledgement")


def _js_answer(data: bytes, bad: str) -> dict[str, Any]:
    """A JetStream JSON answer (API reply or PubAck); one that is no JSON is a BackendError starting with
    `bad`, one carrying an error raises _ApiError."""
    try:
        out = json.loads(data)
    except ValueError:
        raise BackendError(f"{bad}: {_one_line(data[:200].decode('latin-1'))}") from None
    err = out.get("error")
    if err:
        raise _ApiError(int(err.get("code", 0)), int(err.get("err_code", 0)), str(err.get("description", "")))
    return out


# ------------------------------------------------------------------------------------------- consumers

class _Pull:
    """An ephemeral pull consumer (no acks, in memory, removed when idle) and its inbox, fetched with
    credit: at most `window` messages requested ahead, starting at `first` and doubling."""

    def __init__(self, client: NATSReplicaClient, subject: str, config: dict[str, Any], window: int,
                 first: int = 1, limit: int | None = None) -> None:
        self.c = client
        self.subject = subject
        self.config = config
        self.window = window
        self.batch = max(1, min(first, window))
        self.limit = limit  # messages wanted at most (None: all there are)
        self.name = ""
        self.sub: Any = None
        self.left = 0  # messages the consumer still holds for us (its pending count)
        self.credit = 0  # requested, not yet received
        self.received = 0
        self.expect_cseq = 1
        self.idle_expiries = 0

    async def open(self) -> int:
        c = self.c
        self.name = "ls" + secrets.token_hex(10)
        self.sub = await c._nc.subscribe(c._nc.new_inbox())
        cfg = {"name": self.name, "filter_subject": self.subject, "ack_policy": "none", "replay_policy": "instant",
               "mem_storage": True, "num_replicas": 1,
               # Removed by the server when a reader is abandoned (a killed process): long enough for any
               # pause between reads.
               "inactive_threshold": int(max(60.0, 6 * c.timeout_s) * 1e9), **self.config}
        try:
            info = await c._api(f"CONSUMER.CREATE.{c.stream}.{self.name}", {"stream_name": c.stream, "config": cfg})
        except BaseException:
            await self._unsubscribe()
            raise
        self.left = int(info.get("num_pending") or 0)
        self.credit, self.received, self.expect_cseq = 0, 0, 1
        return self.left

    def _wanted(self) -> int:
        """Messages still to request."""
        n = self.left - self.credit
        if self.limit is not None:
            n = min(n, self.limit - self.received - self.credit)
        return max(0, n)

    async def _request(self) -> None:
        n = min(self.batch, self._wanted())
        if n <= 0:
            return
        c = self.c
        req = {"batch": n, "expires": int(c.timeout_s * 1e9)}
        await c._nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{self.name}", json.dumps(req).encode(),
                            reply=self.sub.subject)
        self.credit += n
        self.batch = min(self.batch * 2, self.window)

    def done(self) -> bool:
        return self.credit == 0 and self._wanted() == 0

    async def next(self) -> tuple[Any, AckMeta] | None:
        """The next message, or None when the consumer has no more (or the limit is reached). Raises
        _ConsumerLost on a gap, a lost consumer or a silent server."""
        import nats.errors as ne

        while True:
            if self.credit <= self.batch // 2:
                await self._request()
            if self.done():
                return None
            try:
                msg = await self.sub.next_msg(timeout=self.c.timeout_s)
            except (TimeoutError, ne.TimeoutError):
                raise _ConsumerLost() from None
            status = (msg.headers or {}).get("Status") if msg.headers else None
            if status:
                if status == "100":
                    continue  # heartbeat
                if status in ("404", "408"):
                    # A request ended short: its unfulfilled count is no longer coming.
                    short = (msg.headers or {}).get("Nats-Pending-Messages")
                    self.credit = max(0, self.credit - int(short)) if short and short.isdigit() else 0
                    self.idle_expiries += 1
                    if self.idle_expiries > 2:
                        raise _ConsumerLost()
                    if status == "404" and self.limit is None:
                        self.left = self.credit  # no messages: the consumer has nothing more
                    continue
                raise _ConsumerLost()  # 409: consumer deleted, leadership change, ...
            meta = parse_ack(msg.reply or "")
            if meta is None:
                continue  # not a JetStream message (nothing else is sent to this inbox)
            if meta.consumer_seq != self.expect_cseq:
                raise _ConsumerLost()
            self.expect_cseq += 1
            self.idle_expiries = 0
            self.credit = max(0, self.credit - 1)
            self.received += 1
            self.left = meta.pending
            return msg, meta

    async def take(self, n: int) -> list[tuple[bytes, AckMeta]] | None:
        """Up to n messages' data (None: none left)."""
        out: list[tuple[bytes, AckMeta]] = []
        while len(out) < n:
            got = await self.next()
            if got is None:
                break
            out.append((got[0].data, got[1]))
        return out if out or not self.done() else None

    async def _unsubscribe(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        await self._unsubscribe()
        if self.name:
            name, self.name = self.name, ""
            with contextlib.suppress(Exception):
                await self.c._api(f"CONSUMER.DELETE.{self.c.stream}.{name}", timeout=min(5.0, self.c.timeout_s))


class _Download:
    """One open object, read chunk by chunk from the loop; lives on the loop."""

    def __init__(self, client: NATSReplicaClient, name: str, offset: int, size: int) -> None:
        self.c = client
        self.name = name
        self.offset = offset
        self.size = size
        self.info: dict[str, Any] = {}
        self.pull: _Pull | None = None
        self.skip = 0
        self.start_seq = 0  # stream sequence to start at (0: the first chunk)
        self.limit: int | None = None  # chunks wanted at most
        self.last_seq = 0
        self.restarts = 0
        self.sha: Any = None  # a whole read checks the digest
        self.total = 0
        self.finished = False

    async def begin(self) -> None:
        c = self.c
        try:
            if not await c._ensure_bucket(create=False):
                raise NotFoundError(f"nats: get {c._where(self.name)}: bucket not found")
            info = await c._get_info(self.name)
        except Exception as e:
            raise c._error("get", e, self.name) from None
        if info is None:
            raise NotFoundError(f"nats: get {c._where(self.name)}: object not found")
        if (info.get("options") or {}).get("link"):
            raise BackendError(f"nats: get {c._where(self.name)}: object is a link, which litestream does not write")
        if not info.get("nuid"):
            raise BackendError(f"nats: get {c._where(self.name)}: bad object info (no nuid)")
        self.info = info
        size = int(info.get("size") or 0)
        if size == 0 or self.offset >= size:
            self.finished = True
        elif self.offset <= 0 and self.size <= 0:
            self.sha = hashlib.sha256()

    def locate_steps(self) -> int:
        """Requests locate() may make one after the other (a large object's map takes several pages)."""
        return 3 + int(self.info.get("chunks") or 0) // MAP_WINDOW

    async def locate(self) -> None:
        """Where a read at an offset starts: the chunk holding it (from the object's chunk map)."""
        c = self.c
        if not self.finished and self.offset > 0:
            try:
                seqs, starts = await c._chunk_map(self.info)
            except Exception as e:
                raise c._error("get", e, self.name) from None
            i = bisect.bisect_right(starts, self.offset) - 1
            self.start_seq, self.skip = seqs[i], self.offset - starts[i]
            if self.size > 0:
                j = bisect.bisect_left(starts, self.offset + self.size) - 1
                self.limit = j - i + 1

    async def _open(self) -> None:
        c = self.c
        if self.last_seq:
            cfg: dict[str, Any] = {"deliver_policy": "by_start_sequence", "opt_start_seq": self.last_seq + 1}
        elif self.start_seq:
            cfg = {"deliver_policy": "by_start_sequence", "opt_start_seq": self.start_seq}
        else:
            cfg = {"deliver_policy": "all"}
        self.pull = _Pull(c, f"$O.{c.settings.bucket}.C.{self.info['nuid']}", cfg, window=READ_WINDOW, first=1,
                          limit=self.limit)
        await self.pull.open()

    async def next(self) -> bytes:
        """The next chunk's bytes (b"": the end)."""
        c = self.c
        while not self.finished:
            try:
                if self.pull is None:
                    await self._open()
                assert self.pull is not None
                got = await self.pull.next()
            except _ConsumerLost:
                await self._drop()
                self.restarts += 1
                if self.restarts > RESTARTS:
                    raise BackendError(f"nats: read {c._where(self.name)}: interrupted {RESTARTS} times") from None
                continue
            except BackendError:
                raise
            except Exception as e:
                await self._drop()
                raise c._error("read", e, self.name) from None
            if got is None:
                self.finished = True
                await self._drop()
                self._verify()
                return b""
            msg, meta = got
            data = msg.data
            self.last_seq = meta.stream_seq
            if self.limit is not None:
                self.limit -= 1
            if self.sha is not None:
                self.sha.update(data)
            self.total += len(data)
            if self.skip:
                data, self.skip = data[self.skip:], max(0, self.skip - len(data))
            if data:
                return data
        return b""

    def _verify(self) -> None:
        """A read of the whole object ends with its size and digest checked, as nats.go does."""
        if self.sha is None:
            return
        want = decode_digest(str(self.info.get("digest") or ""))
        if self.total != int(self.info.get("size") or 0) or (want is not None and self.sha.digest() != want):
            raise BackendError(f"nats: read {self.c._where(self.name)}: object incomplete or digest mismatch "
                               f"({self.total} of {self.info.get('size')} bytes)")

    async def _drop(self) -> None:
        pull, self.pull = self.pull, None
        if pull is not None:
            await pull.close()

    async def close(self) -> None:
        self.finished = True
        await self._drop()


class _ObjectReader(io.RawIOBase):
    """A blocking stream over a _Download; reads return the bytes asked for unless the object ends (a
    header read of 100 bytes gets 100 bytes)."""

    def __init__(self, client: NATSReplicaClient, dl: _Download, size: int) -> None:
        super().__init__()
        self._c, self._dl = client, dl
        self._buf = memoryview(b"")
        self._left = size if size > 0 else None
        self._eof = dl.finished

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._c._call(self._dl.next(), "read", steps=4)
        if not chunk:
            self._eof = True
            return False
        self._buf = memoryview(chunk)
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        want = len(b)
        if self._left is not None:
            want = min(want, self._left)
        n = 0
        while n < want:
            if not self._buf.nbytes and not self._fill():
                break
            take = min(want - n, self._buf.nbytes)
            b[n:n + take] = self._buf[:take]
            self._buf = self._buf[take:]
            n += take
        if self._left is not None:
            self._left -= n
            if self._left <= 0 and not self._eof:
                self._eof = True
                self._c._spawn(self._dl.close())  # the rest is not wanted: free the consumer now
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got])

    def readall(self) -> bytes:
        out = bytearray()
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                return bytes(out)
            out += chunk

    def close(self) -> None:
        if not self.closed:
            self._eof = True
            self._c._spawn(self._dl.close())
        super().close()


class _Upload:
    """One object being written: chunks published in order on a fresh subject, acknowledged in a window,
    then the info that makes it visible. Lives on the loop."""

    def __init__(self, client: NATSReplicaClient, name: str) -> None:
        self.c = client
        self.name = name
        self.nuid = secrets.token_hex(11)
        self.chunk_subj = f"$O.{client.settings.bucket}.C.{self.nuid}"
        self.chunk_size = CHUNK_SIZE
        self.sub: Any = None
        self.outstanding = 0
        self.old: dict[str, Any] | None = None
        self.sent = False

    async def begin(self) -> None:
        c = self.c
        try:
            await c._ensure_bucket(create=True)
            self.old = await c._get_info(self.name, show_deleted=True)
            max_payload = int(getattr(c._nc, "max_payload", 0) or 0)
            if max_payload > 0:
                self.chunk_size = min(CHUNK_SIZE, max_payload)
            self.sub = await c._nc.subscribe(c._nc.new_inbox())
        except Exception as e:
            raise c._error("put", e, self.name) from None

    async def _ack(self) -> None:
        import nats.errors as ne

        try:
            msg = await self.sub.next_msg(timeout=self.c.timeout_s)
        except (TimeoutError, ne.TimeoutError):
            raise self.c._error("put", TimeoutError(), self.name) from None
        self.outstanding -= 1
        try:
            _check_pub_ack(msg)
        except Exception as e:
            if isinstance(e, ne.NoRespondersError):
                self.c._bucket_ok = False  # the stream is gone: the next write creates it again
            raise self.c._error("put", e, self.name) from None

    async def send(self, data: bytes) -> None:
        try:
            await self.c._nc.publish(self.chunk_subj, data, reply=self.sub.subject)
        except Exception as e:
            raise self.c._error("put", e, self.name) from None
        self.sent = True
        self.outstanding += 1
        while self.outstanding >= WRITE_WINDOW:
            await self._ack()

    async def finish(self, size: int, chunks: int, sha: bytes, stamp: str) -> None:
        c = self.c
        while self.outstanding > 0:
            await self._ack()
        # nats.go's ObjectInfo, field for field (its reader skips an info it cannot parse).
        info: dict[str, Any] = {"name": self.name, "headers": {HEADER_TIMESTAMP: [stamp]},
                                "options": {"max_chunk_size": self.chunk_size}, "bucket": c.settings.bucket,
                                "nuid": self.nuid, "size": size, "mtime": ZERO_TIME, "chunks": chunks,
                                "digest": digest_value(sha)}
        try:
            await c._publish_info(info)
        except Exception as e:
            raise c._error("put", e, self.name) from None
        await self._unsubscribe()
        old = self.old
        if old is not None and not old.get("deleted") and old.get("nuid") and old.get("nuid") != self.nuid:
            with contextlib.suppress(Exception):
                await c._purge(f"$O.{c.settings.bucket}.C.{old['nuid']}")

    async def abort(self) -> None:
        with contextlib.suppress(Exception):
            while self.outstanding > 0:
                await self._ack()
        await self._unsubscribe()
        if self.sent:
            with contextlib.suppress(Exception):
                await self.c._purge(self.chunk_subj)

    async def _unsubscribe(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


__all__ = ["NATSReplicaClient", "NATSSettings", "from_config", "settings_from_config"]
