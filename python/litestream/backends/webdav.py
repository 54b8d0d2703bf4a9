"""WebDAV replica (`webdav://[user:pass@]host[:port]/path` over http, `webdavs://` over https), through
httpx: files `<path>/ltx/<level>/<min>-<max>.ltx` under `webdav-url`, basic auth.

Config is read as the reference's builder reads it (keys beat URL parts; the URL's path is taken as it
is). CreatedAt is the server's getlastmodified, the upload time: WebDAV keeps no metadata of ours and
the reference keeps none either, so both tools list the same times.

Requests: MKCOL for each missing directory (remembered, so a level costs it once), PROPFIND Depth 1
for listings (getcontentlength, getlastmodified; the multistatus answer is parsed as it streams in),
GET with a Range header for reads (a server that ignores ranges is read through to the offset), DELETE.
A write is a PUT of `<name>.<pid>.<ns>.tmp` then a MOVE over the final name (Overwrite: T), so a
reader never sees a partial file whatever the server does with a PUT cut short; the temporary name is
no LTX file name, which listings (both tools') skip. Where the server replaces an existing target by
deleting it first (Apache mod_dav), an overwritten name is missing for that moment, never partial.
The reference PUTs to the final name; it stages each upload in a local temp file to learn its
Content-Length, while the Source here knows its size and is streamed with it (only a stream of unknown
size is spooled). Accept-Encoding is identity, so ranges count the file's own bytes.

Every request has connect, read and write timeouts of timeout_s; httpx's client is thread-safe and
pools connections, so calls from any thread share it. httpx is imported on first use only
(base.require_sdk): this module imports cheaply."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from litestream import logs
from litestream.backends.base import (
    DEFAULT_TIMEOUT_S,
    AuthError,
    BackendError,
    NotFoundError,
    ReadStream,
    Source,
    close_quietly,
    go_join,
    reject_with_url,
    replica_root,
    require_sdk,
)
from litestream.backends.base import error_line as _one_line
from litestream.backends.url import _go_port
from litestream.config import ConfigError, ReplicaConfig
from litestream.ltx import FileInfo, format_filename, parse_filename

UPLOAD_CHUNK = 1 << 20  # bytes read from the source per piece of a PUT body
READ_CHUNK = 256 << 10
DELETE_CONCURRENCY = 8
POOL_SIZE = 16  # idle connections kept for reuse

_DAV = "{DAV:}"
_PROPFIND_BODY = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                  b'<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/>'
                  b"<d:getlastmodified/></d:prop></d:propfind>")
_TMP_RE = re.compile(r"[0-9a-f]{16}-[0-9a-f]{16}\.ltx\.\d+\.\d+\.tmp")
_PATH_SAFE = "/-._~!$&'()*+,;=:@"

log = logs.get_logger("webdav")


# ------------------------------------------------------------------------------------------- settings

@dataclass
class WebDAVSettings:
    url: str  # scheme://host[:port][/base], as given (userinfo, if any, is used as credentials)
    username: str = ""
    password: str = field(default="", repr=False)
    path: str = ""


def settings_from_config(rc: ReplicaConfig) -> WebDAVSettings:
    """The reference's newWebDAVReplicaClientFromConfig, with its messages."""
    reject_with_url(rc, "webdav", ("path", rc.path), ("webdav-url", rc.webdav_url))
    url, username, password, path = rc.webdav_url, rc.webdav_username, rc.webdav_password, rc.path
    if rc.url:
        try:
            u = urlsplit(rc.url)
            _go_port(u.netloc, rc.url)  # a port that is not digits is an error, as in Go
        except ValueError as e:
            raise ConfigError(str(e)) from None
        scheme = "https" if u.scheme.lower() == "webdavs" else "http"
        host = u.netloc.rpartition("@")[2]
        if not url and host:
            url = f"{scheme}://{host}"
        if not username and u.username is not None:
            username = unquote(u.username)
        if not password and u.password is not None:
            password = unquote(u.password)
        path = path or unquote(u.path)
    if not url:
        raise ConfigError("webdav-url required for webdav replica")
    return WebDAVSettings(url=url, username=username, password=password, path=path)


