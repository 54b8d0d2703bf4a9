"""SFTP replica (`sftp://user[:pass]@host[:port]/path`), through paramiko: files
`<path>/ltx/<level>/<min>-<max>.ltx`, CreatedAt kept as the file's mtime, as the reference keeps it.

Config is read as the reference's builder reads it (keys beat URL parts; the URL's path is taken as it
is, so `sftp://u@h/data/db` is the absolute `/data/db` on the server and a path key without a leading
slash is relative to the login directory).

Threads: paramiko's SFTPClient is not safe for concurrent use (two threads reading replies from one
channel interleave packets), so every client owns one SSH connection carrying a small pool of SFTP
channels (MAX_CHANNELS sftp-server sessions), each behind its own lock, and every call into a channel
happens under its lock. Locks are held for one exchange of requests, never across caller code: an open
read stream is bound to the channel its handle lives on and takes that lock for each refill, an upload
takes it for each pipelined batch of writes, so a stream can feed an upload of the same client
(compaction copies) without either waiting on the other.

Transfers are pipelined (up to PIPELINE requests in flight: the reference's concurrent-writes, on by
default) with replies matched by request number, so a file costs a few round trips, not one per 32 KiB.
That uses paramiko's request/reply layer (`_async_request`, `_read_response`), which its own prefetch
and pipelined writes are built on; unlike them it checks every write's status (paramiko's pipelined
files drop the last replies unread) and starts no threads.

Writes go to `<name>.<pid>.<ns>.tmp`, get their mtime (FSETSTAT, whole seconds: SFTP v3 has no finer
mtime), are fsynced on the server where it offers fsync@openssh.com, then renamed over the final name
with posix-rename@openssh.com (atomic replace). A write cut by a failure removes its temporary file;
one cut by a crash leaves it to `clean_temp` at the next start. Listings ignore every name that is not
an LTX file name, as the reference's do.

use_metadata (timestamp restores) reads each file's 100-byte header, whose timestamp is CreatedAt to
the millisecond (the mtime has whole seconds only); plain listings return the mtime, as the reference's.

Every network call is bounded by timeout_s: connect, handshake, authentication and each reply. After
a connection failure the connection is dropped and the next call makes a new one; a call that fails
on a connection made by an earlier call (it may have died while idle) is tried once more on a new one.

paramiko is imported on first connect only (base.require_sdk): this module imports cheaply."""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import posixpath
import re
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar
from urllib.parse import unquote, urlsplit

from litestream import logs
from litestream.backends.base import (
    DEFAULT_TIMEOUT_S,
    AuthError,
    BackendError,
    NotFoundError,
    ReadStream,
    Source,
    go_join,
    reject_with_url,
    replica_root,
    require_sdk,
)
from litestream.backends.base import error_line as _one_line
from litestream.backends.url import _go_port
from litestream.config import ConfigError, ReplicaConfig
from litestream.ltx import HEADER_SIZE, FileInfo, Header, format_filename, parse_filename

DEFAULT_PORT = 22
# SFTP sessions per connection: enough for the replica's sync, compaction and a few restore fetches at
# once, well below OpenSSH's MaxSessions (10).
MAX_CHANNELS = 4
REQUEST_SIZE = 32768  # bytes per read or write request: the size every SFTP server accepts
PIPELINE = 64  # requests in flight per transfer (2 MiB)
READ_WINDOW_MIN = 64 << 10  # an open stream's first refill; doubled while it is read on, up to:
READ_WINDOW_MAX = 1 << 20  # (a merge holds one window per input)
READ_CAP = 4 << 20
UPLOAD_CHUNK = 256 << 10  # bytes read from the source per pipelined batch of writes
HEADER_BATCH = 64  # files whose headers one exchange reads (use_metadata)

_TMP_RE = re.compile(r"[0-9a-f]{16}-[0-9a-f]{16}\.ltx\.\d+\.\d+\.tmp")

# authorized_keys key types and the host key algorithms that present them.
_HOST_KEY_ALGOS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-dss": ("ssh-dss",),
}

log = logs.get_logger("sftp")

T = TypeVar("T")


# ------------------------------------------------------------------------------------------- settings

@dataclass
class SFTPSettings:
    host: str  # host[:port], as given
    user: str
    password: str = field(default="", repr=False)
    path: str = ""
    key_path: str = ""
    host_key: str = ""
    concurrent_writes: bool = True


def settings_from_config(rc: ReplicaConfig) -> SFTPSettings:
    """The reference's newSFTPReplicaClientFromConfig, with its messages."""
    reject_with_url(rc, "sftp", ("path", rc.path), ("host", rc.host))
    host, user, password, path = rc.host, rc.user, rc.password, rc.path
    if rc.url:
        u = _split_url(rc.url)
        host = host or u[0]
        user = user or u[1]
        password = password or u[2]
        path = path or u[3]
    if not host:
        raise ConfigError("host required for sftp replica")
    if not user:
        raise ConfigError("user required for sftp replica")
    return SFTPSettings(host=host, user=user, password=password, path=path, key_path=rc.key_path,
                        host_key=rc.host_key,
                        concurrent_writes=True if rc.concurrent_writes is None else rc.concurrent_writes)


def _split_url(raw: str) -> tuple[str, str, str, str]:
    """(host[:port], user, password, path) as Go's url.Parse gives them: the path unescaped and not
    cleaned (its leading slash kept), the host with its port."""
    try:
        u = urlsplit(raw)
        _go_port(u.netloc, raw)  # a port that is not digits is an error, as in Go
    except ValueError as e:
        raise ConfigError(str(e)) from None
    host = u.netloc.rpartition("@")[2]
    user = unquote(u.username) if u.username is not None else ""
    password = unquote(u.password) if u.password is not None else ""
    return host, user, password, unquote(u.path)


def from_config(rc: ReplicaConfig) -> SFTPReplicaClient:
    return SFTPReplicaClient(settings_from_config(rc))


def split_host_port(host: str) -> tuple[str, int]:
    """host[:port] -> (host, port), port 22 when none is given (the reference's net.SplitHostPort with
    a JoinHostPort(host, "22") fallback). A bare IPv6 address, bracketed or not, has no port."""
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            name, rest = host[1:end], host[end + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                return name, int(rest[1:])
            return name, DEFAULT_PORT
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        if port.isdigit():
            return name, int(port)
        raise ConfigError(f'invalid port "{port}" in sftp host "{host}"')
    return host, DEFAULT_PORT


def parse_host_key(line: str) -> tuple[str, bytes]:
    """(key type, key blob) of an authorized_keys line (options and a comment may surround the key), as
    ssh.ParseAuthorizedKey reads it."""
    fields = line.split()
    for i, word in enumerate(fields[:-1]):
        if word in _HOST_KEY_ALGOS:
            try:
                blob = base64.b64decode(fields[i + 1], validate=True)
            except (binascii.Error, ValueError):
                continue
            # The blob starts with its own type name; a line whose two disagree is no key.
            if len(blob) > 4 and blob[4:4 + int.from_bytes(blob[:4], "big")] == word.encode():
                return word, blob
    raise BackendError("cannot parse sftp host key: ssh: no key found")


# ------------------------------------------------------------------------------------------ the wire

class _ConnLost(BackendError):
    """The connection failed under a call (it has been dropped; the next call makes a new one)."""


class _Unsupported(OSError):
    """The server does not know an extension (SSH_FX_OP_UNSUPPORTED)."""


def _status_error(code: int, text: str) -> OSError | EOFError | None:
    from paramiko import sftp as ps

    if code == ps.SFTP_OK:
        return None
    if code == ps.SFTP_EOF:
        return EOFError(text or "end of file")
    if code == ps.SFTP_NO_SUCH_FILE:
        return FileNotFoundError(errno.ENOENT, text or "no such file")
    if code == ps.SFTP_PERMISSION_DENIED:
        return PermissionError(errno.EACCES, text or "permission denied")
    if code == ps.SFTP_OP_UNSUPPORTED:
        return _Unsupported(text or "operation unsupported")
    return OSError(text or f"sftp status {code}")


class _Pipe:
    """Requests on one channel whose replies are matched by number: paramiko hands a reply that is not
    the one a thread waits for to its owner's `_async_response`, so replies may arrive while another
    thread holds the channel and are found here later. Only used under the channel's lock."""

    def __init__(self, sftp: Any) -> None:
        self.sftp = sftp
        self.got: dict[int, tuple[int, Any]] = {}
        self.order: deque[int] = deque()

    def _async_response(self, t: int, msg: Any, num: int) -> None:
        self.got[num] = (t, msg)

    def send(self, cmd: int, *args: Any) -> None:
        self.order.append(self.sftp._async_request(self, cmd, *args))

    def __len__(self) -> int:
        return len(self.order)

    def take(self) -> tuple[int, Any]:
        num = self.order.popleft()
        while num not in self.got:
            self.sftp._read_response()  # one packet, handed to whichever request it answers
        return self.got.pop(num)

    def status(self) -> None:
        """The next reply, which must be a status; raises its error."""
        from paramiko import sftp as ps

        t, msg = self.take()
        if t != ps.CMD_STATUS:
            raise _protocol(f"expected a status, got reply type {t}")
        err = _status_error(msg.get_int(), msg.get_text())
        if err is not None:
            raise err

    def handle(self) -> bytes:
        from paramiko import sftp as ps

        t, msg = self.take()
        if t == ps.CMD_HANDLE:
            return msg.get_binary()
        if t == ps.CMD_STATUS:
            err = _status_error(msg.get_int(), msg.get_text())
            if err is not None:
                raise err
        raise _protocol(f"expected a handle, got reply type {t}")

    def data(self) -> bytes | None:
        """A read's bytes; None at the end of the file."""
        from paramiko import sftp as ps

        t, msg = self.take()
        if t == ps.CMD_DATA:
            return msg.get_binary()
        if t == ps.CMD_STATUS:
            err = _status_error(msg.get_int(), msg.get_text())
            if err is None or isinstance(err, EOFError):
                return None
            raise err
        raise _protocol(f"expected data, got reply type {t}")


def _protocol(msg: str) -> Exception:
    from paramiko import SFTPError

    return SFTPError(msg)


class _Chan:
    """One SFTP session of a connection, and the lock every use of it holds."""

    def __init__(self, conn: _Conn, sftp: Any) -> None:
        self.conn = conn
        self.sftp = sftp
        self.lock = threading.Lock()


class _Conn:
    """One SSH connection and its pool of SFTP channels."""

    def __init__(self, transport: Any, timeout_s: float) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.channels: list[_Chan] = []
        self.lock = threading.Lock()
        self.dead = False
        self._next = 0

    def open_channel(self) -> _Chan:
        import paramiko

        chan = self.transport.open_session(timeout=self.timeout_s)
        chan.settimeout(self.timeout_s)  # every reply (and send) on this channel is bounded
        # invoke_subsystem waits for the server's answer without a bound of its own.
        watchdog = threading.Timer(self.timeout_s, chan.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            chan.invoke_subsystem("sftp")
            sftp = paramiko.SFTPClient(chan)
        finally:
            watchdog.cancel()
        return _Chan(self, sftp)

    def acquire(self) -> _Chan:
        """A channel, locked: a free one, else a new one while under MAX_CHANNELS, else the next in turn."""
        import paramiko

        with self.lock:
            if self.dead:
                raise ConnectionError("connection closed")
            for ch in self.channels:
                if ch.lock.acquire(blocking=False):
                    return ch
            if len(self.channels) < MAX_CHANNELS:
                try:
                    ch = self.open_channel()
                except paramiko.ChannelException:
                    # The server allows fewer sessions (MaxSessions): share the ones there are.
                    if not self.channels:
                        raise
                else:
                    ch.lock.acquire()
                    self.channels.append(ch)
                    return ch
            ch = self.channels[self._next % len(self.channels)]
            self._next += 1
        ch.lock.acquire()
        return ch

    def close(self) -> None:
        self.dead = True
        with contextlib.suppress(Exception):
            self.transport.close()


# ------------------------------------------------------------------------------------------- streams

class _Reader(ReadStream):
    """An open LTX file, read ahead in pipelined windows. Bound to the channel its handle lives on, whose
    lock it takes for each refill only."""

    def __init__(self, client: SFTPReplicaClient, ch: _Chan, handle: bytes, path: str, offset: int,
                 size: int) -> None:
        self._client, self._ch, self._handle, self._path = client, ch, handle, path
        self._pos = offset  # file offset of the next byte to fetch
        self._end = offset + size if size > 0 else None
        self._buf = b""
        self._at = 0  # bytes of _buf already returned
        self._window = READ_WINDOW_MIN
        self._eof = False
        self._closed = False

    def readable(self) -> bool:
        return True

    def _refill(self, want: int) -> None:
        from paramiko import sftp as ps

        # At most READ_CAP per refill: a read may return less than asked, and the replies of one refill
        # are held in memory at once.
        n = min(max(want, self._window), READ_CAP)
        if self._end is not None:
            n = min(n, self._end - self._pos)
        if n <= 0:
            self._eof = True
            return
        self._window = min(self._window * 2, READ_WINDOW_MAX)
        chunks: list[bytes] = []
        with self._client._bound(self._ch, "read", self._path):
            pipe = _Pipe(self._ch.sftp)
            sizes = []
            for off in range(self._pos, self._pos + n, REQUEST_SIZE):
                sizes.append(min(REQUEST_SIZE, self._pos + n - off))
                pipe.send(ps.CMD_READ, self._handle, ps.int64(off), sizes[-1])
            # Replies come in order of the requests. The first short one (end of file, or a server that
            # returns less than asked) ends what this refill can use; the rest are still read so the
            # channel stays in step, and the next refill asks again from where the data stopped.
            short = False
            for k in sizes:
                data = pipe.data()
                if short:
                    continue
                if data is None or len(data) < k:
                    short = True
                if data:
                    chunks.append(data)
        got = b"".join(chunks)
        self._pos += len(got)
        self._buf, self._at = got, 0
        self._eof = not got

    def read(self, n: int = -1) -> bytes:
        if self._closed:
            raise ValueError("read of a closed stream")
        if n is None or n < 0:
            out = bytearray()
            while chunk := self.read(READ_WINDOW_MAX):
                out += chunk
            return bytes(out)
        if n == 0:
            return b""
        if self._at >= len(self._buf):
            if self._eof:
                return b""
            self._refill(n)
            if self._at >= len(self._buf):
                return b""
        out = self._buf[self._at:self._at + n]
        self._at += len(out)
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf = b""
        self._client._close_handle(self._ch, self._handle)


# -------------------------------------------------------------------------------------------- client

class SFTPReplicaClient:
    type = "sftp"

    def __init__(self, settings: SFTPSettings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not settings.host:
            raise BackendError("host required for sftp replica")
        if not settings.user:
            raise BackendError("user required for sftp replica")
        self.settings = settings
        self.timeout_s = timeout_s
        self._host, self._port = split_host_port(settings.host)
        self._lock = threading.Lock()
        self._conn: _Conn | None = None
        self._dirs: set[str] = set()  # directories known to exist (no mkdir round trips per write)
        self._fsync = True  # the server offers fsync@openssh.com (until it says otherwise)
        self._posix_rename = True

    def __repr__(self) -> str:
        s = self.settings
        return f"SFTPReplicaClient(host={s.host!r}, user={s.user!r}, path={s.path!r})"

    @property
    def path(self) -> str:
        return self.settings.path

    def _where(self, path: str) -> str:
        """A path as a message shows it: sftp://user@host[:port]/abs, or ~/rel for one relative to the
        login directory. Never the password."""
        port = "" if self._port == DEFAULT_PORT else f":{self._port}"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"sftp://{self.settings.user}@{host}{port}{path if path.startswith('/') else '/~/' + path}"

    def level_dir(self, level: int) -> str:
        return go_join(self.settings.path, "ltx", str(level))

    def ltx_path(self, level: int, min_txid: int, max_txid: int) -> str:
        return go_join(self.level_dir(level), format_filename(min_txid, max_txid))

    # -- connection

    def init(self) -> None:
        self._connection()

    def _connection(self) -> tuple[_Conn, bool]:
        """The live connection, made if there is none; True when this call made it."""
        with self._lock:
            if self._conn is not None and not self._conn.dead:
                return self._conn, False
            self._conn = self._connect()
            return self._conn, True

    def _connect(self) -> _Conn:
        paramiko = require_sdk("paramiko", "sftp", "sftp")
        _quiet_paramiko()
        s = self.settings
        where = self._where(s.path)
        expected: tuple[str, bytes] | None = None
        if s.host_key:
            expected = parse_host_key(s.host_key)
        else:
            log.warn("sftp host key not verified", host=s.host)
        pkey = self._load_key(paramiko) if s.key_path else None
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self.timeout_s)
        except OSError as e:
            raise BackendError(f"sftp: connect {where}: {(e.strerror or _one_line(e)).lower()}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = transport.handshake_timeout = self.timeout_s
            transport.auth_timeout = self.timeout_s
            if expected is not None:
                # Ask for the key type that was given, so a server with several host keys shows that one.
                known = getattr(transport, "_key_info", None) or {}
                algos = [a for a in _HOST_KEY_ALGOS[expected[0]] if a in known]
                if algos:
                    transport.get_security_options().key_types = algos
            transport.start_client(timeout=self.timeout_s)
            if expected is not None:
                got = transport.get_remote_server_key()
                if got.asbytes() != expected[1]:
                    raise AuthError(f"sftp: connect {where}: host key mismatch (the server presented "
                                    f"{got.get_name()} {got.get_base64()[:24]}..., not the host-key given)")
            self._authenticate(paramiko, transport, pkey, where)
            # SSH-level keepalives (no SFTP requests): a NAT or firewall does not drop an idle connection,
            # and a dead one is found before the next call waits a whole timeout on it.
            transport.set_keepalive(60)
            conn = _Conn(transport, self.timeout_s)
            conn.channels.append(conn.open_channel())
            return conn
        except (AuthError, BackendError):
            transport.close()
            raise
        except paramiko.AuthenticationException as e:
            transport.close()
            raise AuthError(f"sftp: connect {where}: {_one_line(e)}") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            transport.close()
            raise BackendError(f"sftp: connect {where}: {_one_line(e)}") from None

    def _load_key(self, paramiko: Any) -> Any:
        path = os.path.expanduser(self.settings.key_path)
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise AuthError(f"sftp: cannot read sftp key path: open {path}: {(e.strerror or str(e)).lower()}") \
                from None
        try:
            return paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException:
            raise AuthError("sftp: cannot parse sftp key path: ssh: this private key is passphrase protected") \
                from None
        except (paramiko.SSHException, ValueError, TypeError, OSError) as e:
            raise AuthError(f"sftp: cannot parse sftp key path: {_one_line(e)}") from None

    def _authenticate(self, paramiko: Any, transport: Any, pkey: Any, where: str) -> None:
        """Public key first, then the password (either alone, or both where the server asks for both)."""
        s = self.settings
        tried: list[str] = []
        allowed: list[str] | None = None
        if pkey is not None:
            tried.append("publickey")
            try:
                transport.auth_publickey(s.user, pkey)
            except paramiko.BadAuthenticationType as e:
                allowed = list(e.allowed_types)
            except paramiko.AuthenticationException:
                pass
        if not transport.is_authenticated() and s.password:
            tried.append("password")
            try:
                transport.auth_password(s.user, s.password, fallback=True)
            except paramiko.BadAuthenticationType as e:
                allowed = list(e.allowed_types)
            except paramiko.AuthenticationException:
                pass
        if not tried:
            tried.append("none")
            try:
                transport.auth_none(s.user)
            except paramiko.BadAuthenticationType as e:
                allowed = list(e.allowed_types)
            except paramiko.AuthenticationException:
                pass
        if not transport.is_authenticated():
            more = f"; the server allows {', '.join(allowed)}" if allowed else ""
            raise AuthError(f"sftp: connect {where}: authentication failed for user {s.user} (tried "
                            f"{', '.join(tried)}{more}); check user, key-path and password")

    def _drop(self, conn: _Conn) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    # -- calls

    def _error(self, e: BaseException, op: str, path: str, conn: _Conn | None) -> BackendError:
        """An exception as one line naming the operation and path; the connection is dropped when the
        failure was the connection's."""
        import paramiko

        where = self._where(path)
        if isinstance(e, BackendError):
            if isinstance(e, _ConnLost) and conn is not None:
                self._drop(conn)
            return e
        lost = isinstance(e, (TimeoutError, ConnectionError, paramiko.SSHException, paramiko.SFTPError)) or (
            conn is not None and not conn.transport.is_active())
        if isinstance(e, EOFError) and not lost:
            return BackendError(f"sftp: {op} {where}: unexpected end of file")
        if lost or isinstance(e, EOFError):
            if conn is not None:
                self._drop(conn)
            what = "timed out" if isinstance(e, TimeoutError) else f"connection lost ({_one_line(e)})"
            return _ConnLost(f"sftp: {op} {where}: {what}")
        if isinstance(e, FileNotFoundError):
            return NotFoundError(f"sftp: {op} {where}: file not found")
        if isinstance(e, PermissionError):
            return AuthError(f"sftp: {op} {where}: permission denied")
        if isinstance(e, OSError):
            return BackendError(f"sftp: {op} {where}: {_one_line(e.strerror or e)}")
        raise e

    def _do(self, op: str, path: str, fn: Callable[[_Chan], T]) -> T:
        """fn on a locked channel; once more on a new connection if a connection that an earlier call
        made failed under it."""
        for attempt in (0, 1):
            conn, fresh = self._connection()
            try:
                ch = conn.acquire()
            except Exception as e:
                err = self._error(e, op, path, conn)
                if isinstance(err, _ConnLost) and not fresh and attempt == 0:
                    continue
                raise err from None
            try:
                return fn(ch)
            except Exception as e:
                err = self._error(e, op, path, conn)
                if isinstance(err, _ConnLost) and not fresh and attempt == 0:
                    continue
                raise err from None
            finally:
                ch.lock.release()
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _bound(self, ch: _Chan, op: str, path: str) -> Iterator[None]:
        """The lock of a channel a handle lives on (no retry: the handle dies with its connection)."""
        with ch.lock:
            if ch.conn.dead:
                raise _ConnLost(f"sftp: {op} {self._where(path)}: connection lost")
            try:
                yield
            except Exception as e:
                raise self._error(e, op, path, ch.conn) from None

    def _close_handle(self, ch: _Chan, handle: bytes) -> None:
        """Close a handle, quietly: a stream's close never fails (the server drops handles with the session)."""
        from paramiko import sftp as ps

        with ch.lock:
            if ch.conn.dead:
                return
            try:
                pipe = _Pipe(ch.sftp)
                pipe.send(ps.CMD_CLOSE, handle)
                pipe.status()
            except Exception as e:
                with contextlib.suppress(Exception):
                    self._error(e, "close", "", ch.conn)

    # -- listing

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        d = self.level_dir(level)

        def listdir(ch: _Chan) -> list[Any]:
            try:
                return ch.sftp.listdir_attr(d)
            except FileNotFoundError:
                return []

        rows = []
        for a in self._do("list", d, listdir):
            txids = parse_filename(a.filename)
            if txids is None or txids[0] < seek:
                continue
            if a.st_mode is not None and not stat.S_ISREG(a.st_mode):
                continue
            rows.append((a.filename, txids, int(a.st_size or 0), int(a.st_mtime or 0) * 1_000_000_000))
        rows.sort(key=lambda r: r[0])
        if use_metadata and rows:
            stamps = self._header_timestamps([go_join(d, r[0]) for r in rows])
            rows = [(n, t, size, stamps.get(go_join(d, n), mt)) for n, t, size, mt in rows]
        for _name, (lo, hi), size, created in rows:
            yield FileInfo(level, lo, hi, size, created)

    def _header_timestamps(self, paths: list[str]) -> dict[str, int]:
        """CreatedAt to the millisecond from each file's header, read HEADER_BATCH files per exchange
        (open all, read all, close all); files that cannot be read keep their mtime."""
        from paramiko import SFTPAttributes
        from paramiko import sftp as ps

        out: dict[str, int] = {}

        def batch(part: list[str]) -> Callable[[_Chan], None]:
            def run(ch: _Chan) -> None:
                pipe = _Pipe(ch.sftp)
                for p in part:
                    pipe.send(ps.CMD_OPEN, p, ps.SFTP_FLAG_READ, SFTPAttributes())
                handles: list[tuple[str, bytes]] = []
                for p in part:
                    with contextlib.suppress(OSError):
                        handles.append((p, pipe.handle()))
                for _p, h in handles:
                    pipe.send(ps.CMD_READ, h, ps.int64(0), HEADER_SIZE)
                for _p, h in handles:
                    pipe.send(ps.CMD_CLOSE, h)
                heads = []
                for p, _h in handles:
                    with contextlib.suppress(OSError):
                        heads.append((p, pipe.data()))
                for _ in handles:
                    with contextlib.suppress(OSError):
                        pipe.status()
                for p, raw in heads:
                    if raw is not None and len(raw) == HEADER_SIZE:
                        with contextlib.suppress(Exception):
                            out[p] = Header.decode(raw).timestamp * 1_000_000
            return run

        for i in range(0, len(paths), HEADER_BATCH):
            part = paths[i:i + HEADER_BATCH]
            self._do("read headers in", posixpath.dirname(part[0]), batch(part))
        return out

    # -- reads

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        from paramiko import SFTPAttributes
        from paramiko import sftp as ps

        path = self.ltx_path(level, min_txid, max_txid)
        got: list[_Reader] = []

        def op(ch: _Chan) -> None:
            pipe = _Pipe(ch.sftp)
            pipe.send(ps.CMD_OPEN, path, ps.SFTP_FLAG_READ, SFTPAttributes())
            got.append(_Reader(self, ch, pipe.handle(), path, offset, size))

        self._do("open", path, op)
        return got[0]  # type: ignore[return-value]

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        return None

    # -- writes

    def _mkdirs(self, sftp: Any, d: str) -> None:
        """mkdir -p: the directory, after its missing parents; one that exists (another writer made it) is
        fine."""
        if not d or d in (".", "/") or d in self._dirs:
            return
        try:
            sftp.mkdir(d)
        except FileNotFoundError:
            self._mkdirs(sftp, posixpath.dirname(d))
            try:
                sftp.mkdir(d)
            except OSError:
                if not stat.S_ISDIR(sftp.stat(d).st_mode or 0):
                    raise
        except OSError:
            # OpenSSH answers a mkdir of an existing directory with a bare "Failure".
            if not stat.S_ISDIR(sftp.stat(d).st_mode or 0):
                raise
        self._dirs.add(d)

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        from paramiko import SFTPAttributes
        from paramiko import sftp as ps

        final = self.ltx_path(level, min_txid, max_txid)
        d = posixpath.dirname(final)
        tmp = f"{final}.{os.getpid()}.{time.time_ns()}.tmp"
        window = PIPELINE if self.settings.concurrent_writes else 1
        opened: list[tuple[_Chan, bytes]] = []

        def create(ch: _Chan) -> None:
            flags = ps.SFTP_FLAG_WRITE | ps.SFTP_FLAG_CREATE | ps.SFTP_FLAG_TRUNC
            for attempt in (0, 1):
                if attempt or d not in self._dirs:
                    self._dirs.discard(d)
                    self._mkdirs(ch.sftp, d)
                pipe = _Pipe(ch.sftp)
                pipe.send(ps.CMD_OPEN, tmp, flags, SFTPAttributes())
                try:
                    opened.append((ch, pipe.handle()))
                    return
                except FileNotFoundError:
                    if attempt:
                        raise  # the directory went again (a delete_all meanwhile)

        # Opening the temporary file consumes nothing of the source, so a stale connection is retried here.
        self._do("create", tmp, create)
        ch, handle = opened[0]
        pipe = _Pipe(ch.sftp)
        n = 0
        done = False
        try:
            with src.reader() as f:
                while True:
                    chunk = f.read(UPLOAD_CHUNK)  # outside the lock: the source may be a stream of ours
                    if not chunk:
                        break
                    with self._bound(ch, "write", tmp):
                        for i in range(0, len(chunk), REQUEST_SIZE):
                            pipe.send(ps.CMD_WRITE, handle, ps.int64(n + i), chunk[i:i + REQUEST_SIZE])
                            while len(pipe) >= window:
                                pipe.status()
                    n += len(chunk)
            if src.size is not None and n != src.size:
                raise BackendError(f"sftp: write {self._where(final)}: the source ended after {n} of "
                                   f"{src.size} bytes")
            with self._bound(ch, "write", tmp):
                while len(pipe):
                    pipe.status()
                # The mtime is CreatedAt (whole seconds: SFTP v3 carries no finer time), set before the
                # rename so no reader sees another; then the data made durable on the server.
                attrs = SFTPAttributes()
                attrs.st_atime = attrs.st_mtime = timestamp_ms // 1000
                pipe.send(ps.CMD_FSETSTAT, handle, attrs)
                if self._fsync:
                    pipe.send(ps.CMD_EXTENDED, "fsync@openssh.com", handle)
                pipe.send(ps.CMD_CLOSE, handle)
                handle = b""
                pipe.status()
                if self._fsync:
                    try:
                        pipe.status()
                    except _Unsupported:
                        self._fsync = False
                pipe.status()
                self._rename(pipe, tmp, final)
            done = True
        finally:
            if not done:
                self._abandon(ch, handle, tmp)
        return FileInfo(level, min_txid, max_txid, n, timestamp_ms * 1_000_000)

    def _rename(self, pipe: _Pipe, tmp: str, final: str) -> None:
        """tmp over final, atomically where the server offers posix-rename (OpenSSH does); plain SFTP
        rename refuses an existing target, so without it an old file is removed first."""
        from paramiko import sftp as ps

        if self._posix_rename:
            pipe.send(ps.CMD_EXTENDED, "posix-rename@openssh.com", tmp, final)
            try:
                pipe.status()
                return
            except _Unsupported:
                self._posix_rename = False
        pipe.send(ps.CMD_RENAME, tmp, final)
        try:
            pipe.status()
        except FileNotFoundError:
            raise
        except OSError:
            # Most likely the target exists (SFTP v3 rename never replaces): not atomic, but no reader
            # ever sees a partial file, only none for a moment.
            pipe.send(ps.CMD_REMOVE, final)
            with contextlib.suppress(FileNotFoundError):
                pipe.status()
            pipe.send(ps.CMD_RENAME, tmp, final)
            pipe.status()

    def _abandon(self, ch: _Chan, handle: bytes, tmp: str) -> None:
        """After a failed write: close the handle and remove the temporary file, best effort (a dead
        connection leaves it to clean_temp)."""
        from paramiko import sftp as ps

        with ch.lock:
            if ch.conn.dead:
                return
            try:
                pipe = _Pipe(ch.sftp)
                if handle:
                    pipe.send(ps.CMD_CLOSE, handle)
                pipe.send(ps.CMD_REMOVE, tmp)
                while len(pipe):
                    with contextlib.suppress(OSError):
                        pipe.status()
            except Exception as e:
                with contextlib.suppress(Exception):
                    self._error(e, "remove", tmp, ch.conn)

    # -- deletes

    def _remove_all(self, ch: _Chan, paths: list[str]) -> None:
        """REMOVE each path, pipelined; ones already gone are fine, the first other error is raised once
        every reply is in."""
        from paramiko import sftp as ps

        pipe = _Pipe(ch.sftp)
        first: OSError | None = None
        for p in paths:
            pipe.send(ps.CMD_REMOVE, p)
            while len(pipe) >= PIPELINE:
                first = _keep_first(pipe, first)
        while len(pipe):
            first = _keep_first(pipe, first)
        if first is not None:
            raise first

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        paths = [self.ltx_path(i.level, i.min_txid, i.max_txid) for i in infos]
        if not paths:
            return
        log.debug("deleting ltx files", host=self.settings.host, count=len(paths))
        self._do("delete", posixpath.dirname(paths[0]), lambda ch: self._remove_all(ch, paths))

    def _root(self) -> str:
        """What delete_all removes: the replica's directory; at the login directory or the server's root,
        only its `ltx` tree (the reference would walk the whole home directory)."""
        return replica_root(self.settings.path)

    def delete_all(self) -> None:
        root = self._root()

        def walk(ch: _Chan) -> None:
            files: list[str] = []
            dirs: list[str] = []

            def visit(d: str) -> None:
                try:
                    entries = ch.sftp.listdir_attr(d)
                except FileNotFoundError:
                    return
                dirs.append(d)
                for a in entries:
                    p = go_join(d, a.filename)
                    if a.st_mode is not None and stat.S_ISDIR(a.st_mode):
                        visit(p)
                    else:
                        files.append(p)

            visit(root)
            self._remove_all(ch, files)
            for d in reversed(dirs):  # children before their parents
                with contextlib.suppress(FileNotFoundError):
                    ch.sftp.rmdir(d)

        self._dirs.clear()
        self._do("delete", root, walk)
        self._dirs.clear()

    def clean_temp(self) -> int:
        """Remove the temporary files of uploads a crash cut short (`<ltx name>.<pid>.<ns>.tmp`). Called at
        start, while no write of this replica is under way; failures are only logged (the server may be
        down at start, which the first sync reports)."""
        ltx = go_join(self.settings.path, "ltx")

        def run(ch: _Chan) -> int:
            try:
                levels = [a.filename for a in ch.sftp.listdir_attr(ltx) if stat.S_ISDIR(a.st_mode or 0)]
            except FileNotFoundError:
                return 0
            stale = []
            for lv in levels:
                with contextlib.suppress(FileNotFoundError):
                    stale += [go_join(ltx, lv, a.filename) for a in ch.sftp.listdir_attr(go_join(ltx, lv))
                              if _TMP_RE.fullmatch(a.filename)]
            if stale:
                self._remove_all(ch, stale)
            return len(stale)

        try:
            return self._do("clean", ltx, run)
        except BackendError as e:
            log.debug("sftp: cannot remove temporary files", error=str(e))
            return 0

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


_quieted = False


def _quiet_paramiko() -> None:
    """paramiko logs its transport thread's errors (a dropped connection) through the logging module,
    which without a handler prints them bare on stderr; they reach the user as our BackendErrors."""
    global _quieted
    if not _quieted:
        import logging

        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        _quieted = True


def _keep_first(pipe: _Pipe, first: OSError | None) -> OSError | None:
    try:
        pipe.status()
    except FileNotFoundError:
        pass
    except OSError as e:
        return first or e
    return first


__all__ = ["SFTPReplicaClient", "SFTPSettings", "from_config", "parse_host_key", "settings_from_config",
           "split_host_port"]
