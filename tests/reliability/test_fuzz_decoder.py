"""Fuzzing the C LTX decoder (litestream._ltxcore) with hypothesis, plus exhaustive single-byte mutations.

Every entry point that reads LTX bytes is fed mutated copies of valid files: the reference vectors, files
written by our encoder at page sizes 512..65536, and files with legacy LZ4-frame page payloads (spec 1.2)
built by hand. The rule checked everywhere: the call either raises `_ltxcore.LTXError` (with a one-line
message and a known kind), or it succeeds with exactly the content of the file the mutation started from
(possible only when the mutation did not change what the file means, e.g. a flipped bit in an LZ4 token
that the decompressor ignores). Never another exception type, never a crash, never a hang.

The run time is bounded: fixed hypothesis example counts, no example database, and a per-test timeout.
"""

from __future__ import annotations

import functools
import io
import itertools
import random
import struct
import tempfile
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from litestream import _ltxcore as core
from tests.conftest import VECTORS

try:
    import lz4.frame as lz4frame
except ImportError:  # the hand-built stored frames below still cover the legacy path
    lz4frame = None

KINDS = {"io", "truncated", "format", "checksum", "memory", "invalid", "nospace", "prev-frame"}
NO_CHECKSUM = core.FLAG_NO_CHECKSUM
TS = 1_795_644_089_692

