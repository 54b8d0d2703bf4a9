"""Durable file operations: write to a temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import functools
import os
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
    directory = os.path.dirname(path) or "."
    makedirs(directory)
    tmp = path + ".tmp"
    size = 0
    try:
        with open(tmp, "wb") as f:
            if isinstance(src, bytes | bytearray | memoryview):
                f.write(src)
                size = len(src)
            else:
                while chunk := src.read(_COPY_CHUNK):
                    f.write(chunk)
                    size += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
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
