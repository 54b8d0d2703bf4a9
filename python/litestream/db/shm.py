"""A read-only look at SQLite's WAL index (the -shm file): how far the WAL has been copied into the
database file (nBackfill). Replication uses it to decide whether the database file can still be trusted
to hold only replicated content. Any doubt (no file, torn read, other salts) answers None."""

from __future__ import annotations

import struct
import sys

_WAL_INDEX_VERSION = 3007000
_HDR = 48


def read_backfill_fd(fd: int, wal_header: bytes) -> tuple[int, int] | None:
    """(mxFrame, nBackfill) of the WAL generation whose 32-byte header is wal_header, or None.

    fd must stay open for as long as SQLite has the database open: closing a descriptor of the -shm file
    would drop the POSIX locks SQLite holds on it (our read marks among them)."""
    import os

    try:
        data = os.pread(fd, 136, 0)
    except OSError:
        return None
    if len(data) < 136 or data[:_HDR] != data[_HDR:2 * _HDR]:
        return None
    order = "<" if sys.byteorder == "little" else ">"
    version, _, _, is_init = struct.unpack_from(order + "IIIB", data, 0)
    if version != _WAL_INDEX_VERSION or is_init != 1:
        return None
    # The salts are kept as the raw WAL header bytes.
    if data[32:40] != wal_header[16:24]:
        return None
    mx_frame = struct.unpack_from(order + "I", data, 16)[0]
    n_backfill = struct.unpack_from(order + "I", data, 96)[0]
    return mx_frame, n_backfill
