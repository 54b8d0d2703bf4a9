"""SFTP and WebDAV specifics against their real servers (OpenSSH's sshd, Apache mod_dav): the exact files
on the server's disk and their mtimes, no temporary file left by a write that failed or one a crash cut
short, the host-key check and its warning, a lost connection made again, channels shared between an
open stream and an upload of the same client, password login as a real system account (config and
URL forms, a wrong password), and the reference reading what ours wrote by URL."""

from __future__ import annotations

import io
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, Source, sftp
from tests.conftest import run_ours
from tests.refbin import run_ref
from tests.servers import config_text
from tests.servers import sshd as sshds

from .helpers import client_for, init_error
from .test_conformance import TS, ltx_bytes, names, put, read_all

NAME = "0000000000000001-0000000000000001.ltx"


def tree(root) -> list[str]:
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


class Broken(io.RawIOBase):
    """A source that fails after 200 kB."""

    def __init__(self) -> None:
        self.n = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.n > 200_000:
            raise OSError("disk read error (test)")
        b[:] = b"\x01" * len(b)
        self.n += len(b)
        return len(b)


# ---------------------------------------------------------------------------------------------- sftp


def test_sshd_layout_and_mtimes(sshd, prefix):
    c = client_for(sshd.replica(prefix))
    try:
        put(c, 0, 1, 1)
        put(c, 9, 1, 7, ts=TS + 2500)
        root = sshd.root / prefix
        assert tree(root) == [f"ltx/0/{NAME}", "ltx/9/0000000000000001-0000000000000007.ltx"]
        # The mtime is the header timestamp in whole seconds (all SFTP v3 can set), as the reference's.
        assert os.stat(root / "ltx/0" / NAME).st_mtime_ns == TS // 1000 * 10**9
        assert [i.created_at_ns for i in c.ltx_files(9)] == [(TS + 2500) // 1000 * 10**9]
        # use_metadata reads the header: the millisecond too.
        assert [i.created_at_ns for i in c.ltx_files(9, 0, True)] == [(TS + 2500) * 10**6]
        # Names that are no LTX file name, and directories, are not listed.
        (root / "ltx/0/notes.txt").write_text("x")
        (root / "ltx/0/0000000000000005-0000000000000005.ltx").mkdir()
        assert names(c, 0) == [(1, 1)]
    finally:
        c.close()


def test_sshd_failed_write_leaves_no_temporary_file(sshd, prefix):
    c = client_for(sshd.replica(prefix))
    try:
        put(c, 0, 1, 1)
        with pytest.raises((BackendError, OSError)):
            c.write_ltx_file(0, 2, 2, Source.of(io.BufferedReader(Broken()), 400_000), TS)
        # A source shorter than it said is refused, not stored.
        with pytest.raises(BackendError, match="the source ended after 100 of 1000 bytes"):
            c.write_ltx_file(0, 3, 3, Source.of(io.BytesIO(b"x" * 100), 1000), TS)
        assert tree(sshd.root / prefix) == [f"ltx/0/{NAME}"]
        assert names(c, 0) == [(1, 1)]
    finally:
        c.close()


def test_sshd_clean_temp_removes_only_crash_leftovers(sshd, prefix):
    c = client_for(sshd.replica(prefix))
    try:
        put(c, 0, 1, 1)
        level = sshd.root / prefix / "ltx/0"
        (level / f"{NAME}.1234.1700000000000000000.tmp").write_bytes(b"partial")
        (level / "keep.tmp").write_bytes(b"not ours")
        assert c.clean_temp() == 1
        assert sorted(os.listdir(level)) == [NAME, "keep.tmp"]
    finally:
        c.close()


def test_sshd_overwrite_is_atomic_for_open_readers(sshd, prefix):
    """posix-rename replaces the file in one step: a stream opened before keeps reading the old file whole,
    and every listing shows one file, old or new, never none."""
    c = client_for(sshd.replica(prefix))
    try:
        old, new = ltx_bytes(1, 4, pages=200), ltx_bytes(1, 4, pages=3)
        put(c, 1, 1, 4, old)
        with c.open_ltx_file(1, 1, 4) as f:
            first = f.read(1000)
            stop = threading.Event()
            seen = []

            def watch():
                while not stop.is_set():
                    seen.append(len(names(c, 1)))

            t = threading.Thread(target=watch)
            t.start()
            try:
                for _ in range(5):
                    put(c, 1, 1, 4, new)
            finally:
                stop.set()
                t.join()
            rest = f.read()
        assert first + rest == old
        assert read_all(c, 1, 1, 4) == new
        assert seen and set(seen) == {1}
    finally:
        c.close()


def test_sshd_stream_feeds_an_upload_on_one_channel(sshd, prefix, monkeypatch):
    """A compaction copy reads a stream of the client while uploading through it: with a single channel
    the two take turns on its lock instead of waiting on each other; many threads at once too."""
    monkeypatch.setattr(sftp, "MAX_CHANNELS", 1)
    c = client_for(sshd.replica(prefix))
    try:
        data = ltx_bytes(1, 9, pages=1500, noise=True)  # several MiB: many refills and write batches
        put(c, 1, 1, 9, data)
        with c.open_ltx_file(1, 1, 9) as stream:
            c.write_ltx_file(2, 1, 9, Source.of(stream, len(data)), TS)
        assert read_all(c, 2, 1, 9) == data

        def work(t: int) -> bytes:
            put(c, 0, t, t, ltx_bytes(t, t, pages=20))
            return read_all(c, 0, t, t, 50, 5000)

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(work, range(1, 33)))
        assert got == [ltx_bytes(t, t, pages=20)[50:5050] for t in range(1, 33)]
        assert len(c._conn.channels) == 1
    finally:
        c.close()


