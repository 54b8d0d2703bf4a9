"""Compaction of one level of a replica into the next, through the ReplicaClient protocol only.

A compaction merges the files of the source level past the destination level's newest TXID into one
file [min, max] of the destination level (the reference's Compactor.Compact). The merge runs in the C
core, streaming, newest page wins: memory follows the page index, never the database size. A single
source file is stored again as it is (the file backend hard-links it): merging it would only rewrite
the same bytes (upstream #1407), and the reference's restore planner accepts the copy like any other
file of the level."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from typing import BinaryIO

from litestream import _ltxcore as core
from litestream.backends.base import ReplicaClient, Source
from litestream.db.checksums import decode_reserved, encode_reserved
from litestream.ltx import HEADER_SIZE, SNAPSHOT_LEVEL, FileInfo, Header
from litestream.replication.writes import write_filled

# The path of a local copy of a file of the replica (the meta dir's L0 files), or None.
LocalOpener = Callable[[int, int, int], str | None]


class NoCompaction(Exception):
    """The source level has nothing past the destination level (the reference's ErrNoCompaction)."""


def max_file(client: ReplicaClient, level: int) -> FileInfo | None:
    """The file of a level with the highest MaxTXID (None: the level is empty)."""
    best = None
    for info in client.ltx_files(level, 0, False):
        if best is None or info.max_txid > best.max_txid:
            best = info
    return best


class Compactor:
    def __init__(self, client: ReplicaClient, local: LocalOpener | None = None) -> None:
        self.client = client
        self.local = local

    def compact(self, dst_level: int, src_level: int) -> FileInfo:
        prev = max_file(self.client, dst_level)
        seek = prev.max_txid + 1 if prev is not None else 0
        srcs = list(self.client.ltx_files(src_level, seek, False))
        if prev is None and srcs and srcs[0].min_txid == 1:
            srcs = self._past_snapshot(srcs)
        if not srcs:
            raise NoCompaction()
        if len(srcs) == 1:
            return self.copy(srcs[0], dst_level)
        with contextlib.ExitStack() as stack:
            inputs = [stack.enter_context(self.open(i)) for i in srcs]
            seekable = all(_is_file(f) for f in inputs)
            # Streams from a remote backend are read once, by the merge; their checksums are not carried.
            sums = _chained_sums([_pread_header(f) for f in inputs]) if seekable else None
            sources = [f.fileno() for f in inputs] if seekable else inputs

            def fill(fd: int) -> Header:
                # The checksums go into the header as it is streamed out: no seek back, so the same code
                # serves a backend that streams the upload.
                hdr, _ = core.merge(sources, fd, reserved=encode_reserved(*sums) if sums is not None else None)
                return Header(*hdr)

            return write_filled(self.client, dst_level, fill)

    def _past_snapshot(self, srcs: list[FileInfo]) -> list[FileInfo]:
        """The first compaction into a level whose sources start with a full image [1, N] (the initial
        sync's snapshot in L0) leaves out what an L9 snapshot [1, X] already holds: the level's first file
        is then [X+1, M], not another copy of the whole database at every level (the reference stores it
        again in L1, L2 and L3: upstream #1407). Restores of the reference and ours start from the L9
        file and continue at X+1 exactly as they would after any later snapshot."""
        snaps = {i.max_txid for i in self.client.ltx_files(SNAPSHOT_LEVEL, 0, False) if i.min_txid == 1}
        covered = [x for x in snaps if x >= srcs[0].max_txid]
        for x in sorted(covered, reverse=True):
            rest = [i for i in srcs if i.min_txid > x]
            if not rest or rest[0].min_txid == x + 1:
                return rest
        return srcs

    def copy(self, info: FileInfo, dst_level: int) -> FileInfo:
        """Store one file again, unchanged, at another level (a merge of one input would equal it): the
        file backend hard-links a local copy, the others upload the same bytes."""
        local = self._local_path(info)
        if local is not None:
            with open(local, "rb", buffering=0) as f:
                ts = Header.decode(f.read(HEADER_SIZE)).timestamp
            return self.client.write_ltx_file(dst_level, info.min_txid, info.max_txid, Source.file(local), ts)
        # Remote: a ranged read of the header, not a whole-object GET cut off after 100 bytes.
        with self.client.open_ltx_file(info.level, info.min_txid, info.max_txid, 0, HEADER_SIZE) as f:
            ts = Header.decode(f.read(HEADER_SIZE)).timestamp
        with self.client.open_ltx_file(info.level, info.min_txid, info.max_txid) as stream:
            return self.client.write_ltx_file(dst_level, info.min_txid, info.max_txid,
                                              Source.of(stream, info.size), ts)

    def _local_path(self, info: FileInfo) -> str | None:
        """A local copy of the file (the meta dir's L0 files, or the file backend's own), or None."""
        for path in (self.local(info.level, info.min_txid, info.max_txid) if self.local else None,
                     self.client.local_path(info.level, info.min_txid, info.max_txid)):
            if path is not None and os.path.isfile(path):
                return path
        return None

    def open(self, info: FileInfo) -> BinaryIO:
        """A file of the replica: a local copy when there is one, else a stream from the backend."""
        path = self._local_path(info)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):  # removed by retention since the check
                # Unbuffered: the merge reads the descriptor itself, and a buffered reader would keep
                # 8 KiB per input (80 MiB for a merge of 10,000 L0 files) for a 100-byte header.
                return open(path, "rb", buffering=0)
        return self.client.open_ltx_file(info.level, info.min_txid, info.max_txid)


def _is_file(f: BinaryIO) -> bool:
    try:
        f.fileno()
    except (OSError, AttributeError, ValueError):
        return False
    return True


def _pread_header(f: BinaryIO) -> bytes:
    """The first bytes of a file, or of a stream that has not been read yet."""
    if _is_file(f):
        f.seek(0)
    return f.read(HEADER_SIZE)


def _chained_sums(headers: list[bytes]) -> tuple[int, int] | None:
    """The merged file's database checksums (pre of the first input, post of the last) when every input
    carries them and each one continues where the one before ended; None otherwise."""
    sums = [decode_reserved(h) for h in headers]
    if any(s is None for s in sums):
        return None
    for a, b in itertools.pairwise(sums):
        if b.pre_apply and b.pre_apply != a.post_apply:  # type: ignore[union-attr]
            return None
    first = Header.decode(headers[0])
    pre = 0 if first.is_snapshot else sums[0].pre_apply  # type: ignore[union-attr]
    return pre, sums[-1].post_apply  # type: ignore[union-attr]
