"""Inputs for the core benchmarks: a ~1 GiB database file and its LTX snapshot, made once per session.

The database is synthesized (not built with SQLite, which would take minutes): every page is laid out
like a SQLite b-tree page of a mixed application database, with content of mixed compressibility:

  40%  table leaf pages of text rows (English-like words: LZ4 shrinks them ~2x)
  30%  table leaf pages of rows holding random blobs (incompressible)
  15%  overflow pages, half random, half text
  10%  interior pages (child pointers and rowids, mostly free space)
   5%  freelist pages (zeros)

Pages are filled to 60-100%, the rest is zeros as in SQLite. Set LITESTREAM_BENCH_DB to the path of a
real SQLite database (e.g. the one bench/compare_restore.py caches) to benchmark that instead.

LITESTREAM_BENCH_BYTES sets the amount of page data (default 1 GiB, plus 1 MiB so that the lock page
at offset 1 GiB is crossed); LITESTREAM_BENCH_ROUNDS the rounds per benchmark (default 5)."""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from litestream import _ltxcore as core

PAGE_SIZE = 4096
BENCH_BYTES = int(os.environ.get("LITESTREAM_BENCH_BYTES", str(1 << 30)))
ROUNDS = int(os.environ.get("LITESTREAM_BENCH_ROUNDS", "5"))
GB = 1e9

_WORDS_SEED = 1


@dataclass(frozen=True)
class BenchInput:
    db_path: Path
    ltx_path: Path
    page_size: int
    commit: int
    synthetic: bool

    @property
    def lock(self) -> int:
        return core.lock_pgno(self.page_size)

    @property
    def n_pages(self) -> int:
        """Pages in the snapshot: 1..commit without the lock page."""
        return self.commit - (1 if self.lock <= self.commit else 0)

    @property
    def page_bytes(self) -> int:
        return self.n_pages * self.page_size


# ------------------------------------------------------------------------------------------ page synthesis


def _varint(v: int) -> bytes:
    """SQLite varint (values < 2**56 are enough here)."""
    if v < 0x80:
        return bytes((v,))
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes(reversed(out))


class PageSynth:
    """Deterministic generator of SQLite-looking pages."""

    def __init__(self, seed: int, page_size: int = PAGE_SIZE) -> None:
        self.rng = random.Random(seed)
        self.ps = page_size
        self.rowid = 1
        wrng = random.Random(_WORDS_SEED)
        vocab = ["".join(wrng.choice("etaoinshrdlucmfwypvbgkqjxz") for _ in range(wrng.randint(2, 10)))
                 for _ in range(3000)]
        weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf-like, as in natural text
        self.text = " ".join(wrng.choices(vocab, weights, k=1 << 19)).encode()

    def _text(self, n: int) -> bytes:
        i = self.rng.randrange(len(self.text) - n)
        return self.text[i:i + n]

    def _row(self, blob: bool) -> bytes:
        rng = self.rng
        if blob:
            cols = [(4, struct.pack(">i", rng.randrange(1 << 31))), (0, b"")]
            data = rng.randbytes(rng.randint(100, 900))
            name = self._text(rng.randint(8, 24))
            cols += [(2 * len(data) + 12, data), (2 * len(name) + 13, name)]
        else:
            title = self._text(rng.randint(10, 40))
            body = self._text(rng.randint(40, 400))
            cols = [(0, b""), (2 * len(title) + 13, title), (2 * len(body) + 13, body),
                    (6, struct.pack(">q", 1_700_000_000_000 + rng.randrange(10**10))), (1, b"\x01")]
        types = b"".join(_varint(t) for t, _ in cols)
        payload = _varint(len(types) + 1) + types + b"".join(v for _, v in cols)
        self.rowid += 1
        return _varint(len(payload)) + _varint(self.rowid) + payload

    def _btree(self, kind: int, cells: list[bytes], hdr: int, right: int = 0) -> bytes:
        ps = self.ps
        page = bytearray(ps)
        ptr = hdr
        end = ps
        for c in cells:
            end -= len(c)
            page[end:end + len(c)] = c
            struct.pack_into(">H", page, ptr, end)
            ptr += 2
        struct.pack_into(">BHHHB", page, 0, kind, 0, len(cells), end, 0)
        if hdr == 12:
            struct.pack_into(">I", page, 8, right)
        return bytes(page)

    def _fill(self, make: Iterator[bytes], hdr: int) -> list[bytes]:
        budget = int((self.ps - hdr) * self.rng.uniform(0.6, 1.0))
        cells: list[bytes] = []
        used = 0
        for c in make:
            if used + len(c) + 2 > budget:
                break
            cells.append(c)
            used += len(c) + 2
        return cells

    def _rows(self, blob: bool) -> Iterator[bytes]:
        while True:
            yield self._row(blob)

    def _children(self) -> Iterator[bytes]:
        while True:
            yield struct.pack(">I", self.rng.randrange(2, 1 << 18)) + _varint(self.rng.randrange(1 << 30))

    def page(self) -> bytes:
        rng = self.rng
        r = rng.random()
        if r < 0.40:
            return self._btree(0x0D, self._fill(self._rows(False), 8), 8)
        if r < 0.70:
            return self._btree(0x0D, self._fill(self._rows(True), 8), 8)
        if r < 0.85:
            body = rng.randbytes(self.ps - 4) if rng.random() < 0.5 else self._text(self.ps - 4)
            return struct.pack(">I", rng.randrange(1 << 18)) + body
        if r < 0.95:
            return self._btree(0x05, self._fill(self._children(), 12), 12, rng.randrange(1 << 18))
        return bytes(self.ps)


