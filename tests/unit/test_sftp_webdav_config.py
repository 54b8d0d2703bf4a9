"""The sftp and webdav backends without a server: how config keys and URLs become a client (messages
checked against the reference binary, `litestream ltx -config FILE DB`), the layout, host keys, how
failures are classified (httpx's MockTransport stands in for a WebDAV server), and that paramiko and
httpx load only when a replica of their type is used."""

from __future__ import annotations

import base64
import io
import socket
import subprocess
import sys
import threading
import time

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, Source, sftp, webdav
from tests.unit.configutil import client, error

ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIC8vLjOHxlIpNXEs3zMWz9Tjej8i9G5ofEiiBS3ACsIW"  # a public key blob


# ---------------------------------------------------------------------------------------------- sftp


def test_sftp_url_form():
    c = client(url="sftp://alice:s3cret@example.com:2222/data/db")
    s = c.settings
    assert (c.type, s.host, s.user, s.password, s.path) == ("sftp", "example.com:2222", "alice", "s3cret", "/data/db")
    # The URL's path is taken as it is, leading slash and all: an absolute path on the server.
    assert c.ltx_path(0, 1, 2) == "/data/db/ltx/0/0000000000000001-0000000000000002.ltx"
    assert sftp.split_host_port(s.host) == ("example.com", 2222)
    assert s.concurrent_writes is True
    # Escapes in user and password are decoded.
    c = client(url="sftp://al%40ice:p%3Aw@h/x")
    assert (c.settings.user, c.settings.password) == ("al@ice", "p:w")


def test_sftp_keys_and_precedence():
    c = client(type="sftp", host="h", user="u", password="pw", path="rel/db", **{"key-path": "/k",
               "host-key": f"ssh-ed25519 {ED25519}", "concurrent-writes": False})
    s = c.settings
    assert (s.host, s.user, s.password, s.path, s.key_path, s.concurrent_writes) == \
        ("h", "u", "pw", "rel/db", "/k", False)
    assert sftp.split_host_port("h") == ("h", 22)  # port 22 when none is given
    # Keys beat the URL's user and password (the URL cannot be combined with host or path).
    c = client(url="sftp://urluser:urlpw@h/p", user="keyuser", password="keypw")
    assert (c.settings.user, c.settings.password, c.settings.path) == ("keyuser", "keypw", "/p")
    # A relative path is relative to the login directory, as the server resolves it.
    assert client(type="sftp", host="h", user="u", path="a/b").ltx_path(9, 1, 1) == \
        "a/b/ltx/9/0000000000000001-0000000000000001.ltx"
    assert client(type="sftp", host="h", user="u").level_dir(3) == "ltx/3"


@pytest.mark.parametrize(("mapping", "msg"), [
    ({"type": "sftp", "path": "/x"}, "host required for sftp replica"),
    ({"type": "sftp", "host": "h"}, "user required for sftp replica"),
    ({"url": "sftp://h/x"}, "user required for sftp replica"),
    ({"url": "sftp://u@h/x", "path": "/y"}, "cannot specify url & path for sftp replica"),
    ({"url": "sftp://u@h/x", "host": "h2"}, "cannot specify url & host for sftp replica"),
    ({"url": "sftp://u@h:bad/x"}, 'parse "sftp://u@h:bad/x": invalid port ":bad" after host'),
    # The reference echoes the password here; it is masked as in its logs.
    ({"url": "sftp://u:pw@h:bad/x"}, 'parse "sftp://u:xxxxx@h:bad/x": invalid port ":bad" after host'),
])
def test_sftp_errors(mapping, msg):
    assert error(**mapping) == msg


def test_host_ports():
    assert sftp.split_host_port("127.0.0.1:2222") == ("127.0.0.1", 2222)
    assert sftp.split_host_port("[::1]:2200") == ("::1", 2200)
    assert sftp.split_host_port("[::1]") == ("::1", 22)
    assert sftp.split_host_port("::1") == ("::1", 22)


def test_host_key_lines():
    blob = base64.b64decode(ED25519)
    assert sftp.parse_host_key(f"ssh-ed25519 {ED25519}") == ("ssh-ed25519", blob)
    # authorized_keys form: options before, a comment after.
    assert sftp.parse_host_key(f'from="10.0.0.1" ssh-ed25519 {ED25519} host@example') == ("ssh-ed25519", blob)
    for bad in ("garbage", f"ssh-rsa {ED25519}", "ssh-ed25519 !!!", ""):
        with pytest.raises(BackendError) as e:
            sftp.parse_host_key(bad)
        assert str(e.value) == "cannot parse sftp host key: ssh: no key found"  # the reference's message


