"""The C core through its binding: checksums, header rules, encode/decode, merge, index, segments."""

from __future__ import annotations

import io
import os
import random
import struct

import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litestream import _ltxcore as core
from litestream.ltx import CHECKSUM_FLAG, FLAG_NO_CHECKSUM, Header, LTXError
from tests.ltxutil import decode, encode, header, page


def crc_bitwise(data: bytes, crc: int = 0) -> int:
    """Reference CRC-64/GO-ISO, one bit at a time."""
    crc ^= 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xD800000000000000 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def test_crc64_check_value():
    assert core.crc64(b"123456789") == 0xB90956C775A41001
    assert core.crc64_portable(b"123456789") == 0xB90956C775A41001
    assert core.crc64(b"") == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 2**64 - 1))
def test_crc64_matches_bitwise_reference(data, seed):
    want = crc_bitwise(data, seed)
    assert core.crc64(data, seed) == want
    assert core.crc64_portable(data, seed) == want


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000), st.binary(max_size=5000))
def test_crc64_combine(a, b):
    assert core.crc64_combine(core.crc64(a), core.crc64(b), len(b)) == core.crc64(a + b)
    assert core.crc64(b, core.crc64(a)) == core.crc64(a + b)


def test_page_checksum_known_answers():
    # Known answers from the ltx library's own tests.
    assert core.checksum_page(1, b"1" * 512) == 0xEB1A999231044DDD
    total = 0
    for pgno, fill in ((1, 0x81), (2, 0x82), (3, 0x83)):
        total ^= core.checksum_page(pgno, bytes([fill]) * 1024)
    assert total | CHECKSUM_FLAG == 0x8A249272AD9F7DEA


def test_lock_page():
    assert core.lock_pgno(4096) == 262145
    assert core.lock_pgno(512) == 2097153
    assert core.lock_pgno(65536) == 16385


@pytest.mark.parametrize("change, message", [
    ({"flags": 0x4}, "invalid header flags"),
    ({"page_size": 1000}, "invalid page size"),
    ({"page_size": 256}, "invalid page size"),
    ({"page_size": 131072}, "invalid page size"),
    ({"min_txid": 0}, "invalid min txid"),
    ({"max_txid": 0}, "invalid max txid"),
    ({"min_txid": 5, "max_txid": 4}, "greater than max txid"),
    ({"wal_offset": -1}, "invalid wal offset"),
    ({"wal_size": -1}, "invalid wal size"),
    ({"salt1": 7}, "wal salts set without a wal offset"),
    ({"wal_size": 10}, "wal size set without a wal offset"),
    ({"pre": 5}, "pre-apply checksum must be zero on snapshots"),
    ({"min_txid": 2, "max_txid": 2, "pre": 5}, "pre-apply checksum must be zero when checksums are disabled"),
    ({"min_txid": 2, "max_txid": 2, "flags": 0, "pre": 0}, "invalid pre-apply checksum"),
    ({"min_txid": 2, "max_txid": 2, "flags": 0, "pre": 5}, "invalid pre-apply checksum"),
])
def test_header_validation(change, message):
    h = header(**change)
    with pytest.raises(LTXError, match=message):
        h.encode()


def test_header_roundtrip():
    h = header(page_size=512, commit=9, min_txid=0x12, max_txid=0x12, wal_offset=32, wal_size=536, salt1=1, salt2=2)
    assert Header.decode(h.encode()) == h
    with pytest.raises(LTXError, match="bad magic"):
        Header.decode(b"LTX2" + h.encode()[4:])
    with pytest.raises(LTXError, match="too short"):
        Header.decode(h.encode()[:50])


@pytest.mark.parametrize("page_size", [512, 1024, 4096, 16384, 65536])
def test_encode_decode_roundtrip(page_size):
    pages = {p: page(p, page_size) for p in range(1, 12)}
    data = encode(header(page_size=page_size, commit=11), pages)
    h, got, (post, file_sum) = decode(data)
    assert got == pages and h.commit == 11 and post == 0 and file_sum & CHECKSUM_FLAG
    # The file checksum is the CRC of everything but the compressed payloads and itself.
    dec = core.Decoder(io.BytesIO(data))
    assert dec.verify()[1] == (0, file_sum)


def test_incompressible_pages_roundtrip():
    pages = {p: os.urandom(4096) for p in range(3, 8)}
    data = encode(header(commit=10, min_txid=3, max_txid=3), pages)
    assert decode(data)[1] == pages