def synthesize_db(path: Path, commit: int, page_size: int = PAGE_SIZE, seed: int = 42) -> None:
    """Write a commit-page database file; the lock page slot stays zero as in SQLite."""
    synth = PageSynth(seed, page_size)
    lock = core.lock_pgno(page_size)
    with open(path, "wb") as f:
        page1 = bytearray(synth.page())
        page1[:100] = bytes(100)
        page1[:16] = b"SQLite format 3\x00"
        struct.pack_into(">HBBBBBBII", page1, 16, page_size if page_size < 65536 else 1, 1, 1, 0, 64, 32, 32,
                         1, commit)
        chunk: list[bytes] = [bytes(page1)]
        for pgno in range(2, commit + 1):
            chunk.append(bytes(page_size) if pgno == lock else synth.page())
            if len(chunk) == 1024:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))


def encode_snapshot(db_path: Path, out_fd: int, page_size: int, commit: int) -> tuple[int, int]:
    """LTX snapshot (TXID 1, no checksums) of pages 1..commit of db_path, written to out_fd.
    Returns the trailer (post_apply_checksum, file_checksum)."""
    header = (core.FLAG_NO_CHECKSUM, page_size, commit, 1, 1, 1_700_000_000_000, 0, 0, 0, 0, 0, 0)
    assert core.HEADER_FIELDS[:5] == ("flags", "page_size", "commit", "min_txid", "max_txid")
    enc = core.Encoder(out_fd)
    enc.write_header(header)
    db_fd = os.open(db_path, os.O_RDONLY)
    try:
        enc.write_pages_from_fd(db_fd, 1, commit, core.lock_pgno(page_size))
    finally:
        os.close(db_fd)
    return enc.finish()


def _real_db(path: Path) -> tuple[int, int]:
    with open(path, "rb") as f:
        hdr = f.read(100)
    if hdr[:16] != b"SQLite format 3\x00":
        raise pytest.UsageError(f"LITESTREAM_BENCH_DB={path} is not a SQLite database")
    ps = struct.unpack(">H", hdr[16:18])[0]
    ps = 65536 if ps == 1 else ps
    return ps, os.path.getsize(path) // ps


@pytest.fixture(scope="session")
def bench_input(tmp_path_factory: pytest.TempPathFactory) -> BenchInput:
    tmp = tmp_path_factory.mktemp("bench")
    real = os.environ.get("LITESTREAM_BENCH_DB")
    if real:
        db_path = Path(real)
        page_size, commit = _real_db(db_path)
    else:
        db_path, page_size = tmp / "synthetic.db", PAGE_SIZE
        commit = -(-BENCH_BYTES // page_size) + (256 if BENCH_BYTES >= (1 << 30) else 0)
        synthesize_db(db_path, commit, page_size)
    ltx_path = tmp / "snapshot.ltx"
    fd = os.open(ltx_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        encode_snapshot(db_path, fd, page_size, commit)
    finally:
        os.close(fd)
    return BenchInput(db_path, ltx_path, page_size, commit, synthetic=not real)


# ------------------------------------------------------------------------------------- throughput summary

_RESULTS: list[tuple[str, int, float, float]] = []


def record_throughput(benchmark: object, nbytes: int) -> None:
    """Attach GB/s of page data to the benchmark (extra_info) and to the end-of-session summary."""
    extra = benchmark.extra_info  # type: ignore[attr-defined]
    extra["bytes"] = nbytes
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: a single unmeasured call
        return
    best, median = stats.stats.min, stats.stats.median
    extra["gb_per_s_best"] = round(nbytes / best / GB, 3)
    extra["gb_per_s_median"] = round(nbytes / median / GB, 3)
    _RESULTS.append((benchmark.name, nbytes, best, median))  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("throughput (GB/s = 1e9 bytes of page data per second)")
    tr.write_line(f"{'benchmark':<48} {'MiB':>8} {'best GB/s':>10} {'median GB/s':>12}")
    for name, nbytes, best, median in _RESULTS:
        tr.write_line(f"{name:<48} {nbytes / 2**20:>8.0f} {nbytes / best / GB:>10.2f} "
                      f"{nbytes / median / GB:>12.2f}")
