"""A read-only look at SQLite's WAL index (the -shm file): how far the WAL has been copied into the
database file (nBackfill). Replication uses it to decide whether the database file can still be trusted
to hold only replicated content. Any doubt (no file, torn read, other salts) answers None."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import sys

_WAL_INDEX_VERSION = 3007000
_HDR = 48


def read_backfill_fd(fd: int, wal_header: bytes) -> tuple[int, int] | None:
    """(mxFrame, nBackfill) of the WAL generation whose 32-byte header is wal_header, or None.

    fd must stay open for as long as SQLite has the database open: closing a descriptor of the -shm file
    would drop the POSIX locks SQLite holds on it (our read marks among them)."""
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


# The unix VFS keeps its WAL locks as fcntl byte locks on the -shm file: byte 120 + lock number, and
# WAL_CKPT_LOCK is lock 1.
_CKPT_LOCK_BYTE = 121


def open_fd(path: str) -> int | None:
    """The -shm file for reading and, when allowed, for taking the checkpoint lock."""
    for flags in (os.O_RDWR, os.O_RDONLY):
        try:
            return os.open(path, flags | os.O_CLOEXEC)
        except OSError:
            continue
    return None


def hold_checkpoint_lock(fd: int | None) -> bool:
    """Take SQLite's checkpoint lock for this process until our next checkpoint ends.

    Moving our read transaction forward lets other connections copy the frames it released; the
    application's autocheckpoint, running in its commit path, would then do that copy (and its fsyncs)
    before our own checkpoint gets to it. With the lock held from before the move, the application's
    checkpoint attempts return at once as busy, exactly as while our checkpoint runs, and the copy happens
    in our process. fcntl locks are per process and do not stack: SQLite's own checkpoint in this process
    takes the byte without conflict and its unlock at the end releases ours too, so the hold cannot
    outlive our checkpoint. Best effort: False when another process holds it or the fd is read-only."""
    if fd is None:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _CKPT_LOCK_BYTE)
        return True
    except OSError:
        return False


def release_checkpoint_lock(fd: int | None) -> None:
    """Let go of a hold that no checkpoint of ours has ended. Only call it while no connection of this
    process is checkpointing the database (the byte is shared with SQLite's own lock)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _CKPT_LOCK_BYTE)