def from_config(rc: ReplicaConfig) -> WebDAVReplicaClient:
    return WebDAVReplicaClient(settings_from_config(rc))


def _http_date_ns(text: str | None) -> int:
    """getlastmodified (an RFC 1123 date) in Unix nanoseconds; 0 if absent or unreadable."""
    if not text:
        return 0
    from email.utils import parsedate_to_datetime

    try:
        dt = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return 0
    if dt.tzinfo is None:
        import datetime

        dt = dt.replace(tzinfo=datetime.UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Entry:
    name: str
    is_dir: bool
    size: int
    modified_ns: int


# ------------------------------------------------------------------------------------------- streams

class _Body(ReadStream):
    """A streamed GET body as a readable file (at most `limit` bytes, after skipping `skip`); closing it
    closes the response."""

    def __init__(self, resp: Any, where: str, skip: int = 0, limit: int = 0) -> None:
        self._resp, self._where = resp, where
        self._it = resp.iter_bytes(READ_CHUNK)
        self._buf = b""
        self._left = limit if limit > 0 else -1
        self._skip = skip
        self._closed = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        import httpx

        try:
            return next(self._it, b"")
        except httpx.TimeoutException:
            raise BackendError(f"webdav: read {self._where}: timed out") from None
        except httpx.HTTPError as e:
            raise BackendError(f"webdav: read {self._where}: {_one_line(e)}") from None

    def read(self, n: int = -1) -> bytes:
        if self._closed:
            raise ValueError("read of a closed stream")
        while self._skip > 0:  # a server that ignored the Range header: read through to the offset
            chunk = self._buf or self._next()
            self._buf = b""
            if not chunk:
                self._skip = 0
                self._left = 0
                break
            if len(chunk) > self._skip:
                self._buf = chunk[self._skip:]
            self._skip -= min(self._skip, len(chunk))
        if self._left == 0:
            return b""
        if n is None or n < 0:
            out = bytearray(self._buf)
            self._buf = b""
            while chunk := self._next():
                out += chunk
            data = bytes(out)
        else:
            if not self._buf:
                self._buf = self._next()
            data, self._buf = self._buf[:n], self._buf[n:]
        if self._left > 0:
            data = data[: self._left]
            self._left -= len(data)
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._resp.close()


# -------------------------------------------------------------------------------------------- client

class WebDAVReplicaClient:
    type = "webdav"

    def __init__(self, settings: WebDAVSettings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not settings.url:
            raise BackendError("webdav-url required for webdav replica")
        self.settings = settings
        self.timeout_s = timeout_s
        u = urlsplit(settings.url)
        # Credentials written into webdav-url count when the keys give none; they never appear in a
        # message or log line.
        self._user = settings.username or unquote(u.username or "")
        self._password = settings.password or unquote(u.password or "")
        netloc = u.netloc.rpartition("@")[2]
        self._base = urlunsplit((u.scheme or "http", netloc, u.path.rstrip("/"), "", ""))
        self._lock = threading.Lock()
        self._client: Any = None
        self._checked = False
        self._dirs: set[str] = set()  # collections known to exist (no MKCOL per write)
        self._mkcol_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WebDAVReplicaClient(url={self._base!r}, path={self.settings.path!r})"

    @property
    def path(self) -> str:
        return self.settings.path

    def level_dir(self, level: int) -> str:
        return go_join(self.settings.path, "ltx", str(level))

    def ltx_path(self, level: int, min_txid: int, max_txid: int) -> str:
        return go_join(self.level_dir(level), format_filename(min_txid, max_txid))

    def _url(self, path: str, collection: bool = False) -> str:
        p = quote(path.strip("/"), safe=_PATH_SAFE)
        url = f"{self._base}/{p}" if p else self._base + "/"
        return url + "/" if collection and not url.endswith("/") else url

    # -- http

    def _http(self) -> Any:
        with self._lock:
            if self._client is None:
                httpx = require_sdk("httpx", "webdav", "webdav")
                import ssl

                auth = httpx.BasicAuth(self._user, self._password) if self._user or self._password else None
                self._client = httpx.Client(
                    auth=auth, timeout=httpx.Timeout(self.timeout_s), follow_redirects=False,
                    # The system's roots (SSL_CERT_FILE/SSL_CERT_DIR honoured), as Go's client uses,
                    # rather than httpx's bundled certifi.
                    verify=ssl.create_default_context(),
                    # Environment proxies, except for a loopback server, which Go never proxies either.
                    trust_env=not _is_loopback(urlsplit(self._base).hostname or ""),
                    # No cap on connections: an open file holds one until it is closed, and a merge opens
                    # all its inputs at once (a capped pool would make the next open wait, then fail).
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=POOL_SIZE),
                    # identity: a Range counts the file's own bytes, never a compressed form of them.
                    headers={"User-Agent": "litestream", "Accept-Encoding": "identity"})
            return self._client

    def _request(self, method: str, url: str, op: str, *, ok: tuple[int, ...], missing_ok: bool = False,
                 headers: dict[str, str] | None = None, content: Any = None, stream: bool = False) -> Any:
        """One request; a status outside `ok` is an error (404 a NotFoundError unless missing_ok, 401 and
        403 an AuthError), as one line naming the operation and URL, never the credentials."""
        import httpx

        client = self._http()
        try:
            req = client.build_request(method, url, headers=headers, content=content)
            resp = client.send(req, stream=stream)
        except httpx.TimeoutException:
            raise BackendError(f"webdav: {op} {url}: timed out") from None
        except httpx.HTTPError as e:
            raise BackendError(f"webdav: {op} {url}: {_one_line(e)}") from None
        code = resp.status_code
        if code in ok or (missing_ok and code == 404):
            return resp
        with contextlib.suppress(Exception):
            resp.close()
        status = f"HTTP {code} {resp.reason_phrase}".rstrip()
        if code in (401, 403):
            raise AuthError(f"webdav: {op} {url}: access denied ({status}); check webdav-username and "
                            f"webdav-password and the server's permissions")
        if code == 404:
            raise NotFoundError(f"webdav: {op} {url}: file not found")
        raise BackendError(f"webdav: {op} {url}: {status}")

    def init(self) -> None:
        """OPTIONS on the server's root, once, as the reference's Connect: wrong credentials show here."""
        if self._checked:
            return
        resp = self._request("OPTIONS", self._base + "/", "connect to", ok=tuple(range(200, 300)))
        resp.close()
        self._checked = True

    # -- listing

    def _propfind(self, d: str, op: str) -> Iterator[_Entry]:
        """The members of a collection (PROPFIND Depth 1, parsed as the answer streams in); nothing for a
        collection that does not exist."""
        import xml.etree.ElementTree as ET

        import httpx

        url = self._url(d, collection=True)
        resp = self._request("PROPFIND", url, op, ok=(207,), missing_ok=True, stream=True,
                             content=_PROPFIND_BODY,
                             headers={"Depth": "1", "Content-Type": 'application/xml; charset="utf-8"'})
        try:
            if resp.status_code == 404:
                return
            self_path = unquote(urlsplit(url).path).rstrip("/")
            parser = ET.XMLPullParser(events=("end",))
            try:
                for chunk in resp.iter_bytes(READ_CHUNK):
                    parser.feed(chunk)
                    yield from self._entries(parser, self_path)
                parser.close()
                yield from self._entries(parser, self_path)
            except ET.ParseError as e:
                raise BackendError(f"webdav: {op} {url}: bad PROPFIND answer ({e})") from None
            except httpx.TimeoutException:
                raise BackendError(f"webdav: {op} {url}: timed out") from None
            except httpx.HTTPError as e:
                raise BackendError(f"webdav: {op} {url}: {_one_line(e)}") from None
        finally:
            resp.close()

    @staticmethod
    def _entries(parser: Any, self_path: str) -> Iterator[_Entry]:
        for _event, el in parser.read_events():
            if el.tag != _DAV + "response":
                continue
            href = el.findtext(_DAV + "href") or ""
            path = unquote(urlsplit(href.strip()).path).rstrip("/")
            props = None
            for ps in el.findall(_DAV + "propstat"):
                status = ps.findtext(_DAV + "status") or ""
                if " 200 " in f"{status} " or not status:
                    props = ps.find(_DAV + "prop")
                    break
            el.clear()  # a listing of many files is parsed in constant memory
            if path == self_path or props is None:
                continue
            rtype = props.find(_DAV + "resourcetype")
            is_dir = rtype is not None and rtype.find(_DAV + "collection") is not None
            try:
                size = int((props.findtext(_DAV + "getcontentlength") or "0").strip())
            except ValueError:
                size = 0
            yield _Entry(path.rsplit("/", 1)[-1], is_dir, size, _http_date_ns(props.findtext(_DAV + "getlastmodified")))

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        rows = []
        for e in self._propfind(self.level_dir(level), "list"):
            if e.is_dir:
                continue
            txids = parse_filename(e.name)
            if txids is None or txids[0] < seek:
                continue
            rows.append((e.name, txids, e.size, e.modified_ns))
        rows.sort(key=lambda r: r[0])
        for _name, (lo, hi), size, modified in rows:
            yield FileInfo(level, lo, hi, size, modified)

    # -- reads

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        url = self._url(self.ltx_path(level, min_txid, max_txid))
        headers = {}
        if size > 0:
            headers["Range"] = f"bytes={offset}-{offset + size - 1}"
        elif offset > 0:
            headers["Range"] = f"bytes={offset}-"
        resp = self._request("GET", url, "get", ok=(200, 206, 416), headers=headers, stream=True)
        if resp.status_code == 416:
            # The offset is at or past the end: nothing to read (the file exists, or it would be a 404).
            resp.close()
            return _Body(_Empty(), url)  # type: ignore[return-value]
        if resp.status_code == 206:
            return _Body(resp, url, 0, size)  # type: ignore[return-value]
        return _Body(resp, url, offset, size)  # type: ignore[return-value]

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        return None

    # -- writes

    def _mkcol(self, d: str) -> None:
        """MKCOL of a directory after its missing parents (mkdir -p); one that exists is fine. One thread
        at a time: concurrent first writes to a level would otherwise race to make the same directories
        (Apache answers the loser with 403)."""
        if not d or d in (".", "/") or d in self._dirs:
            return
        with self._mkcol_lock:
            self._mkcol_locked(d)

    def _mkcol_locked(self, d: str) -> None:
        if not d or d in (".", "/") or d in self._dirs:
            return
        url = self._url(d, collection=True)
        # 201: made; 405: exists (RFC 4918); 409: a parent is missing.
        code = self._make_collection(url)
        if code == 409:
            parent = d.rsplit("/", 1)[0] if "/" in d.strip("/") else ""
            self._mkcol_locked(parent)
            code = self._make_collection(url)
        if code not in (200, 201, 204, 405):
            raise BackendError(f"webdav: create directory {url}: HTTP {code}")
        self._dirs.add(d)

    def _make_collection(self, url: str) -> int:
        try:
            resp = self._request("MKCOL", url, "create directory", ok=(200, 201, 204, 405, 409))
        except (AuthError, BackendError):
            # Another writer (a second process on this replica) may have made it meanwhile, which some
            # servers answer with 403 or 500: what counts is that the collection is there now.
            if self._is_collection(url):
                return 405
            raise
        resp.close()
        return resp.status_code

    def _is_collection(self, url: str) -> bool:
        try:
            resp = self._request("PROPFIND", url, "stat", ok=(207,), content=_PROPFIND_BODY,
                                 headers={"Depth": "0", "Content-Type": 'application/xml; charset="utf-8"'})
        except BackendError:
            return False
        ok = b"collection" in resp.content
        resp.close()
        return ok

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        final = self.ltx_path(level, min_txid, max_txid)
        tmp = f"{final}.{os.getpid()}.{time.time_ns()}.tmp"
        d = final.rsplit("/", 1)[0] if "/" in final else ""
        self._mkcol(d)
        tmp_url, final_url = self._url(tmp), self._url(final)
        put = False
        done = False
        try:
            with src.reader() as f, _sized(f, src.size) as (body, size):
                sent = [0]
                put = True
                resp = self._request("PUT", tmp_url, "put", ok=(200, 201, 204),
                                     headers={"Content-Length": str(size),
                                              "Content-Type": "application/octet-stream"},
                                     content=_pieces(body, size, sent, final_url))
                resp.close()
            resp = self._request("MOVE", tmp_url, "move", ok=(200, 201, 204),
                                 headers={"Destination": final_url, "Overwrite": "T"})
            resp.close()
            done = True
        except NotFoundError as e:
            # A PUT into a collection that went away (a delete_all meanwhile) answers 409 or 404: forget
            # the directories, so the next attempt makes them again.
            self._dirs.clear()
            raise BackendError(str(e)) from None
        except BackendError as e:
            if "HTTP 409" in str(e):
                self._dirs.clear()
            raise
        finally:
            if put and not done:
                with contextlib.suppress(BackendError):
                    self._request("DELETE", tmp_url, "delete", ok=(200, 202, 204), missing_ok=True).close()
        return FileInfo(level, min_txid, max_txid, size, timestamp_ms * 1_000_000)

    # -- deletes

    def _delete(self, path: str, collection: bool = False) -> None:
        self._request("DELETE", self._url(path, collection), "delete", ok=(200, 202, 204),
                      missing_ok=True).close()

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        paths = [self.ltx_path(i.level, i.min_txid, i.max_txid) for i in infos]
        if not paths:
            return
        log.debug("deleting ltx files", url=self._base, count=len(paths))
        if len(paths) == 1:
            self._delete(paths[0])
            return
        with ThreadPoolExecutor(max_workers=min(DELETE_CONCURRENCY, len(paths))) as pool:
            for fut in [pool.submit(self._delete, p) for p in paths]:
                fut.result()

    def _root(self) -> str:
        """What delete_all removes: the replica's collection; at the server's root only its `ltx` tree,
        never the whole share."""
        return replica_root(self.settings.path)

    def delete_all(self) -> None:
        self._dirs.clear()
        self._delete(self._root(), collection=True)
        self._dirs.clear()

    def clean_temp(self) -> int:
        """Remove the temporary files of uploads a crash cut short (between PUT and MOVE). Called at
        start, while no write of this replica is under way; failures are only logged."""
        try:
            ltx = go_join(self.settings.path, "ltx")
            stale = [go_join(ltx, lv.name, e.name)
                     for lv in list(self._propfind(ltx, "list")) if lv.is_dir
                     for e in list(self._propfind(go_join(ltx, lv.name), "list"))
                     if not e.is_dir and _TMP_RE.fullmatch(e.name)]
            for p in stale:
                self._delete(p)
            return len(stale)
        except BackendError as e:
            log.debug("webdav: cannot remove temporary files", error=str(e))
            return 0

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        close_quietly(client)


class _Empty:
    def iter_bytes(self, _n: int) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _sized(f: BinaryIO, size: int | None) -> Iterator[tuple[BinaryIO, int]]:
    """The source and its size; a stream of unknown size is spooled first, as every WebDAV server takes
    a Content-Length but not all take a chunked body."""
    if size is not None:
        yield f, size
        return
    with tempfile.TemporaryFile(prefix="litestream-webdav-") as spool:
        n = 0
        while chunk := f.read(UPLOAD_CHUNK):
            spool.write(chunk)
            n += len(chunk)
        spool.seek(0)
        yield spool, n  # type: ignore[misc]


def _pieces(f: BinaryIO, size: int, sent: list[int], where: str) -> Iterator[bytes]:
    """The PUT body: exactly `size` bytes of the source. A source that ends early or runs on is an error
    (raised into the request, which is then cut: the server keeps nothing of it)."""
    while sent[0] < size:
        chunk = f.read(min(UPLOAD_CHUNK, size - sent[0]))
        if not chunk:
            raise BackendError(f"webdav: put {where}: the source ended after {sent[0]} of {size} bytes")
        sent[0] += len(chunk)
        yield chunk


__all__ = ["WebDAVReplicaClient", "WebDAVSettings", "from_config", "settings_from_config"]
