"""Durable file operations: write to a temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any, BinaryIO

_COPY_CHUNK = 1 << 20


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def write_atomic(path: str, src: BinaryIO | bytes, mtime_ns: int | None = None) -> int:
    """Write src to path so that readers see either nothing or the whole file. Returns the size."""

    def fill(fd: int) -> int | None:
        with open(fd, "wb", closefd=False) as f:
            if isinstance(src, bytes | bytearray | memoryview):
                f.write(src)
            else:
                while chunk := src.read(_COPY_CHUNK):
                    f.write(chunk)
        return mtime_ns

    return write_atomic_with(path, fill)


def write_atomic_with(path: str, fill: Callable[[int], int | None], final: Callable[[], str] | None = None) -> int:
    """Like write_atomic, with fill(fd) writing the content into the temp file (it may seek and patch) and
    returning the mtime to give the file (None: leave it). final, when given, names the file once fill has
    run (path then only gives the directory and temp name). Returns the size."""
    directory = os.path.dirname(path) or "."
    makedirs(directory)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            mtime_ns = fill(fd)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, final() if final is not None else path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)
    return size


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def release_free_memory() -> None:
    """Give the allocator's free memory back to the OS (glibc malloc_trim; a no-op elsewhere)."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass
