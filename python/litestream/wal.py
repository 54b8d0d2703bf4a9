"""Python face of the C WAL reader: the WAL header and committed page maps."""

from __future__ import annotations

from typing import NamedTuple

from litestream import _ltxcore as core
from litestream._ltxcore import PrevFrameMismatch

__all__ = ["FRAME_HEADER_SIZE", "HEADER_SIZE", "PrevFrameMismatch", "WALHeader", "WALScan", "read_header", "scan"]

HEADER_SIZE = 32
FRAME_HEADER_SIZE = 24


class WALHeader(NamedTuple):
    magic: int
    version: int
    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    cksum1: int
    cksum2: int

    @property
    def frame_size(self) -> int:
        return FRAME_HEADER_SIZE + self.page_size

    @property
    def salts(self) -> tuple[int, int]:
        return self.salt1, self.salt2


class WALScan(NamedTuple):
    pgnos: object  # array('I'), ascending
    offsets: object  # array('Q'): frame offset of the latest committed version of each page
    start: int
    end: int  # just past the last commit frame (== start when nothing was committed)
    commit: int  # database size in pages after the last commit, 0 when none
    s0: int
    s1: int
    n_frames: int
    n_commits: int
    valid_end: int
    limited: bool

    def page_map(self) -> dict[int, int]:
        return dict(zip(self.pgnos, self.offsets, strict=True))


def read_header(fd: int) -> WALHeader | None:
    """The WAL header, or None when the WAL is empty to SQLite (short or bad header checksum)."""
    import os

    h = core.wal_header_parse(os.pread(fd, HEADER_SIZE, 0))
    return WALHeader(*h) if h is not None else None


def scan(fd: int, header: WALHeader, start: int = HEADER_SIZE, salts: tuple[int, int] | None = None,
         max_bytes: int = 0, end_limit: int = 0) -> WALScan:
    """Committed pages from `start` on, reading no frame that ends past end_limit (0: no limit); raises
    PrevFrameMismatch when the frame before `start` does not carry `salts`."""
    s1, s2 = salts if salts is not None else header.salts
    return WALScan(**core.wal_scan(fd, tuple(header), start, s1, s2, max_bytes, end_limit))