def test_sftp_messages_never_hold_the_password():
    c = client(url="sftp://alice:s3cret@example.com:2222/data/db")
    assert "s3cret" not in repr(c) and "s3cret" not in repr(c.settings)
    assert c._where("/data/db/ltx/0") == "sftp://alice@example.com:2222/data/db/ltx/0"
    assert client(type="sftp", host="h", user="u", path="rel")._where("rel/ltx") == "sftp://u@h/~/rel/ltx"


def test_sftp_delete_all_root():
    assert client(type="sftp", host="h", user="u", path="/srv/db/")._root() == "/srv/db"
    # At the login directory or the server's root, only litestream's part goes, never the whole tree.
    assert client(type="sftp", host="h", user="u")._root() == "ltx"
    assert client(type="sftp", host="h", user="u", path="/")._root() == "/ltx"
    assert client(type="sftp", host="h", user="u", path=".")._root() == "ltx"


def test_sftp_failures_are_classified():
    c = client(type="sftp", host="h", user="u", password="pw", path="/p")
    assert isinstance(c._error(FileNotFoundError(2, "x"), "open", "/p/a", None), NotFoundError)
    e = c._error(PermissionError(13, "x"), "write", "/p/a", None)
    assert isinstance(e, AuthError) and str(e) == "sftp: write sftp://u@h/p/a: permission denied"
    e = c._error(OSError("Failure"), "rename", "/p/a", None)
    assert type(e) is BackendError and str(e) == "sftp: rename sftp://u@h/p/a: Failure"
    e = c._error(TimeoutError(), "read", "/p/a", None)
    assert isinstance(e, sftp._ConnLost) and str(e) == "sftp: read sftp://u@h/p/a: timed out"


