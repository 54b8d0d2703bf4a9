"""The C WAL reader against WALs written by real SQLite and the WALs captured while the reference ran."""

from __future__ import annotations

import gzip
import os
import struct

import apsw
import pytest

from litestream import _ltxcore as core
from litestream import wal
from tests.vectorutil import VECTORS, manifest


def py_scan(data: bytes, start: int = 32):
    """Independent model of the page-map rules (spec §3), in pure Python."""
    magic, _, ps, _, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    fmt = "<" if magic == 0x377F0682 else ">"

    def cksum(buf, s0, s1):
        words = struct.unpack(f"{fmt}{len(buf) // 4}I", buf)
        for i in range(0, len(words), 2):
            s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
            s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
        return s0, s1

    fs = 24 + ps
    s0, s1 = c1, c2
    if start > 32:
        prev = data[start - fs:start - fs + 24]
        s0, s1 = struct.unpack(">2I", prev[16:24])
    committed, pending, commit, end = {}, {}, 0, start
    off = start
    while off + fs <= len(data):
        fh = data[off:off + 24]
        pgno, fcommit, fs1, fs2, k1, k2 = struct.unpack(">6I", fh)
        if (fs1, fs2) != (salt1, salt2):
            break
        n0, n1 = cksum(fh[:8], s0, s1)
        n0, n1 = cksum(data[off + 24:off + fs], n0, n1)
        if (n0, n1) != (k1, k2):
            break
        s0, s1 = n0, n1
        pending[pgno] = off
        if fcommit:
            committed.update(pending)
            pending = {}
            commit, end = fcommit, off + fs
        off += fs
    return {p: o for p, o in committed.items() if p <= commit}, commit, end


def make_wal(tmp_path, page_size=4096, txns=5):
    db = tmp_path / "w.db"
    conn = apsw.Connection(str(db))
    conn.execute(f"PRAGMA page_size={page_size}; PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(x)")
    for i in range(txns):
        with conn:
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(300 + i * 900),))
    return conn, db, tmp_path / "w.db-wal"


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_scan_matches_model(tmp_path, page_size):
    conn, _, walpath = make_wal(tmp_path, page_size)
    data = walpath.read_bytes()
    fd = os.open(walpath, os.O_RDONLY)
    h = wal.read_header(fd)
    assert h.page_size == page_size and h.version == 3007000
    s = wal.scan(fd, h)
    pages, commit, end = py_scan(data)
    assert s.page_map() == pages and s.commit == commit and s.end == end == len(data)
    assert s.n_commits == 6 and not s.limited
    # Resuming in the middle, seeded by the previous frame's checksum, finds the rest.
    mid = 32 + 2 * h.frame_size
    s2 = wal.scan(fd, h, mid)
    pages2, _, end2 = py_scan(data, mid)
    assert s2.page_map() == pages2 and s2.end == end2
    os.close(fd)
    conn.close()


def test_uncommitted_and_torn_tail_ignored(tmp_path):
    conn, _, walpath = make_wal(tmp_path)
    data = walpath.read_bytes()
    fd = os.open(walpath, os.O_RDONLY)
    h = wal.read_header(fd)
    full = wal.scan(fd, h)
    os.close(fd)
    # Cut in the middle of the last frame: the last transaction is gone, the rest stays.
    torn = tmp_path / "torn-wal"
    torn.write_bytes(data[:-100])
    fd = os.open(torn, os.O_RDONLY)
    s = wal.scan(fd, h)
    assert s.end < full.end and s.page_map() == py_scan(data[:-100])[0]
    os.close(fd)
    # A frame whose checksum is wrong ends the valid WAL there.
    bad = bytearray(data)
    bad[32 + h.frame_size + 24 + 10] ^= 0xFF
    p = tmp_path / "bad-wal"
    p.write_bytes(bytes(bad))
    fd = os.open(p, os.O_RDONLY)
    s = wal.scan(fd, h)
    assert s.valid_end == 32 + h.frame_size and s.end <= 32 + h.frame_size
    os.close(fd)
    conn.close()


def test_restart_leaves_stale_frames_behind(tmp_path):
    conn, _, walpath = make_wal(tmp_path, txns=8)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    with conn:
        conn.execute("INSERT INTO t VALUES (1)")  # restarts the WAL from the start with new salts
    fd = os.open(walpath, os.O_RDONLY)
    h = wal.read_header(fd)
    s = wal.scan(fd, h)
    # Only the new generation's single transaction counts, although old frames are still in the file.
    assert s.n_commits == 1 and os.path.getsize(walpath) > s.end
    old = (h.salt1 - 1) & 0xFFFFFFFF
    with pytest.raises(wal.PrevFrameMismatch):
        wal.scan(fd, h, 32 + 3 * h.frame_size, (old, 0))
    os.close(fd)
    conn.close()


def test_empty_or_invalid_header(tmp_path):
    assert core.wal_header_parse(b"") is None
    p = tmp_path / "x-wal"
    p.write_bytes(struct.pack(">3I", 0x377F0682, 3007000, 4096) + bytes(20))
    fd = os.open(p, os.O_RDONLY)
    assert wal.read_header(fd) is None  # checksum does not match: SQLite treats it as empty
    os.close(fd)
    with pytest.raises(core.LTXError, match="magic"):
        core.wal_header_parse(b"\x00" * 32)


def captures():
    for name in ("v1_ps4096", "v2_ps512_ckpt", "v4_ps4096_restart"):
        for p in sorted((VECTORS / name / "wal_captures").glob("*.wal.gz")):
            yield name, p


def test_l0_files_rederived_from_captured_wals(tmp_path):
    """Each L0 file the reference wrote holds the pages and commit our scanner finds in the WAL range
    its header names (plus growth pages read from the database file)."""
    checked = 0
    for name, cap in captures():
        data = gzip.decompress(cap.read_bytes())
        p = tmp_path / "cap-wal"
        p.write_bytes(data)
        fd = os.open(p, os.O_RDONLY)
        h = wal.read_header(fd)
        valid_end = wal.scan(fd, h).valid_end  # later frames are stale ones of an older generation
        for f in manifest(name)["files"]:
            hd = f["header"]
            if f["level"] != 0 or (hd["wal_salt1"], hd["wal_salt2"]) != h.salts:
                continue
            end = hd["wal_offset"] + hd["wal_size"]
            if hd["wal_size"] == 0 or end > valid_end:
                continue
            s = wal.scan(fd, h, hd["wal_offset"], h.salts, hd["wal_size"])
            assert s.end == end and s.commit == hd["commit"], (name, f["name"])
            ltx_pages = set(f["pgnos"])
            assert set(s.pgnos) <= ltx_pages
            extra = ltx_pages - set(s.pgnos)
            if extra and len(ltx_pages) != hd["commit"]:
                # Anything not from the WAL is a growth page: the file holds the whole tail of the database.
                assert set(range(min(extra), hd["commit"] + 1)) <= ltx_pages
            with open(VECTORS / name / "replica" / "ltx" / "0" / f["name"], "rb") as ltx_file:
                decoded = dict(core.Decoder(ltx_file))
            for pgno, off in s.page_map().items():
                assert decoded[pgno] == data[off + 24:off + 24 + h.page_size]
            checked += 1
        os.close(fd)
    assert checked >= 10