def test_checksummed_snapshot():
    pages = {p: page(p, 1024) for p in range(1, 5)}
    total = 0
    for p, d in pages.items():
        total ^= core.checksum_page(p, d)
    data = encode(header(page_size=1024, commit=4, flags=0), pages, total | CHECKSUM_FLAG)
    assert decode(data)[2][0] == total | CHECKSUM_FLAG
    with pytest.raises(LTXError, match="does not match the snapshot pages"):
        encode(header(page_size=1024, commit=4, flags=0), pages, (total ^ 1) | CHECKSUM_FLAG)


def test_encoder_rules():
    ps = 4096
    enc = core.Encoder(io.BytesIO())
    enc.write_header(header(commit=3))
    enc.write_page(1, page(1, ps))
    with pytest.raises(LTXError, match="snapshot is missing page 2"):
        enc.write_page(3, page(3, ps))
    enc = core.Encoder(io.BytesIO())
    enc.write_header(header(commit=5, min_txid=2, max_txid=2))
    enc.write_page(3, page(3, ps))
    with pytest.raises(LTXError, match="out of order"):
        enc.write_page(2, page(2, ps))
    enc = core.Encoder(io.BytesIO())
    enc.write_header(header(commit=5, min_txid=2, max_txid=2))
    with pytest.raises(LTXError, match="beyond the database size"):
        enc.write_page(6, page(6, ps))
    with pytest.raises(LTXError, match="expected 4096"):
        core.Encoder(io.BytesIO()).write_header(header()) or enc.write_page(1, b"x")
    enc = core.Encoder(io.BytesIO())
    enc.write_header(header(commit=3))
    enc.write_page(1, page(1, ps))
    with pytest.raises(LTXError, match="snapshot is incomplete"):
        enc.finish()


