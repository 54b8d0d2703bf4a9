"""Python face of the LTX core: headers, TXIDs, file names and file infos.

The byte-level work (decode, encode, merge, checksums) is in the C core (`litestream._ltxcore`); this
module gives it names and types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from litestream import _ltxcore as core
from litestream._ltxcore import LTXError

__all__ = [
    "CHECKSUM_FLAG",
    "FLAG_NO_CHECKSUM",
    "HEADER_SIZE",
    "SNAPSHOT_LEVEL",
    "FileInfo",
    "Header",
    "LTXError",
    "format_filename",
    "format_txid",
    "lock_pgno",
    "parse_filename",
    "parse_txid",
    "read_header",
]

HEADER_SIZE = core.HEADER_SIZE
FLAG_NO_CHECKSUM = core.FLAG_NO_CHECKSUM
CHECKSUM_FLAG = core.CHECKSUM_FLAG
SNAPSHOT_LEVEL = 9
MAX_LEVEL = 9

_NAME_RE = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16})\.ltx")
_TXID_RE = re.compile(r"[0-9a-fA-F]{16}")


class Header(NamedTuple):
    flags: int
    page_size: int
    commit: int
    min_txid: int
    max_txid: int
    timestamp: int  # milliseconds since the Unix epoch
    pre_apply_checksum: int = 0
    wal_offset: int = 0
    wal_size: int = 0
    wal_salt1: int = 0
    wal_salt2: int = 0
    node_id: int = 0

    @property
    def is_snapshot(self) -> bool:
        return self.min_txid == 1

    @property
    def has_checksums(self) -> bool:
        return not self.flags & FLAG_NO_CHECKSUM

    def encode(self) -> bytes:
        return core.header_encode(self)

    @classmethod
    def decode(cls, data: bytes) -> Header:
        return cls(*core.header_decode(data))


def read_header(f) -> Header:
    """Read and validate the header at the start of an open binary file."""
    data = f.read(HEADER_SIZE)
    return Header.decode(data)


def format_txid(txid: int) -> str:
    return f"{txid:016x}"


def parse_txid(s: str) -> int:
    """Exactly 16 hex digits, as the reference requires (`-txid 4` is an error)."""
    # Go's strconv.ParseUint: no sign, prefix, underscores or spaces (Python's int() allows them all).
    if not _TXID_RE.fullmatch(s):
        raise ValueError("invalid txid format")
    return int(s, 16)


def format_filename(min_txid: int, max_txid: int) -> str:
    return f"{min_txid:016x}-{max_txid:016x}.ltx"


def parse_filename(name: str) -> tuple[int, int] | None:
    m = _NAME_RE.fullmatch(name)
    if not m:
        return None
    return int(m.group(1), 16), int(m.group(2), 16)


def lock_pgno(page_size: int) -> int:
    return core.lock_pgno(page_size)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One LTX file of a replica, as a backend lists it."""

    level: int
    min_txid: int
    max_txid: int
    size: int
    created_at_ns: int  # CreatedAt in nanoseconds since the epoch (file replicas: the mtime)

    @property
    def name(self) -> str:
        return format_filename(self.min_txid, self.max_txid)

    def is_contiguous_after(self, prev_max: int) -> bool:
        """ltx.IsContiguous: may overlap what came before, must not leave a gap, must move forward."""
        return self.min_txid <= prev_max + 1 and self.max_txid > prev_max
