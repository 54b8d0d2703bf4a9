"""Downloading one file of a replica to a local path, for any backend: resumed after a cut, retried with
back-off and jitter, and in parallel ranged reads for large files (the reference reads each file in one
stream; a 1 GiB snapshot over one connection is bound by that connection's throughput)."""

from __future__ import annotations

import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from litestream.backends.base import AuthError, BackendError, NotFoundError, ReplicaClient
from litestream.ltx import FileInfo

ATTEMPTS = 6
CHUNK = 16 << 20  # bytes per ranged read of a large file
PARALLEL_ABOVE = 2 * CHUNK
_COPY = 1 << 20


def _pause(attempt: int) -> None:
    time.sleep(min(5.0, 0.2 * 2**attempt) * random.uniform(0.8, 1.2))


def _fetch_range(client: ReplicaClient, info: FileInfo, fd: int, start: int, size: int) -> None:
    """Bytes [start, start+size) of the file (size 0: to its end) into fd at the same offset. A read cut
    short resumes where it stopped; NotFound and Auth errors are final."""
    done = 0
    attempt = 0
    while True:
        try:
            want = size - done if size else 0
            with client.open_ltx_file(info.level, info.min_txid, info.max_txid, start + done, want) as src:
                while True:
                    chunk = src.read(_COPY if not size else min(_COPY, size - done))
                    if not chunk:
                        break
                    os.pwrite(fd, chunk, start + done)
                    done += len(chunk)
                    attempt = 0  # progress: a later cut gets the full number of attempts again
            if size and done < size:
                raise BackendError(f"read {info.name}: {size - done} bytes short")
            return
        except (NotFoundError, AuthError):
            raise
        except (BackendError, OSError) as e:
            attempt += 1
            if attempt >= ATTEMPTS:
                raise BackendError(f"{e} (after {ATTEMPTS} attempts)") from None
            _pause(attempt)


def download(client: ReplicaClient, info: FileInfo, path: str, workers: int = 4) -> None:
    """The whole file into path (created or truncated). Large files whose size the listing gave are read
    as `workers` ranged reads at once."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if info.size >= PARALLEL_ABOVE and workers > 1:
            os.ftruncate(fd, info.size)
            ranges = [(off, min(CHUNK, info.size - off)) for off in range(0, info.size, CHUNK)]
            with ThreadPoolExecutor(max_workers=min(workers, len(ranges))) as pool:
                for f in [pool.submit(_fetch_range, client, info, fd, off, n) for off, n in ranges]:
                    f.result()
        else:
            _fetch_range(client, info, fd, 0, 0)
    finally:
        os.close(fd)