FUZZ = settings(max_examples=500, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.timeout(120, method="thread")


# ------------------------------------------------------------------------------------------ building files


def uvarint(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append(x & 0x7F | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def header(page_size: int, commit: int, min_txid: int, max_txid: int, ts: int = TS) -> tuple:
    return (NO_CHECKSUM, page_size, commit, min_txid, max_txid, ts, 0, 0, 0, 0, 0, 0)


def encode(page_size: int, pages: list[tuple[int, bytes]], min_txid: int, max_txid: int,
           commit: int | None = None) -> bytes:
    """A file written by our encoder (LZ4 block payloads, as ltx v0.5.2 writes them)."""
    buf = io.BytesIO()
    enc = core.Encoder(buf)
    enc.write_header(header(page_size, commit if commit is not None else pages[-1][0], min_txid, max_txid))
    for pgno, data in pages:
        enc.write_page(pgno, data)
    enc.finish()
    return buf.getvalue()


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """Plain XXH32 (the LZ4 frame header and content checksums)."""
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i + 16 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i + 4 * k:i + 4 * k + 4], "little")
                v[k] = _rotl((v[k] + lane * _P2) & _M32, 13) * _P1 & _M32
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        h = _rotl((h + int.from_bytes(data[i:i + 4], "little") * _P3) & _M32, 17) * _P4 & _M32
        i += 4
    while i < n:
        h = _rotl((h + data[i] * _P5) & _M32, 11) * _P1 & _M32
        i += 1
    h ^= h >> 15
    h = h * _P2 & _M32
    h ^= h >> 13
    h = h * _P3 & _M32
    return h ^ (h >> 16)


def stored_lz4_frame(data: bytes) -> bytes:
    """An LZ4 frame as pierrec lz4.Writer configures it (64 KiB blocks, content checksum, no content
    size, no block checksum), holding the page as one uncompressed block."""
    assert len(data) <= 65536
    descriptor = bytes([0x64, 0x40])  # FLG: version 01, independent blocks, content checksum; BD: 64 KiB
    hc = (xxh32(descriptor) >> 8) & 0xFF
    return (b"\x04\x22\x4d\x18" + descriptor + bytes([hc]) + struct.pack("<I", len(data) | 0x80000000) + data
            + struct.pack("<I", 0) + struct.pack("<I", xxh32(data)))


def compressed_lz4_frame(data: bytes) -> bytes:
    return lz4frame.compress(data, block_size=lz4frame.BLOCKSIZE_MAX64KB, content_checksum=True,
                             block_checksum=False, store_size=False)


def encode_legacy(page_size: int, pages: list[tuple[int, bytes]], min_txid: int, max_txid: int,
                  framer, commit: int | None = None) -> bytes:
    """A file as ltx <= v0.5.1 wrote it: page flags 0, no size field, one LZ4 frame per page."""
    hdr = core.header_encode(header(page_size, commit if commit is not None else pages[-1][0], min_txid,
                                    max_txid))
    out = bytearray(hdr)
    crc = core.crc64(hdr)
    index = bytearray()
    for pgno, data in pages:
        off = len(out)
        ph = struct.pack(">IH", pgno, 0)
        frame = framer(data)
        out += ph + frame
        crc = core.crc64(data, core.crc64(ph, crc))
        index += uvarint(pgno) + uvarint(off) + uvarint(len(ph) + len(frame))
    out += bytes(6)
    crc = core.crc64(bytes(6), crc)
    index += uvarint(0)
    tail = bytes(index) + struct.pack(">QQ", len(index), 0)
    out += tail
    crc = core.crc64(tail, crc)
    out += struct.pack(">Q", crc | core.CHECKSUM_FLAG)
    return bytes(out)


def page_data(rng: random.Random, size: int, kind: str) -> bytes:
    if kind == "random":
        return rng.randbytes(size)
    if kind == "zero":
        return bytes(size)
    if kind == "mixed":  # random head, repeated middle, zero tail: literals, matches and long runs
        head = rng.randbytes(size // 8)
        return (head + rng.randbytes(16) * (size // 32) + bytes(size))[:size]
    raise ValueError(kind)


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    header: tuple
    pages: tuple  # ((pgno, bytes), ...)
    trailer: tuple
    payloads: tuple  # (start, end) byte ranges of compressed payloads: the only bytes the CRC skips

    @property
    def expected(self) -> tuple:
        return self.header, self.pages, self.trailer


def decode_bytes(data: bytes, reader=None) -> tuple:
    dec = core.Decoder(reader if reader is not None else io.BytesIO(data))
    hdr = dec.read_header()
    pages = tuple((pgno, page) for pgno, page in dec)
    return hdr, pages, dec.finish()


def payload_ranges(data: bytes) -> tuple:
    """Compressed payload ranges of a valid file, from its page index."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        ix = core.PageIndex(f.fileno(), len(data))
        out = []
        for pgno in ix.pgnos():
            off, size = ix.find(pgno)
            flags = struct.unpack(">H", data[off + 4:off + 6])[0]
            out.append((off + (10 if flags & 1 else 6), off + size))
        return tuple(out)


def make_sample(name: str, data: bytes) -> Sample:
    hdr, pages, trailer = decode_bytes(data)
    return Sample(name, data, hdr, pages, trailer, payload_ranges(data))


def vector_file(vector: str, level: int, min_txid: int, max_txid: int) -> bytes:
    name = f"{min_txid:016x}-{max_txid:016x}.ltx"
    return (VECTORS / vector / "replica" / "ltx" / str(level) / name).read_bytes()


@functools.cache
def corpus() -> dict[str, Sample]:
    rng = random.Random(20260826)
    files: dict[str, bytes] = {}
    files["v2_l0_4"] = vector_file("v2_ps512_ckpt", 0, 4, 4)  # the spec's worked example (1.8)
    files["v2_l0_1"] = vector_file("v2_ps512_ckpt", 0, 1, 1)
    files["v1_l0_1"] = vector_file("v1_ps4096", 0, 1, 1)
    files["v1_l0_2"] = vector_file("v1_ps4096", 0, 2, 2)
    files["v1_l0_7"] = vector_file("v1_ps4096", 0, 7, 7)
    files["v4_l2"] = vector_file("v4_ps4096_restart", 2, 1, 7) if (
        VECTORS / "v4_ps4096_restart/replica/ltx/2/0000000000000001-0000000000000007.ltx").exists() else None
    files = {k: v for k, v in files.items() if v is not None}
    # Written by our encoder, at several page sizes. e512_* form a contiguous 1..4 history for merge.
    files["e512_1"] = encode(512, [(p, page_data(rng, 512, k)) for p, k in
                                   enumerate(["mixed", "random", "zero", "mixed", "random"], 1)], 1, 1)
    files["e512_2"] = encode(512, [(2, page_data(rng, 512, "mixed")), (6, page_data(rng, 512, "random"))],
                             2, 2)
    files["e512_34"] = encode(512, [(1, page_data(rng, 512, "random")), (3, page_data(rng, 512, "mixed"))],
                              3, 4, commit=4)
    files["e512_empty"] = encode(512, [], 5, 5, commit=4)
    files["e1024"] = encode(1024, [(2, page_data(rng, 1024, "mixed")), (9, page_data(rng, 1024, "zero")),
                                   (10, page_data(rng, 1024, "random"))], 7, 9, commit=12)
    files["e4096"] = encode(4096, [(p, page_data(rng, 4096, "mixed")) for p in (1, 2, 3)], 1, 3)
    files["e65536"] = encode(65536, [(1, page_data(rng, 65536, "mixed")),
                                     (2, page_data(rng, 65536, "random"))], 1, 2)
    # Legacy LZ4-frame payloads: hand-built stored frames always, lz4.frame-compressed ones when available.
    files["leg512_stored"] = encode_legacy(512, [(p, page_data(rng, 512, "mixed")) for p in range(1, 6)],
                                           1, 1, stored_lz4_frame)
    files["leg65536_stored"] = encode_legacy(65536, [(3, page_data(rng, 65536, "random"))], 4, 4,
                                             stored_lz4_frame, commit=3)
    if lz4frame is not None:
        files["leg512_lz4"] = encode_legacy(512, [(p, page_data(rng, 512, k)) for p, k in
                                                  [(1, "mixed"), (2, "zero"), (3, "random")]], 1, 1,
                                            compressed_lz4_frame)
        files["leg4096_lz4"] = encode_legacy(4096, [(2, page_data(rng, 4096, "mixed")),
                                                    (5, page_data(rng, 4096, "mixed"))], 2, 2,
                                             compressed_lz4_frame, commit=5)
        files["leg65536_lz4"] = encode_legacy(65536, [(1, page_data(rng, 65536, "mixed"))], 1, 1,
                                              compressed_lz4_frame)
    return {name: make_sample(name, data) for name, data in files.items()}


# Contiguous inputs for merge (each list is in TXID order).
MERGE_SETS = [
    ["e512_1", "e512_2"],
    ["e512_1", "e512_2", "e512_34"],
    ["e512_1", "e512_2", "e512_34", "e512_empty"],
    ["v1_l0_1", "v1_l0_2"],
    ["leg512_stored", "e512_2", "e512_34"],
]


# ----------------------------------------------------------------------------------------------- oracles


class Trickle:
    """A file object without readinto that returns at most `step` bytes per read: every refill boundary
    of the decoder's buffer gets hit."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data = data
        self.pos = 0
        self.step = step

    def read(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + min(n, self.step)]
        self.pos += len(chunk)
        return chunk


def check_error(e: core.LTXError) -> None:
    msg = str(e)
    assert e.kind in KINDS, e.kind
    assert msg and "\n" not in msg and len(msg) < 400, repr(msg)


def outcome(fn, *args):
    """('ok', result) or ('err', kind). Any exception other than LTXError propagates and fails the test."""
    try:
        return "ok", fn(*args)
    except core.LTXError as e:
        check_error(e)
        return "err", e.kind


def temp_file(data: bytes):
    f = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    f.write(data)
    f.flush()
    return f


def decode_all_ways(data: bytes, step: int) -> tuple:
    """Decode through every reader the binding supports; they must agree. Returns the outcome."""
    results = [outcome(decode_bytes, data), outcome(decode_bytes, data, Trickle(data, step))]
    with temp_file(data) as f:
        results.append(outcome(decode_bytes, data, f.fileno()))
        results.append(outcome(lambda: core.Decoder(f.fileno(), bufsize=4096).verify()))
    results.append(outcome(lambda: core.Decoder(io.BytesIO(data)).verify()))
    statuses = {r[0] for r in results}
    assert len(statuses) == 1, f"readers disagree: {[r[0] if r[0] == 'ok' else r for r in results]}"
    if results[0][0] == "ok":
        assert results[0][1] == results[1][1] == results[2][1]
        assert results[3][1][:2] == results[4][1][:2] == (results[0][1][0], results[0][1][2])
    else:
        assert len({r[1] for r in results}) == 1, f"readers report different error kinds: {results}"
    return results[0]


def source_of(data: bytes, sources: list[Sample]) -> Sample:
    """The source file a (harmlessly) mutated file decodes to."""
    got = decode_bytes(data)
    return next(s for s in sources if s.expected == got)


def assert_decodes_to_a_source(data: bytes, sources: list[Sample], step: int = 7) -> bool:
    """The core rule. Returns whether the data decoded."""
    status, value = decode_all_ways(data, step)
    event(f"decode {status}")
    if status == "ok":
        assert value in [s.expected for s in sources], "mutated file decoded to content of no source file"
        return True
    return False


# ------------------------------------------------------------------------------------------- mutations

INTERESTING = [0, 1, 2, 6, 0x7F, 0x80, 0xFF, 0x100, 0x1FF, 512, 0xFFFF, 0x10000, 65537, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 63, (1 << 64) - 1]


def field_offsets(sample: Sample) -> list[int]:
    """Where the structural fields of a file start: header fields, page headers, index, trailer."""
    data = sample.data
    offs = [0, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 68, 72, 80, 92]
    for start, _end in sample.payloads:
        frame = start - 10 if data[start - 10 + 4:start - 10 + 6] == b"\x00\x01" else start - 6
        offs += [frame, frame + 4, frame + 6]
    size = len(data)
    index_len = struct.unpack(">Q", data[size - 24:size - 16])[0]
    index_off = size - 24 - index_len
    offs += [index_off - 6, index_off, index_off + 1, size - 24, size - 16, size - 8]
    return [o for o in offs if 0 <= o < size]


@st.composite
def mutation(draw, names: list[str]):
    kind = draw(st.sampled_from(["flip", "flip", "setint", "insert", "delete", "truncate", "overwrite",
                                 "splice", "duplicate"]))
    pos = draw(st.integers(0, 1 << 20))
    if kind == "flip":
        return kind, pos, draw(st.integers(1, 255))
    if kind == "setint":
        return kind, pos, draw(st.sampled_from([2, 4, 8])), draw(st.sampled_from(INTERESTING)), \
            draw(st.integers(-2, 2))
    if kind in ("insert", "overwrite"):
        return kind, pos, draw(st.binary(min_size=1, max_size=24))
    if kind in ("delete", "duplicate"):
        return kind, pos, draw(st.integers(1, 600))
    if kind == "truncate":
        return (kind, pos)
    return kind, pos, draw(st.sampled_from(names)), draw(st.integers(0, 1 << 20))


def apply_mutation(data: bytes, sample: Sample, m: tuple, sources: list[Sample]) -> bytes:
    kind, pos = m[0], m[1]
    n = len(data)
    at = pos % (n + 1)
    if kind == "flip":
        if n == 0:
            return data
        b = bytearray(data)
        b[pos % n] ^= m[2]
        return bytes(b)
    if kind == "setint":  # write an interesting integer (big-endian, like every LTX field) at a field start
        width, value, delta = m[2], m[3], m[4]
        offs = field_offsets(sample)
        off = offs[pos % len(offs)]
        value = (value + delta) % (1 << (8 * width))
        return data[:off] + value.to_bytes(width, "big") + data[off + width:]
    if kind == "insert":
        return data[:at] + m[2] + data[at:]
    if kind == "overwrite":
        return data[:at] + m[2] + data[at + len(m[2]):]
    if kind == "delete":
        return data[:at] + data[at + m[2]:]
    if kind == "duplicate":
        return data[:at + m[2]] + data[at:]
    if kind == "truncate":
        return data[:pos % max(n, 1)]
    other = corpus()[m[2]]
    sources.append(other)
    return data[:at] + other.data[m[3] % (len(other.data) + 1):]


@st.composite
def mutated_file(draw, names: list[str] | None = None):
    samples = corpus()
    names = names or sorted(samples)
    sample = samples[draw(st.sampled_from(names))]
    sources = [sample]
    data = sample.data
    for m in draw(st.lists(mutation(sorted(samples)), min_size=1, max_size=3)):
        data = apply_mutation(data, sample, m, sources)
    return data, sources


# ------------------------------------------------------------------------------------------------ tests


def test_corpus_is_valid_and_covers_the_formats():
    samples = corpus()
    sizes = {s.header[1] for s in samples.values()}
    assert {512, 1024, 4096, 65536} <= sizes
    legacy = [s for s in samples.values() if s.name.startswith("leg")]
    assert legacy and all(s.data[104:106] == b"\x00\x00" for s in legacy)  # first page: flags 0, no size
    assert all(s.data[104:106] == b"\x00\x01" for s in samples.values() if s.pages and s not in legacy)
    for s in samples.values():
        assert s.pages or s.name == "e512_empty"
        assert len(s.data) >= 131


def test_hand_built_lz4_frame_matches_the_lz4_library():
    if lz4frame is None:
        pytest.skip("lz4 not installed")
    data = random.Random(3).randbytes(4096)
    assert lz4frame.decompress(stored_lz4_frame(data)) == data
    assert xxh32(b"") == 0x02CC5D05 and xxh32(b"abc") == 0x32D153FF


@settings(FUZZ, max_examples=1500)
@given(mutated_file(), st.integers(1, 300))
def test_fuzz_decoder(case, step):
    data, sources = case
    assert_decodes_to_a_source(data, sources, step)


@FUZZ
@given(st.one_of(st.binary(max_size=3000),
                 st.tuples(st.sampled_from(sorted(corpus())), st.binary(max_size=3000))
                 .map(lambda t: corpus()[t[0]].data[:100] + t[1]),
                 st.tuples(st.sampled_from(sorted(corpus())), st.binary(max_size=64))
                 .map(lambda t: corpus()[t[0]].data[:110] + t[1] + corpus()[t[0]].data[110:])))
def test_fuzz_decoder_garbage(data):
    """Random bytes, and random bytes behind a valid header: never accepted, never a crash."""
    status, _ = decode_all_ways(data, 5)
    assert status == "err" or data in [s.data for s in corpus().values()]
    with temp_file(data) as f:
        outcome(core.PageIndex, f.fileno(), len(data))


@settings(FUZZ, max_examples=500)
@given(mutated_file())
def test_fuzz_page_index(case):
    """PageIndex may accept files the decoder rejects (it checks structure, not the CRC), but everything
    it returns must be self-consistent, and on a file the decoder accepts it must agree with the decoder."""
    data, sources = case
    decoded = assert_decodes_to_a_source(data, sources)
    with temp_file(data) as f:
        fd = f.fileno()
        status, ix = outcome(core.PageIndex, fd, len(data))
        event(f"page index {status}")
        if decoded:
            assert status == "ok", "PageIndex rejected a file the decoder accepts"
        if status != "ok":
            return
        pgnos = list(ix.pgnos())
        assert pgnos == sorted(set(pgnos)) and len(ix) == len(pgnos)
        assert 100 <= ix.end_marker_offset <= len(data) - 31
        prev_end = 100
        for pgno in pgnos:
            off, size = ix.find(pgno)
            assert off == prev_end and size > 6
            prev_end = off + size
        assert prev_end == ix.end_marker_offset
        assert ix.find(0) is None
        for target in (1, 700, 1 << 30):
            segs = ix.segments(target)
            assert segs[0][0] == 100 and segs[-1][1] == ix.end_marker_offset
            assert all(a[1] == b[0] for a, b in itertools.pairwise(segs))
        hstatus, hdr = outcome(core.header_decode, data[:100])
        if hstatus != "ok":
            return
        pages = dict(decode_bytes(data)[1]) if decoded else {}
        for pgno in pgnos:
            pstatus, page = outcome(ix.read_page, fd, hdr, pgno)
            if pstatus == "ok":
                assert len(page) == hdr[1]
                if decoded:
                    assert page == pages[pgno], f"read_page({pgno}) differs from the decoder's page"
            elif decoded:
                pytest.fail(f"read_page({pgno}) failed on a file the decoder accepts")


def expected_merge(inputs: list[Sample]) -> tuple:
    first, last = inputs[0].header, inputs[-1].header
    pages: dict[int, bytes] = {}
    for s in inputs:
        pages.update(dict(s.pages))
    kept = tuple(sorted((p, d) for p, d in pages.items() if p <= last[2]))
    hdr = (NO_CHECKSUM, first[1], last[2], first[3], last[4], last[5], 0, 0, 0, 0, 0, 0)
    return hdr, kept


@settings(FUZZ, max_examples=500)
@given(st.sampled_from(MERGE_SETS), st.data(), st.booleans())
def test_fuzz_merge(names, data, use_fds):
    samples = [corpus()[n] for n in names]
    which = data.draw(st.sets(st.integers(0, len(names) - 1), min_size=1, max_size=2), label="mutated inputs")
    blobs, sources = [], []
    for i, s in enumerate(samples):
        if i in which:
            blob, src = data.draw(mutated_file([s.name]), label=f"input {i}")
        else:
            blob, src = s.data, [s]
        blobs.append(blob)
        sources.append(src)
    files = [temp_file(b) for b in blobs]
    try:
        inputs = [f.fileno() for f in files] if use_fds else [io.BytesIO(b) for b in blobs]
        out = io.BytesIO()
        status, result = outcome(core.merge, inputs, out)
        event(f"merge {status}")
    finally:
        for f in files:
            f.close()
    if status != "ok":
        return
    # A successful merge verified every input completely: each must be one of its sources.
    effective = []
    for blob, src in zip(blobs, sources, strict=True):
        assert assert_decodes_to_a_source(blob, src), "merge accepted an input the decoder rejects"
        effective.append(source_of(blob, src))
    hdr, pages, _ = decode_bytes(out.getvalue())
    want_hdr, want_pages = expected_merge(effective)
    assert (hdr, pages) == (want_hdr, want_pages)
    assert result[0] == want_hdr


@settings(FUZZ, max_examples=500)
@given(mutated_file(), st.data())
def test_fuzz_apply_file(case, data):
    """apply_file either raises LTXError or has verified the whole file; then it has written exactly the
    file's pages that were not claimed before, and claimed them."""
    blob, sources = case
    sample = sources[0]
    hdr = sample.header
    page_size, commit = hdr[1], hdr[2]
    pre_claimed = data.draw(st.sets(st.integers(1, max(commit, 1)), max_size=3), label="pre-claimed")
    claimed = core.new_claim_map(commit)
    for p in pre_claimed:
        claimed[p >> 6] |= 1 << (p & 63)
    marker = b"\xee" * page_size
    with temp_file(blob) as src, tempfile.TemporaryFile() as out:
        out.write(marker * commit)
        out.flush()
        status, result = outcome(core.apply_file, src.fileno(), hdr, out.fileno(), commit, claimed)
        event(f"apply_file {status}")
        if status != "ok":
            return
        assert assert_decodes_to_a_source(blob, sources), "apply_file accepted a file the decoder rejects"
        out.seek(0)
        image = out.read()
    assert len(image) == commit * page_size
    pages = dict(source_of(blob, sources).pages)
    written = 0
    for pgno in range(1, commit + 1):
        got = image[(pgno - 1) * page_size:pgno * page_size]
        if pgno in pages and pgno not in pre_claimed:
            assert got == pages[pgno], f"page {pgno} not written from the file"
            written += 1
        else:
            assert got == marker, f"page {pgno} overwritten although claimed or absent"
        bit = (claimed[pgno >> 6] >> (pgno & 63)) & 1
        assert bit == (pgno in pages or pgno in pre_claimed)
    assert result[2] == written and result[3] == written * page_size


def decode_segmented(blob: bytes, hdr: tuple, target: int) -> bytes:
    """Verify and apply a file in segments, the way restore does for large files: apply_segment per
    segment of the page index, join the CRCs with crc64_combine, verify the tail with finish_tail."""
    page_size, commit = hdr[1], hdr[2]
    claimed = core.new_claim_map(commit)
    with temp_file(blob) as src, tempfile.TemporaryFile() as out:
        fd = src.fileno()
        out.truncate(commit * page_size)
        ix = core.PageIndex(fd, len(blob))
        crc = core.crc64(blob[:100])
        index_crc = index_len = page_sum = 0
        last = 0
        for start, end, prev in ix.segments(target):
            r = core.apply_segment(fd, hdr, start, end, prev, out.fileno(), commit, claimed)
            seg_crc, hashed, seg_icrc, seg_ilen, seg_sum, seg_last, n_pages = r[:7]
            if prev != last and start != 100:
                raise core.LTXError("page index does not match the page frames", "format")
            crc = core.crc64_combine(crc, seg_crc, hashed)
            index_crc = core.crc64_combine(index_crc, seg_icrc, seg_ilen)
            index_len += seg_ilen
            page_sum ^= seg_sum
            if n_pages:
                last = seg_last
        core.finish_tail(fd, hdr, ix.end_marker_offset, crc, index_crc, index_len, last, page_sum)
        out.seek(0)
        return out.read()


@settings(FUZZ, max_examples=500)
@given(mutated_file(), st.sampled_from([1, 300, 5000, 1 << 30]))
def test_fuzz_segmented_apply(case, target):
    """The segmented path (PageIndex + apply_segment + finish_tail) must reject everything the whole-file
    decoder rejects: a corrupt file must never restore through it. As in restore, the header passed in
    is the one read from the file itself."""
    blob, sources = case
    hstatus, hdr = outcome(core.header_decode, blob[:100])
    if hstatus != "ok" or hdr[1] * hdr[2] > 64 << 20:
        return  # (restore sizes its output from the header before decoding: not this harness's concern)
    status, image = outcome(decode_segmented, blob, hdr, target)
    event(f"segmented {status}")
    if status != "ok":
        return
    assert assert_decodes_to_a_source(blob, sources), "segmented apply accepted a file the decoder rejects"
    source = source_of(blob, sources)
    page_size = source.header[1]
    assert len(image) == source.header[2] * page_size
    for pgno, page in source.pages:
        assert image[(pgno - 1) * page_size:pgno * page_size] == page


# -------------------------------------------------- the oracles above, on valid input (they must pass)


@pytest.mark.parametrize("names", MERGE_SETS, ids=lambda n: "+".join(n))
@pytest.mark.parametrize("use_fds", [False, True])
def test_merge_of_valid_inputs(names, use_fds):
    samples = [corpus()[n] for n in names]
    files = [temp_file(s.data) for s in samples]
    try:
        out = io.BytesIO()
        inputs = [f.fileno() for f in files] if use_fds else [io.BytesIO(s.data) for s in samples]
        hdr, _ = core.merge(inputs, out)
    finally:
        for f in files:
            f.close()
    assert decode_bytes(out.getvalue())[:2] == expected_merge(samples)
    assert hdr == expected_merge(samples)[0]


def test_merge_rejects_an_incomplete_snapshot():
    """Valid inputs whose merge would be a snapshot with a missing page: an error, no silent hole."""
    a = encode(512, [(1, bytes(512)), (2, bytes(512))], 1, 1)
    b = encode(512, [(4, bytes(512))], 2, 2, commit=4)
    with pytest.raises(core.LTXError) as e:
        core.merge([io.BytesIO(a), io.BytesIO(b)], io.BytesIO())
    check_error(e.value)


@pytest.mark.parametrize("name", sorted(corpus()))
def test_apply_and_segmented_apply_of_valid_files(name):
    sample = corpus()[name]
    page_size, commit = sample.header[1], sample.header[2]
    want = bytearray(commit * page_size)
    for pgno, page in sample.pages:
        want[(pgno - 1) * page_size:pgno * page_size] = page
    for target in (1, 300, 1 << 30):
        assert decode_segmented(sample.data, sample.header, target) == want
    with temp_file(sample.data) as src, tempfile.TemporaryFile() as out:
        claimed = core.new_claim_map(commit)
        result = core.apply_file(src.fileno(), sample.header, out.fileno(), commit, claimed)
        assert result[0] == sample.trailer and result[2] == len(sample.pages)
        out.seek(0)
        assert out.read().ljust(len(want), b"\0") == want


# ---------------------------------------------------------------------------------------- exhaustive


def exhaustive_flips(sample: Sample, xors: tuple[int, ...], payload_stride: int = 1) -> int:
    """Every single-byte change (inside compressed payloads: every payload_stride-th byte): detected, or
    inside a compressed payload and decoding to the same content. Returns how many changes decoded
    (harmlessly) without an error."""
    harmless = 0
    buf = bytearray(sample.data)
    for off in range(len(buf)):
        in_payload = any(a <= off < b for a, b in sample.payloads)
        if in_payload and off % payload_stride:
            continue
        for x in xors:
            buf[off] ^= x
            try:
                got = decode_bytes(bytes(buf))
            except core.LTXError as e:
                check_error(e)
            else:
                assert in_payload, f"{sample.name}: byte {off} ^ {x:#x} outside any payload went undetected"
                assert got == sample.expected, f"{sample.name}: byte {off} ^ {x:#x} changed the content " \
                    "without an error"
                harmless += 1
            buf[off] ^= x
    return harmless


SMALL = ["v2_l0_4", "v1_l0_1", "e512_1", "e512_34", "e512_empty", "leg512_stored", "leg512_lz4"]


@pytest.mark.parametrize("name", SMALL)
def test_exhaustive_single_byte_flips(name):
    if name not in corpus():
        pytest.skip("lz4 not installed")
    sample = corpus()[name]
    harmless = exhaustive_flips(sample, (0x01, 0x80, 0xFF))
    # The CRC covers every byte outside compressed payloads; inside them only the few bits LZ4 ignores
    # (e.g. the match-length nibble of the last token) or that copy identical bytes can change harmlessly.
    payload_bytes = sum(b - a for a, b in sample.payloads)
    assert harmless * 10 <= payload_bytes * 3, (harmless, payload_bytes)


def test_exhaustive_flips_stored_legacy_frames_all_detected():
    """In a stored LZ4 frame every byte is header, checksum or literal data: nothing is harmless."""
    assert exhaustive_flips(corpus()["leg512_stored"], (0x01, 0x10, 0xFF)) == 0


def test_exhaustive_flips_all_vector_files():
    """Every bit-0 flip of every byte of every reference file."""
    paths = sorted(VECTORS.glob("*/replica/ltx/*/*.ltx"))
    assert len(paths) >= 60
    harmless = 0
    for path in paths:
        # Payload bytes of the few large files are sampled; every structural byte is always flipped.
        stride = 1 if path.stat().st_size < 10000 else 5
        harmless += exhaustive_flips(make_sample(path.name, path.read_bytes()), (0x01,), stride)
    assert harmless < sum(p.stat().st_size for p in paths) // 100


@pytest.mark.parametrize("name", SMALL)
def test_exhaustive_truncations_insertions_deletions(name):
    if name not in corpus():
        pytest.skip("lz4 not installed")
    sample = corpus()[name]
    data = sample.data
    cases = [data[:n] for n in range(len(data))]
    cases += [data[:i] + data[i + 1:] for i in range(len(data))]
    cases += [data[:i] + b"\x00" + data[i:] for i in range(len(data) + 1)]
    cases += [data + b"\x00", data + data]
    for i, blob in enumerate(cases):
        with pytest.raises(core.LTXError) as e:
            decode_bytes(blob)
        check_error(e.value)
        if i < len(data):  # truncations also through a file descriptor and PageIndex
            with temp_file(blob) as f:
                with pytest.raises(core.LTXError):
                    decode_bytes(blob, f.fileno())
                status, _ = outcome(core.PageIndex, f.fileno(), len(blob))
                assert status == "err" or len(blob) >= 131


def test_legacy_and_block_payloads_decode_identically():
    """The same pages written as LZ4 blocks and as legacy LZ4 frames decode to the same content."""
    rng = random.Random(11)
    pages = [(p, page_data(rng, 512, k)) for p, k in [(1, "mixed"), (2, "random"), (3, "zero")]]
    framers = [stored_lz4_frame] + ([compressed_lz4_frame] if lz4frame is not None else [])
    want = decode_bytes(encode(512, pages, 1, 1))[1]
    for framer in framers:
        assert decode_bytes(encode_legacy(512, pages, 1, 1, framer))[1] == want == tuple(pages)


def test_legacy_frame_longer_or_shorter_than_a_page_is_rejected():
    """A legacy frame that decompresses to more or less than one page is an error, not a silent cut. The
    file checksum is computed over the first 512 bytes, so only the length check can catch it."""
    for size in (1, 511, 513, 1024, 4096):
        blob = encode_legacy(512, [(1, bytes(512))], 1, 1,
                             lambda _d, size=size: stored_lz4_frame(bytes(size)))
        with pytest.raises(core.LTXError) as e:
            decode_bytes(blob)
        check_error(e.value)
    good = encode_legacy(512, [(1, bytes(512))], 1, 1, stored_lz4_frame)
    assert decode_bytes(good)[1] == ((1, bytes(512)),)


def test_decoder_survives_large_claimed_sizes():
    """Huge csize / index_len values must be rejected before any allocation or read of that size."""
    base = corpus()["e512_1"].data
    for off, width in [(106, 4), (len(base) - 24, 8)]:
        for value in (0xFFFFFFFF, 0x7FFFFFFF, (1 << 64) - 1 if width == 8 else 0x80000000):
            blob = base[:off] + value.to_bytes(width, "big") + base[off + width:]
            with pytest.raises(core.LTXError):
                decode_bytes(blob)
            with temp_file(blob) as f:
                status, _ = outcome(core.PageIndex, f.fileno(), len(blob))
                assert status == "err" or off == 106  # PageIndex does not read page headers


def test_decoder_rejects_every_file_shorter_than_a_header_via_fd():
    for n in range(100):
        with temp_file(corpus()["v1_l0_1"].data[:n]) as f:
            with pytest.raises(core.LTXError) as e:
                core.Decoder(f.fileno()).read_header()
            assert e.value.kind == "truncated"


def test_random_offsets_into_fd_decoder():
    """Decoder(fd, offset=...) at a wrong offset reads garbage: it must fail cleanly."""
    data = corpus()["v1_l0_7"].data
    with temp_file(data) as f:
        for off in [1, 50, 99, 101, len(data) - 100, len(data) - 1, len(data), len(data) + 10]:
            status, _ = outcome(lambda off=off: core.Decoder(f.fileno(), offset=off).verify())
            assert status == "err"
        assert core.Decoder(f.fileno(), offset=0).verify()[0] == corpus()["v1_l0_7"].header
