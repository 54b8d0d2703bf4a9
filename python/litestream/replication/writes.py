"""Writing a file that is encoded in place (snapshots, compactions) to any backend."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable

from litestream.backends.base import ReplicaClient, Source
from litestream.ltx import FileInfo, Header


def write_filled(client: ReplicaClient, level: int, fill: Callable[[int], Header],
                 spool_dir: str | None = None) -> FileInfo:
    """Store the file fill(fd) encodes; the Header it returns names it. Backends that offer a descriptor of
    their own (file) get it written once, in place; the others through a spool file, until they stream
    uploads of their own."""
    direct = getattr(client, "write_ltx_file_with", None)
    if direct is not None:
        return direct(level, fill)
    fd, tmp = tempfile.mkstemp(prefix=".litestream-spool-", suffix=".ltx.tmp", dir=spool_dir)
    try:
        h = fill(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        return client.write_ltx_file(level, h.min_txid, h.max_txid, Source.file(tmp), h.timestamp)
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