def test_lock_page_is_skipped_in_snapshots():
    ps = 65536
    lock = core.lock_pgno(ps)
    commit = lock + 2
    buf = io.BytesIO()
    enc = core.Encoder(buf)
    enc.write_header(header(page_size=ps, commit=commit))
    with pytest.raises(LTXError, match="lock page"):
        for p in range(1, commit + 1):
            enc.write_page(p, bytes(ps))
    buf = io.BytesIO()
    enc = core.Encoder(buf)
    enc.write_header(header(page_size=ps, commit=commit))
    for p in range(1, commit + 1):
        if p != lock:
            enc.write_page(p, p.to_bytes(4, "big") * (ps // 4))
    enc.finish()
    _, pages, _ = decode(buf.getvalue())
    assert lock not in pages and len(pages) == commit - 1


def legacy_file(h: Header, pages: dict[int, bytes]) -> bytes:
    """An LTX file as Litestream 0.5.0-0.5.15 wrote it: each page an LZ4 frame, page flags 0."""
    body = io.BytesIO()
    crc = core.crc64(h.encode())
    body.write(h.encode())
    index = b""

    def uvarint(v):
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)

    for pgno in sorted(pages):
        frame = lz4.frame.compress(pages[pgno], block_size=lz4.frame.BLOCKSIZE_MAX64KB, content_checksum=True,
                                   store_size=False)
        off = body.tell()
        ph = struct.pack(">IH", pgno, 0)
        body.write(ph + frame)
        crc = core.crc64(pages[pgno], core.crc64(ph, crc))
        index += uvarint(pgno) + uvarint(off) + uvarint(6 + len(frame))
    index += b"\x00"
    tail = bytes(6) + index + struct.pack(">Q", len(index)) + struct.pack(">Q", 0)
    crc = core.crc64(tail, crc)
    body.write(tail + struct.pack(">Q", crc | CHECKSUM_FLAG))
    return body.getvalue()


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_legacy_lz4_frame_pages(page_size):
    pages = {p: page(p, page_size, 3) for p in range(1, 5)}
    data = legacy_file(header(page_size=page_size, commit=4), pages)
    assert decode(data)[1] == pages
    # The page index of a legacy file is usable for random access too.
    path = f"/tmp/legacy-{os.getpid()}-{page_size}.ltx"
    with open(path, "wb") as f:
        f.write(data)
    try:
        fd = os.open(path, os.O_RDONLY)
        ix = core.PageIndex(fd, len(data))
        assert ix.read_page(fd, header(page_size=page_size, commit=4), 3) == pages[3]
        os.close(fd)
    finally:
        os.remove(path)


def model_merge(files):
    out = {}
    for _, pages in files:
        out.update(pages)
    last = files[-1][0]
    return {p: d for p, d in out.items() if p <= last.commit}


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_merge_matches_model(data):
    ps = 512
    n = data.draw(st.integers(1, 6))
    files = []
    txid = 1
    commit = data.draw(st.integers(1, 40))
    snapshot = {p: page(p, ps, 0) for p in range(1, commit + 1)}
    files.append((header(page_size=ps, commit=commit, min_txid=1, max_txid=1), snapshot))
    for i in range(1, n):
        txid += 1
        prev_commit, commit = commit, data.draw(st.integers(1, 40))
        pgnos = data.draw(st.sets(st.integers(1, commit), max_size=commit))
        # As Litestream writes them: a file that grows the database carries the new pages.
        pgnos |= set(range(prev_commit + 1, commit + 1))
        files.append((header(page_size=ps, commit=commit, min_txid=txid, max_txid=txid),
                      {p: page(p, ps, i) for p in pgnos}))
    blobs = [io.BytesIO(encode(h, p)) for h, p in files]
    out = io.BytesIO()
    core.merge(blobs, out)
    h, pages, _ = decode(out.getvalue())
    expected = model_merge(files)
    assert pages == expected
    assert (h.min_txid, h.max_txid, h.commit) == (1, txid, files[-1][0].commit)


def test_merge_rejects_gaps_and_page_size_mismatch():
    a = encode(header(commit=1), {1: page(1, 4096)})
    c = encode(header(commit=1, min_txid=3, max_txid=3), {1: page(1, 4096)})
    with pytest.raises(LTXError, match="non-contiguous"):
        core.merge([io.BytesIO(a), io.BytesIO(c)], io.BytesIO())
    d = encode(header(page_size=1024, commit=1, min_txid=2, max_txid=2), {1: page(1, 1024)})
    with pytest.raises(LTXError, match="page size"):
        core.merge([io.BytesIO(a), io.BytesIO(d)], io.BytesIO())


def test_segmented_decode_equals_whole_file(tmp_path):
    """A file decoded in segments through its index verifies exactly like a whole-file decode."""
    ps = 1024
    commit = 500
    pages = {p: page(p, ps) for p in range(1, commit + 1)}
    data = encode(header(page_size=ps, commit=commit), pages)
    path = tmp_path / "f.ltx"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    out_fd = os.open(tmp_path / "out.db", os.O_RDWR | os.O_CREAT)
    try:
        h = Header.decode(data[:100])
        ix = core.PageIndex(fd, len(data))
        assert len(ix) == commit and ix.find(7) is not None and ix.find(commit + 1) is None
        segments = ix.segments(20_000)
        assert len(segments) > 5
        claimed = core.new_claim_map(commit)
        crc = core.crc64(data[:100])
        icrc = ilen = psum = last = 0
        for start, end, prev in segments:
            r = core.apply_segment(fd, h, start, end, prev, out_fd, commit, claimed)
            assert r[6] > 0 and prev == last
            crc = core.crc64_combine(crc, r[0], r[1])
            icrc = core.crc64_combine(icrc, r[2], r[3])
            ilen += r[3]
            psum ^= r[4]
            last = r[5]
        trailer = core.finish_tail(fd, h, ix.end_marker_offset, crc, icrc, ilen, last, psum)
        assert trailer == decode(data)[2]
        assert core.claimed_missing(claimed, commit, core.lock_pgno(ps)) == 0
        restored = os.pread(out_fd, commit * ps, 0)
        assert restored == b"".join(pages[p] for p in range(1, commit + 1))
        # A wrong combined checksum is caught by the tail check.
        with pytest.raises(LTXError, match="checksum"):
            core.finish_tail(fd, h, ix.end_marker_offset, crc ^ 1, icrc, ilen, last, psum)
        with pytest.raises(LTXError, match="page index"):
            core.finish_tail(fd, h, ix.end_marker_offset, crc, icrc ^ 1, ilen, last, psum)
    finally:
        os.close(fd)
        os.close(out_fd)


def test_apply_newest_first_claims_pages(tmp_path):
    ps = 512
    snap = {p: page(p, ps, 0) for p in range(1, 6)}
    inc = {2: page(2, ps, 1), 4: page(4, ps, 1)}
    files = [encode(header(page_size=ps, commit=5), snap),
             encode(header(page_size=ps, commit=5, min_txid=2, max_txid=2), inc)]
    out = os.open(tmp_path / "db", os.O_RDWR | os.O_CREAT)
    claimed = core.new_claim_map(5)
    written = 0
    for i, data in reversed(list(enumerate(files))):
        p = tmp_path / f"{i}.ltx"
        p.write_bytes(data)
        fd = os.open(p, os.O_RDONLY)
        _, _, n_pages, _, _ = core.apply_file(fd, Header.decode(data[:100]), out, 5, claimed)
        written += n_pages
        os.close(fd)
    assert written == 5
    got = os.pread(out, 5 * ps, 0)
    os.close(out)
    want = {**snap, **inc}
    assert got == b"".join(want[p] for p in range(1, 6))


def test_apply_file_rejects_changed_header(tmp_path):
    data = encode(header(commit=1), {1: page(1, 4096)})
    p = tmp_path / "a.ltx"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    out = os.open(tmp_path / "db", os.O_RDWR | os.O_CREAT)
    with pytest.raises(LTXError, match="header changed"):
        core.apply_file(fd, header(commit=1, max_txid=2), out, 1, core.new_claim_map(1))
    os.close(fd)
    os.close(out)


def test_random_access_read_page(tmp_path):
    pages = {p: page(p, 4096, 9) for p in (2, 5, 9)}
    data = encode(header(commit=9, min_txid=4, max_txid=4), pages)
    p = tmp_path / "f.ltx"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    ix = core.PageIndex(fd, len(data))
    h = Header.decode(data[:100])
    for pgno, d in pages.items():
        assert ix.read_page(fd, h, pgno) == d
    with pytest.raises(KeyError):
        ix.read_page(fd, h, 3)
    os.close(fd)


def test_db_checksum_of_file(tmp_path):
    ps = 1024
    pages = [random.randbytes(ps) for _ in range(7)]
    p = tmp_path / "db"
    p.write_bytes(b"".join(pages))
    total = 0
    for i, d in enumerate(pages, 1):
        total ^= core.checksum_page(i, d)
    fd = os.open(p, os.O_RDONLY)
    assert core.db_checksum(fd, ps, 7) == total | CHECKSUM_FLAG
    with pytest.raises(LTXError, match="shorter"):
        core.db_checksum(fd, ps, 8)
    os.close(fd)


def test_python_stream_errors_propagate():
    class Broken(io.RawIOBase):
        def readinto(self, b):
            raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        core.Decoder(Broken()).read_header()
    assert FLAG_NO_CHECKSUM == 2


def test_wal_pages_around_the_lock_page(tmp_path):
    """Growth pages are read from the database file, except the lock page, which is never read: the file
    can end right there while the pages after it are still only in the WAL."""
    ps = 4096
    lock = core.lock_pgno(ps)
    db = tmp_path / "db"
    with open(db, "wb") as f:
        f.truncate((lock - 1) * ps)  # sparse: ends exactly at the lock page
        f.seek((lock - 3) * ps)
        f.write(page(lock - 2, ps) + page(lock - 1, ps))
    wal_path = tmp_path / "wal"
    frames = {lock + 1: page(lock + 1, ps, 7), lock + 2: page(lock + 2, ps, 7)}
    offsets = {}
    with open(wal_path, "wb") as f:
        f.write(bytes(32))
        for pgno, data in frames.items():
            offsets[pgno] = f.tell()
            f.write(bytes(24) + data)
    from array import array

    out = tmp_path / "out.ltx"
    commit = lock + 2
    with open(out, "wb") as f, open(db, "rb") as dbf, open(wal_path, "rb") as walf:
        enc = core.Encoder(f.fileno())
        enc.write_header(header(page_size=ps, commit=commit, min_txid=5, max_txid=5))
        pg = array("I", sorted(frames))
        enc.write_wal_pages(walf.fileno(), dbf.fileno(), pg, array("Q", [offsets[p] for p in pg]), commit, lock - 2,
                            commit)
        enc.finish()
    _, pages, _ = decode(out.read_bytes())
    assert sorted(pages) == [lock - 2, lock - 1, lock + 1, lock + 2]
    assert pages[lock - 1] == page(lock - 1, ps) and pages[lock + 2] == frames[lock + 2]