def test_sshd_reconnects_after_the_connection_is_lost(sshd, prefix):
    c = client_for(sshd.replica(prefix))
    try:
        put(c, 0, 1, 1)
        # The connection dies under an idle client (a server restart, a NAT timeout): the next call makes
        # a new one and succeeds.
        c._conn.transport.close()
        assert names(c, 0) == [(1, 1)]
        c._conn.transport.close()
        put(c, 0, 2, 2)
        assert names(c, 0) == [(1, 1), (2, 2)]
        # A stream whose connection died fails with a BackendError (the caller opens it again).
        f = c.open_ltx_file(0, 1, 1)
        c._conn.transport.close()
        with pytest.raises(BackendError):
            f.read(10)
        f.close()
        assert read_all(c, 0, 1, 1) == ltx_bytes(1, 1)
    finally:
        c.close()


def test_sshd_host_key_is_checked(sshd, prefix):
    stranger = (sshd.keys / "stranger_key.pub").read_text().split()
    init_error({**sshd.replica(prefix), "host-key": " ".join(stranger[:2])}, AuthError, match="host key mismatch")


def test_sshd_wrong_key_and_password_are_not_shown(sshd, prefix):
    e = init_error({**sshd.bad_credentials(prefix), "password": "hunter2-secret"}, AuthError)
    assert "hunter2" not in str(e)
    assert "authentication failed for user" in str(e)


def test_sshd_unverified_host_key_warns_as_the_reference(sshd, prefix, tmp_path):
    db = tmp_path / "app.db"
    mapping = {k: v for k, v in sshd.replica(prefix).items() if k != "host-key"}
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), mapping)]))
    warn = f'level=WARN msg="sftp host key not verified" host=127.0.0.1:{sshd.port}'
    for run in (run_ours, run_ref):
        p = run("ltx", "-config", str(cfg), str(db), timeout=60)
        assert p.returncode == 0, p.stderr
        assert warn in p.stdout + p.stderr


def test_sshd_missing_file_and_empty_levels(sshd, prefix):
    c = client_for({**sshd.replica(prefix), "concurrent-writes": False})
    try:
        with pytest.raises(NotFoundError):
            c.open_ltx_file(0, 1, 1)
        put(c, 0, 1, 1)  # unpipelined writes (concurrent-writes: false) store the same bytes
        assert read_all(c, 0, 1, 1) == ltx_bytes(1, 1)
        assert read_all(c, 0, 1, 1, offset=10**6) == b""
    finally:
        c.close()


# ----------------------------------------------------------------------------- sftp password login


@pytest.fixture
def pw_sshd(sshd, prefix):
    """The sshd, for a test logging in as the password account (ci/servers/sshd.sh makes it as root); the
    test's files under that account's home are removed afterwards."""
    reason = sshd.password_ready()
    if reason is not None:
        pytest.skip(f"sftp password login not testable here: {reason}")
    yield sshd
    shutil.rmtree(os.path.join(sshd.password_home, prefix.split("/")[0]), ignore_errors=True)


def test_sshd_password_login_writes_lists_reads(pw_sshd, prefix):
    """user + password (no key) in the config and in the URL: both store and find the same files, which
    are the password account's own, under its home."""
    mapping = pw_sshd.password_replica(prefix)
    assert "key-path" not in mapping
    c = client_for(mapping)
    try:
        put(c, 0, 1, 1)
        put(c, 9, 1, 4)
        assert names(c, 0) == [(1, 1)] and names(c, 9) == [(1, 4)]
        assert read_all(c, 9, 1, 4) == ltx_bytes(1, 4)
        assert read_all(c, 0, 1, 1, offset=7, size=50) == ltx_bytes(1, 1)[7:57]
    finally:
        c.close()
    root = os.path.join(pw_sshd.password_home, prefix)
    assert tree(root) == [f"ltx/0/{NAME}", "ltx/9/0000000000000001-0000000000000004.ltx"]
    assert os.stat(os.path.join(root, "ltx/0", NAME)).st_uid == sshds.pwd.getpwnam(sshds.PASSWORD_USER).pw_uid
    url = pw_sshd.password_url(prefix)
    c = client_for({"type": "sftp", "url": url, "host-key": pw_sshd.host_key_line})
    try:
        assert c.settings.password == sshds.PASSWORD_USER_PASSWORD and not c.settings.key_path
        assert names(c, 0) == [(1, 1)]
        put(c, 0, 2, 2)
        assert read_all(c, 0, 2, 2) == ltx_bytes(2, 2)
    finally:
        c.close()
    # Our CLI by URL: the files listed, the password in no output.
    p = run_ours("ltx", url, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "0000000000000002" in p.stdout and sshds.PASSWORD_USER_PASSWORD not in p.stdout + p.stderr


def test_sshd_wrong_password_is_one_line_without_it(pw_sshd, prefix):
    wrong = "Wr0ng-pa55word-7319"
    for mapping in (pw_sshd.password_replica(prefix, password=wrong),
                    {"type": "sftp", "url": pw_sshd.password_url(prefix, password=wrong),
                     "host-key": pw_sshd.host_key_line}):
        msg = str(init_error(mapping, AuthError))
        assert "\n" not in msg, msg
        assert f"authentication failed for user {sshds.PASSWORD_USER}" in msg and "password" in msg, msg
        assert f"127.0.0.1:{pw_sshd.port}" in msg, msg
        assert wrong not in msg and "Wr0ng" not in msg and sshds.PASSWORD_USER_PASSWORD not in msg, msg
    # The right password still works after the failures (no lockout or penalty in the way).
    c = client_for(pw_sshd.password_replica(prefix))
    try:
        assert names(c, 0) == []
    finally:
        c.close()


# -------------------------------------------------------------------------------------------- webdav


def test_apache_dav_layout_and_no_temporary_files(dav, prefix):
    c = client_for(dav.replica(prefix))
    try:
        put(c, 0, 1, 1)
        put(c, 9, 1, 3)
        with pytest.raises((BackendError, OSError)):
            c.write_ltx_file(0, 2, 2, Source.of(io.BufferedReader(Broken()), 400_000), TS)
        assert tree(dav.data / prefix) == [f"ltx/0/{NAME}", "ltx/9/0000000000000001-0000000000000003.ltx"]
        assert (dav.data / prefix / "ltx/0" / NAME).read_bytes() == ltx_bytes(1, 1)
        # A stream of unknown size (spooled for its Content-Length) lands the same.
        data = ltx_bytes(4, 4)
        c.write_ltx_file(0, 4, 4, Source.of(io.BytesIO(data)), TS)
        assert read_all(c, 0, 4, 4) == data
    finally:
        c.close()


def test_apache_dav_clean_temp_and_reads_past_the_end(dav, prefix):
    c = client_for(dav.replica(prefix))
    try:
        put(c, 0, 1, 1)
        level = dav.data / prefix / "ltx/0"
        leftover = level / f"{NAME}.1234.1700000000000000000.tmp"
        leftover.write_bytes(b"partial")
        os.chown(leftover, os.stat(level).st_uid, os.stat(level).st_gid)
        assert c.clean_temp() == 1
        assert os.listdir(level) == [NAME]
        size = len(ltx_bytes(1, 1))
        assert read_all(c, 0, 1, 1, offset=size + 10) == b""
        assert read_all(c, 0, 1, 1, offset=size - 3, size=100) == ltx_bytes(1, 1)[-3:]
    finally:
        c.close()


def test_apache_dav_wrong_password_is_not_shown(dav, prefix):
    e = init_error(dav.bad_credentials(prefix), AuthError)
    assert "not-the-secret" not in str(e) and "401" in str(e)


def test_apache_dav_reference_reads_ours_by_url(dav, prefix, tmp_path):
    """The URL form (credentials in it) names the same files for both tools."""
    c = client_for(dav.replica(prefix))
    try:
        put(c, 0, 1, 1)
        put(c, 0, 2, 2)
    finally:
        c.close()
    a = run_ours("ltx", dav.url(prefix), timeout=60)
    b = run_ref("ltx", dav.url(prefix), timeout=60)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout and NAME.split(".")[0].split("-")[0] in a.stdout
    assert "litestream-secret" not in a.stdout + a.stderr
