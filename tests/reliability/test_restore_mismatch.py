"""A database checksum that does not add up at restore must never strand a user whose data is in the
replica: the error names the file and says how to go on, and `-ignore-checksums` restores anyway, runs
a full integrity check, and warns. Pages whose own CRC fails are still refused, flag or not."""

from __future__ import annotations

import os
import shutil

import apsw
import pytest

from litestream import _ltxcore as core
from litestream.backends.file import FileReplicaClient
from litestream.db.checksums import decode_reserved, encode_reserved
from litestream.db.database import Database, DBSettings
from litestream.ltx import HEADER_SIZE, Header
from litestream.restore import calc_restore_plan, restore_files
from tests.conftest import run_ours
from tests.interop.workload import content_digest


@pytest.fixture(scope="module")
def good_replica(tmp_path_factory):
    """Our replica of a small database (three L0 files), and the digest of its latest state."""
    d = tmp_path_factory.mktemp("src")
    path = str(d / "app.db")
    app = apsw.Connection(path)
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db = Database(path, DBSettings())
    for i in range(3):
        with app:
            app.execute("INSERT INTO t(v) VALUES (?)", (f"row {i} " * 50,))
        db.sync()
    replica = d / "replica"
    shutil.copytree(db.meta.path, replica)
    db.close(final_sync=False)
    app.close()
    client = FileReplicaClient(str(replica))
    out = d / "want.db"
    restore_files(client, calc_restore_plan(client), str(out))
    return replica, content_digest(out)


def _l0(replica, txid: int) -> str:
    return os.path.join(replica, "ltx", "0", f"{txid:016x}-{txid:016x}.ltx")


def _rewrite(path: str, pre: int | None = None, post: int | None = None, mangle=None) -> None:
    """Re-encode an LTX file with other recorded database checksums (and, with mangle, other pages), its
    own CRC valid."""
    with open(path, "rb") as f:
        raw = f.read(HEADER_SIZE)
        f.seek(0)
        dec = core.Decoder(f)
        dec.read_header()
        pages = dict(dec)
        dec.finish()
    sums = decode_reserved(raw)
    h = Header.decode(raw)
    if mangle is not None:
        pages = mangle(h, pages)
    fd = os.open(path, os.O_RDWR | os.O_TRUNC)
    try:
        enc = core.Encoder(fd)
        enc.write_header(h)
        for pgno in sorted(pages):
            enc.write_page(pgno, pages[pgno])
        enc.finish(0)
        core.patch_reserved(fd, encode_reserved(sums.pre_apply if pre is None else pre,
                                                sums.post_apply if post is None else post), enc.hashed_len)
        core.Decoder(fd).verify()
    finally:
        os.close(fd)


@pytest.fixture
def replica(good_replica, tmp_path):
    src, digest = good_replica
    dst = tmp_path / "replica"
    shutil.copytree(src, dst)
    return dst, digest


def _restore(replica, out, *flags):
    return run_ours("restore", *flags, "-o", str(out), f"file://{replica}")


@pytest.mark.parametrize("where", ["post-apply", "chain"])
def test_mismatch_error_names_the_file_and_the_way_out(replica, tmp_path, where):
    rep, _ = replica
    if where == "post-apply":
        _rewrite(_l0(rep, 3), post=(1 << 63) | 0x1234)
        name = "0000000000000003-0000000000000003.ltx"
    else:
        _rewrite(_l0(rep, 2), pre=(1 << 63) | 0x1234)
        name = "0000000000000002-0000000000000002.ltx"
    out = tmp_path / "out.db"
    proc = _restore(rep, out)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert name in lines[0] and "-ignore-checksums" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("where", ["post-apply", "chain"])
def test_ignore_checksums_restores_checks_and_warns(replica, tmp_path, where):
    rep, digest = replica
    if where == "post-apply":
        _rewrite(_l0(rep, 3), post=(1 << 63) | 0x1234)
    else:
        _rewrite(_l0(rep, 2), pre=(1 << 63) | 0x1234)
    out = tmp_path / "out.db"
    proc = _restore(rep, out, "-ignore-checksums")
    assert proc.returncode == 0, proc.stderr
    assert content_digest(out) == digest
    assert "post-restore integrity check passed" in proc.stdout
    warn = [line for line in proc.stdout.splitlines() if "level=WARN" in line]
    assert len(warn) == 1 and "checksum" in warn[0], proc.stdout


def test_ignore_checksums_without_a_mismatch_is_a_plain_restore(replica, tmp_path):
    rep, digest = replica
    out = tmp_path / "out.db"
    proc = _restore(rep, out, "-ignore-checksums")
    assert proc.returncode == 0, proc.stderr
    assert content_digest(out) == digest and "level=WARN" not in proc.stdout


def test_ignore_checksums_still_refuses_a_database_that_fails_integrity_check(replica, tmp_path):
    """Pages that are garbage to SQLite (in a file whose own CRC is right) restore only to be refused by
    the integrity check: no output is left."""
    rep, _ = replica
    def noise(h, pages):
        # Every page but the first: a leaf-page type byte, then noise.
        return {k: v if k == 1 else b"\x0d" + os.urandom(h.page_size - 1) for k, v in pages.items()}

    _rewrite(_l0(rep, 3), mangle=noise)  # keeps the recorded checksums, which the noise does not match
    out = tmp_path / "out.db"
    proc = _restore(rep, out)
    assert proc.returncode == 1 and "-ignore-checksums" in proc.stderr
    proc = _restore(rep, out, "-ignore-checksums")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("Error: post-restore integrity check") and len(proc.stderr.splitlines()) == 1
    assert not out.exists()


def test_ignore_checksums_does_not_skip_file_crcs(replica, tmp_path):
    rep, _ = replica
    path = _l0(rep, 2)
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE + 40)  # inside the first page frame
        b = f.read(1)
        f.seek(HEADER_SIZE + 40)
        f.write(bytes([b[0] ^ 0xFF]))
    out = tmp_path / "out.db"
    proc = _restore(rep, out, "-ignore-checksums")
    assert proc.returncode == 1 and "0000000000000002-0000000000000002.ltx" in proc.stderr
    assert not out.exists()


def test_integrity_check_of_a_malformed_database_is_one_line(replica, tmp_path):
    """-integrity-check on pages SQLite cannot even walk (checksums consistent with them): one error line,
    no traceback, no output."""
    rep, _ = replica

    def noise(h, pages):
        return {k: v if k == 1 else b"\x0d" + os.urandom(h.page_size - 1) for k, v in pages.items()}

    _rewrite(_l0(rep, 3), mangle=noise)
    client = FileReplicaClient(str(rep))
    scratch = tmp_path / "scratch.db"
    result = restore_files(client, calc_restore_plan(client), str(scratch), ignore_checksums=True)
    assert result.checksum_mismatch
    fd = os.open(scratch, os.O_RDONLY)
    try:
        actual = core.db_checksum(fd, result.page_size, result.commit)
    finally:
        os.close(fd)
    _rewrite(_l0(rep, 3), post=actual)  # now the checksums vouch for the noise
    out = tmp_path / "out.db"
    proc = _restore(rep, out, "-integrity-check", "full")
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith("Error: post-restore integrity check") and len(proc.stderr.splitlines()) == 1
    assert not out.exists()
