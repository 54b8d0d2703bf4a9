"""A read-only look at SQLite's WAL index (the -shm file), and SQLite's checkpoint lock.

Replication uses the index to decide whether the database file can still be trusted to hold nothing
past the replicated position. Two counters say how far the WAL has been copied into the database file:
nBackfill (frames copied) and nBackfillAttempted (frames a checkpoint set out to copy, written before it
starts). They differ after a recovery: when every process that had the database open died, the next one
to open it rebuilds the index with nBackfill = 0, although earlier checkpoints may have copied any number
of frames, and records nBackfillAttempted = mxFrame instead. So the database file is known to hold no
frame past F only when both counters are <= F. Any doubt (no file, torn read, other salts) answers None."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import sys
import time
from typing import NamedTuple

_WAL_INDEX_VERSION = 3007000
_HDR = 48
_INFO_SIZE = 136  # two copies of the index header, then WalCkptInfo up to nBackfillAttempted
_TORN_READ_RETRIES = 3


class WalIndexInfo(NamedTuple):
    mx_frame: int  # frames in the WAL (committed, this generation)
    backfill: int  # nBackfill: frames copied into the database file
    backfill_attempted: int  # nBackfillAttempted: frames a checkpoint (or a recovery) may have copied

    @property
    def copied_upto(self) -> int:
        """No frame past this one can be in the database file."""
        return max(self.backfill, self.backfill_attempted)


def read_info_fd(fd: int, wal_header: bytes) -> WalIndexInfo | None:
    """The WAL index of the generation whose 32-byte header is wal_header, or None.

    fd must stay open for as long as SQLite has the database open: closing a descriptor of the -shm file
    would drop the POSIX locks SQLite holds on it (our read marks among them)."""
    for _ in range(_TORN_READ_RETRIES):
        try:
            data = os.pread(fd, _INFO_SIZE, 0)
        except OSError:
            return None
        if len(data) < _INFO_SIZE:
            return None
        if data[:_HDR] == data[_HDR:2 * _HDR]:
            break  # the two copies agree: not torn by a concurrent commit
    else:
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
    attempted = struct.unpack_from(order + "I", data, 128)[0]
    return WalIndexInfo(mx_frame, n_backfill, attempted)


# The unix VFS keeps its WAL locks as fcntl byte locks on the -shm file: byte 120 + lock number;
# WAL_WRITE_LOCK is lock 0 and WAL_CKPT_LOCK lock 1.
_WRITE_LOCK_BYTE = 120
_CKPT_LOCK_BYTE = 121
# struct flock as the C library lays it out (native alignment pads the shorts before the off_t fields).
_FLOCK = "hhqqi4x"
_LOCK_POLL_S = 0.001


def open_fd(path: str) -> int | None:
    """The -shm file for reading and, when allowed, for taking the checkpoint lock."""
    for flags in (os.O_RDWR, os.O_RDONLY):
        try:
            return os.open(path, flags | os.O_CLOEXEC)
        except OSError:
            continue
    return None


def hold_checkpoint_lock(fd: int | None, wait_s: float = 0.0) -> bool:
    """Take SQLite's checkpoint lock for this process until our next checkpoint ends (or a release).

    While it is held, other processes' checkpoints return busy at once, exactly as while one of ours
    runs: nothing is copied into the database file. fcntl locks are per process and do not stack: SQLite's
    own checkpoint in this process takes the byte without conflict and its unlock at the end releases ours
    too, so the hold cannot outlive our checkpoint. Best effort: False when another process kept it for
    wait_s, or the fd is read-only."""
    if fd is None:
        return False
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _CKPT_LOCK_BYTE)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_LOCK_POLL_S)


def write_lock_held(fd: int | None) -> bool:
    """Whether another process holds SQLite's WAL write lock: a writer is between writing its frames and
    publishing them in the index header. Only asks (F_GETLK): taking the byte, even for a moment, would
    make the application's next write fail with SQLITE_BUSY when it runs without a busy timeout. True
    when it cannot tell, so that a caller keeps waiting rather than miss a commit."""
    if fd is None:
        return True
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _WRITE_LOCK_BYTE, 1, 0)
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    except OSError:
        return True
    return struct.unpack(_FLOCK, answer)[0] != fcntl.F_UNLCK


def release_checkpoint_lock(fd: int | None) -> None:
    """Let go of a hold that no checkpoint of ours has ended. Only call it while no connection of this
    process is checkpointing the database (the byte is shared with SQLite's own lock)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, _CKPT_LOCK_BYTE)


class WalIndex:
    """One database's -shm file as replication uses it: the copy counters, and the checkpoint-lock hold.

    `held` says whether a hold of ours may be in place, so that nested users do not release each other's;
    SQLite's own checkpoint in this process can end a hold silently, so code that relies on one takes it
    again (hold_checkpoint_lock succeeds at once while we still have it) to prove it was never lost."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd
        self.held = False
        self.pinned = 0  # snapshots being encoded that need the hold for their whole duration

    def info(self, wal_header: bytes) -> WalIndexInfo | None:
        return read_info_fd(self.fd, wal_header) if self.fd is not None else None

    def writer_active(self) -> bool:
        return write_lock_held(self.fd)

    def hold(self, wait_s: float = 0.0) -> bool:
        # A failure while we thought we held it means it was lost and another process has it now.
        self.held = hold_checkpoint_lock(self.fd, wait_s)
        return self.held

    def release(self) -> None:
        if not self.pinned:
            release_checkpoint_lock(self.fd)
        self.held = False

    def pin(self, wait_s: float = 0.0) -> bool:
        """Hold the checkpoint lock until unpin(), whatever other users release meanwhile (the caller makes
        sure no checkpoint of this process runs: SQLite's unlock at its end would drop it)."""
        if self.pinned or hold_checkpoint_lock(self.fd, wait_s):
            self.pinned += 1
            return True
        return False

    def unpin(self) -> None:
        self.pinned -= 1
        if not self.pinned:
            release_checkpoint_lock(self.fd)
            self.held = False