def test_sftp_connect_times_out(tmp_path):
    """A server that accepts the connection and never speaks: init fails within the timeout."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        c = sftp.SFTPReplicaClient(sftp.SFTPSettings(host=f"127.0.0.1:{port}", user="u", password="pw"),
                                   timeout_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(BackendError) as e:
            c.init()
        assert time.monotonic() - t0 < 10
        assert "pw" not in str(e.value)
        c.close()


def test_sftp_bad_key_path(tmp_path):
    c = client(type="sftp", host="127.0.0.1:1", user="u", **{"key-path": str(tmp_path / "nope")})
    with pytest.raises(AuthError) as e:
        c.init()
    assert str(e.value) == f"sftp: cannot read sftp key path: open {tmp_path / 'nope'}: no such file or directory"
    (tmp_path / "junk").write_text("not a key")
    c = client(type="sftp", host="127.0.0.1:1", user="u", **{"key-path": str(tmp_path / "junk")})
    with pytest.raises(AuthError, match=r"^sftp: cannot parse sftp key path: "):
        c.init()


# -------------------------------------------------------------------------------------------- webdav


def test_webdav_url_forms():
    c = client(url="webdav://bob:pw@dav.example.com:8080/backups/db")
    s = c.settings
    assert (c.type, s.url, s.username, s.password, s.path) == \
        ("webdav", "http://dav.example.com:8080", "bob", "pw", "/backups/db")
    assert client(url="webdavs://dav.example.com/x").settings.url == "https://dav.example.com"
    assert c._url(c.ltx_path(0, 1, 2)) == \
        "http://dav.example.com:8080/backups/db/ltx/0/0000000000000001-0000000000000002.ltx"
    # Keys beat the URL's credentials.
    c = client(url="webdav://bob:pw@h/x", **{"webdav-username": "k", "webdav-password": "kp"})
    assert (c.settings.username, c.settings.password) == ("k", "kp")


def test_webdav_keys_and_layout():
    c = client(type="webdav", path="a b/c", **{"webdav-url": "https://u:p@h/dav/", "webdav-username": ""})
    # A base path in webdav-url is kept; credentials written into it are used, never shown.
    assert c._base == "https://h/dav"
    assert (c._user, c._password) == ("u", "p")
    assert "p@" not in repr(c)
    assert c._url(c.level_dir(9), collection=True) == "https://h/dav/a%20b/c/ltx/9/"
    assert c._url("") == "https://h/dav/"
    assert client(type="webdav", **{"webdav-url": "http://h"})._root() == "ltx"
    assert client(type="webdav", path="/x/y/", **{"webdav-url": "http://h"})._root() == "/x/y"


@pytest.mark.parametrize(("mapping", "msg"), [
    ({"type": "webdav", "path": "x"}, "webdav-url required for webdav replica"),
    ({"url": "webdav:///x"}, "webdav-url required for webdav replica"),
    ({"url": "webdav://h/x", "webdav-url": "http://h"}, "cannot specify url & webdav-url for webdav replica"),
    ({"url": "webdav://h/x", "path": "y"}, "cannot specify url & path for webdav replica"),
])
def test_webdav_errors(mapping, msg):
    assert error(**mapping) == msg


def test_http_dates():
    assert webdav._http_date_ns("Wed, 02 Dec 2026 17:03:37 GMT") == 1796231017 * 1_000_000_000
    assert webdav._http_date_ns("") == 0 and webdav._http_date_ns("yesterday") == 0


MULTISTATUS = b"""<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">
<D:response><D:href>/r/ltx/0/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype>
<D:getlastmodified>Wed, 02 Dec 2026 17:03:37 GMT</D:getlastmodified></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>http://h/r/ltx/0/0000000000000002-0000000000000002.ltx</D:href><D:propstat><D:prop>
<D:resourcetype/><D:getcontentlength>42</D:getcontentlength>
<D:getlastmodified>Wed, 02 Dec 2026 17:03:38 GMT</D:getlastmodified></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/r/ltx/0/0000000000000001-0000000000000001.ltx</D:href><D:propstat><D:prop>
<D:resourcetype/><D:getcontentlength>7</D:getcontentlength>
<D:getlastmodified>Wed, 02 Dec 2026 17:03:37 GMT</D:getlastmodified></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/r/ltx/0/sub%20dir/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/>
</D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/r/ltx/0/0000000000000003-0000000000000003.ltx.1.2.tmp</D:href><D:propstat><D:prop>
<D:resourcetype/><D:getcontentlength>1</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status>
</D:propstat></D:response>
</D:multistatus>"""


class FakeDAV:
    """A WebDAV server in httpx's MockTransport: files in a dict, requests recorded."""

    def __init__(self, ignore_range: bool = False, status: int | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list = []
        self.ignore_range = ignore_range
        self.status = status

    def handler(self, request):
        import httpx

        body = request.read()
        self.requests.append((request.method, request.url.path, dict(request.headers), body))
        if self.status is not None:
            return httpx.Response(self.status)
        path = request.url.path
        if request.method == "OPTIONS":
            return httpx.Response(200)
        if request.method == "PROPFIND":
            return httpx.Response(207, content=MULTISTATUS) if path == "/r/ltx/0/" else httpx.Response(404)
        if request.method == "MKCOL":
            return httpx.Response(405)
        if request.method == "PUT":
            self.files[path] = body
            return httpx.Response(201)
        if request.method == "MOVE":
            dst = httpx.URL(request.headers["Destination"]).path
            self.files[dst] = self.files.pop(path)
            return httpx.Response(201)
        if request.method == "DELETE":
            return httpx.Response(204 if self.files.pop(path, None) is not None else 404)
        if request.method == "GET":
            if path not in self.files:
                return httpx.Response(404)
            data = self.files[path]
            rng = request.headers.get("Range")
            if rng and not self.ignore_range:
                lo, _, hi = rng.removeprefix("bytes=").partition("-")
                if int(lo) >= len(data):
                    return httpx.Response(416)
                part = data[int(lo): int(hi) + 1 if hi else None]
                return httpx.Response(206, content=part)
            return httpx.Response(200, content=data)
        return httpx.Response(405)


def dav_client(fake: FakeDAV, **kw):
    import httpx

    c = client(type="webdav", path="/r", **{"webdav-url": "http://h", "webdav-username": "u",
                                           "webdav-password": "hunter2"}, **kw)
    c._client = httpx.Client(transport=httpx.MockTransport(fake.handler), auth=httpx.BasicAuth("u", "hunter2"),
                             headers={"Accept-Encoding": "identity"})
    return c


def test_webdav_listing_parses_multistatus():
    c = dav_client(FakeDAV())
    got = list(c.ltx_files(0))
    assert [(i.min_txid, i.size, i.created_at_ns) for i in got] == [
        (1, 7, 1796231017 * 10**9), (2, 42, 1796231018 * 10**9)]  # sorted; dirs and temp files skipped
    assert [i.min_txid for i in c.ltx_files(0, seek=2)] == [2]
    assert list(c.ltx_files(1)) == []  # 404: an empty level


def test_webdav_write_is_put_with_length_then_move():
    fake = FakeDAV()
    c = dav_client(fake)
    data = bytes(range(256)) * 40
    info = c.write_ltx_file(0, 5, 5, Source.of(io.BytesIO(data), len(data)), 1_000)
    assert info.size == len(data)
    put = next(r for r in fake.requests if r[0] == "PUT")
    assert put[1].startswith("/r/ltx/0/0000000000000005-0000000000000005.ltx.") and put[1].endswith(".tmp")
    assert put[2]["content-length"] == str(len(data)) and "transfer-encoding" not in put[2]
    move = next(r for r in fake.requests if r[0] == "MOVE")
    assert move[2]["destination"] == "http://h/r/ltx/0/0000000000000005-0000000000000005.ltx"
    assert move[2]["overwrite"] == "T"
    assert fake.files == {"/r/ltx/0/0000000000000005-0000000000000005.ltx": data}
    # A stream of unknown size is spooled to learn its length.
    c.write_ltx_file(0, 6, 6, Source.of(io.BytesIO(data)), 1_000)
    put = [r for r in fake.requests if r[0] == "PUT"][-1]
    assert put[2]["content-length"] == str(len(data))


def test_webdav_short_source_leaves_nothing():
    fake = FakeDAV()
    c = dav_client(fake)
    with pytest.raises((BackendError, OSError)):
        c.write_ltx_file(0, 5, 5, Source.of(io.BytesIO(b"x" * 100), 1000), 1_000)
    assert fake.files == {}
    assert "MOVE" not in [r[0] for r in fake.requests]


@pytest.mark.parametrize("ignore_range", [False, True])
def test_webdav_ranged_reads(ignore_range):
    fake = FakeDAV(ignore_range=ignore_range)
    c = dav_client(fake)
    data = bytes(range(256)) * 1000
    c.write_ltx_file(0, 1, 1, Source.of(io.BytesIO(data), len(data)), 1_000)

    def read(offset=0, size=0):
        with c.open_ltx_file(0, 1, 1, offset, size) as f:
            return f.read()

    assert read() == data
    assert read(100) == data[100:]
    assert read(100, 1000) == data[100:1100]
    assert read(len(data) - 5, 100) == data[-5:]
    assert read(len(data) + 10) == b""  # past the end: nothing (416, or a read-through)
    gets = [r for r in fake.requests if r[0] == "GET"]
    assert "range" not in gets[0][2] and gets[2][2]["range"] == "bytes=100-1099" and gets[1][2]["range"] == "bytes=100-"
    with pytest.raises(NotFoundError):
        c.open_ltx_file(0, 9, 9)


def test_webdav_auth_and_server_errors_are_one_line_without_password():
    c = dav_client(FakeDAV(status=401))
    with pytest.raises(AuthError) as e:
        c.init()
    assert str(e.value) == ("webdav: connect to http://h/: access denied (HTTP 401 Unauthorized); check "
                            "webdav-username and webdav-password and the server's permissions")
    with pytest.raises(AuthError):
        list(c.ltx_files(0))
    c = dav_client(FakeDAV(status=403))
    with pytest.raises(AuthError) as e:
        c.write_ltx_file(0, 1, 1, Source.of(io.BytesIO(b"x"), 1), 1)
    assert "hunter2" not in str(e.value)
    c = dav_client(FakeDAV(status=500))
    with pytest.raises(BackendError) as e:
        list(c.ltx_files(0))
    assert type(e.value) is BackendError
    assert str(e.value) == "webdav: list http://h/r/ltx/0/: HTTP 500 Internal Server Error"


def test_webdav_delete_ignores_missing():
    fake = FakeDAV()
    c = dav_client(fake)
    from litestream.ltx import FileInfo

    c.delete_ltx_files([FileInfo(0, 1, 1, 0, 0), FileInfo(0, 2, 2, 0, 0)])  # both 404
    c.delete_all()  # 404
    assert [r[1] for r in fake.requests if r[0] == "DELETE"][-1] == "/r/"


def test_webdav_request_times_out():
    """A server that accepts the connection and never answers: the request fails within the timeout."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        held = []
        stop = threading.Event()

        def accept():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(srv.accept()[0])
                except OSError:
                    pass

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        c = webdav.WebDAVReplicaClient(webdav.WebDAVSettings(url=f"http://127.0.0.1:{port}", path="x"),
                                       timeout_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="timed out"):
            list(c.ltx_files(0))
        assert time.monotonic() - t0 < 10
        c.close()
        stop.set()
        t.join()
        for s in held:
            s.close()


# ---------------------------------------------------------------------------------------------- SDKs


def test_modules_import_without_their_sdks():
    code = ("import sys; import litestream.backends.sftp, litestream.backends.webdav\n"
            "from litestream.backends import new_replica_client\n"
            "from litestream.config import ReplicaConfig\n"
            "new_replica_client(ReplicaConfig(url='sftp://u@h/x'))\n"
            "new_replica_client(ReplicaConfig(url='webdav://h/x'))\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paramiko', 'httpx', 'cryptography')))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr
