"""File replica: `<root>/ltx/<level>/<min>-<max>.ltx`, CreatedAt kept as the file's mtime."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from litestream import v3
from litestream.backends.base import BackendError, LimitedReader, NotFoundError, Source
from litestream.backends.url import parse_replica_url
from litestream.config import ConfigError, ReplicaConfig, expand_path
from litestream.fsutil import fsync_dir, write_atomic, write_atomic_with
from litestream.ltx import FileInfo, Header, format_filename, parse_filename


def from_config(rc: ReplicaConfig) -> FileReplicaClient:
    if rc.url and rc.path:
        raise ConfigError("cannot specify url & path for file replica")
    path = rc.path
    if rc.url:
        try:
            path = parse_replica_url(rc.url).path
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if not path:
        raise ConfigError("file replica path required")
    return FileReplicaClient(expand_path(path))


class FileReplicaClient:
    type = "file"

    def __init__(self, path: str) -> None:
        if not path:
            raise BackendError("file replica path required")
        self.path = os.path.abspath(os.path.expanduser(path))

    def __repr__(self) -> str:
        return f"FileReplicaClient({self.path!r})"

    def init(self) -> None:
        pass

    def level_dir(self, level: int) -> str:
        return os.path.join(self.path, "ltx", str(level))

    def ltx_path(self, level: int, min_txid: int, max_txid: int) -> str:
        return os.path.join(self.level_dir(level), format_filename(min_txid, max_txid))

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        try:
            entries = sorted(os.scandir(self.level_dir(level)), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as e:
            raise BackendError(f"list {self.level_dir(level)}: {e.strerror}") from None
        for entry in entries:
            txids = parse_filename(entry.name)
            if txids is None or txids[0] < seek:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # removed by retention while listing
            if not entry.is_file():
                continue
            yield FileInfo(level, txids[0], txids[1], st.st_size, st.st_mtime_ns)

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        return self.ltx_path(level, min_txid, max_txid)

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        path = self.ltx_path(level, min_txid, max_txid)
        try:
            f = open(path, "rb")  # noqa: SIM115 - the caller owns the stream
        except FileNotFoundError:
            raise NotFoundError(f"ltx file not found: {path}") from None
        except OSError as e:
            raise BackendError(f"open {path}: {e.strerror}") from None
        if offset:
            f.seek(offset)
        return LimitedReader(f, size) if size > 0 else f  # type: ignore[return-value]

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: Source,
                       timestamp_ms: int) -> FileInfo:
        path = self.ltx_path(level, min_txid, max_txid)
        linked = self._link(src.path, path, timestamp_ms) if src.path is not None else None
        if linked is not None:
            return FileInfo(level, min_txid, max_txid, linked, timestamp_ms * 1_000_000)
        # The mtime is the file's CreatedAt; set it before the rename so no reader sees another value.
        try:
            with src.reader() as f:
                size = write_atomic(path, f, mtime_ns=timestamp_ms * 1_000_000)
        except OSError as e:
            raise BackendError(f"write {path}: {e.strerror or e}") from None
        return FileInfo(level, min_txid, max_txid, size, timestamp_ms * 1_000_000)

    def write_ltx_file_with(self, level: int, fill: Callable[[int], Header]) -> FileInfo:
        """Store a file that fill(fd) encodes in place (it may seek and patch) and whose header it returns,
        which names the file: a snapshot or compaction is written once, into the replica, never staged."""
        got: list[Header] = []

        def fill_tmp(fd: int) -> int:
            got.append(fill(fd))
            return got[0].timestamp * 1_000_000  # the mtime is the file's CreatedAt

        def final() -> str:
            return self.ltx_path(level, got[0].min_txid, got[0].max_txid)

        try:
            size = write_atomic_with(os.path.join(self.level_dir(level), f".write-{os.urandom(4).hex()}"),
                                     fill_tmp, final)
        except OSError as e:
            raise BackendError(f"write {self.level_dir(level)}: {e.strerror or e}") from None
        h = got[0]
        return FileInfo(level, h.min_txid, h.max_txid, size, h.timestamp * 1_000_000)

    def clean_temp(self) -> int:
        """Remove `*.tmp` files that writes cut by a crash left in the level directories. Only call it
        while no write of this replica is under way (one replicator owns a replica). Returns the count."""
        n = 0
        root = os.path.join(self.path, "ltx")
        try:
            levels = os.listdir(root)
        except OSError:
            return 0
        for lv in levels:
            d = os.path.join(root, lv)
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                if name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(d, name))
                        n += 1
        return n

    def _link(self, name: str, path: str, timestamp_ms: int) -> int | None:
        """LTX files never change once written, so a local file already on this filesystem (with its
        mtime at the header timestamp) is hard-linked instead of copied: no second write and fsync of
        the same bytes. Returns the size, or None to fall back to copying."""
        try:
            st = os.stat(name)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns != timestamp_ms * 1_000_000:
                return None
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            os.link(name, tmp)
            os.replace(tmp, path)
            fsync_dir(directory)
            return st.st_size
        except OSError:
            return None  # another filesystem, no hard links: copy instead

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None:
        dirs = set()
        for info in infos:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.ltx_path(info.level, info.min_txid, info.max_txid))
            dirs.add(self.level_dir(info.level))
        for d in dirs:
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(d)

    def delete_all(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.path)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------- v0.3.x backups (read-only)

    def _v3_dir(self, *parts: str) -> str:
        return os.path.join(self.path, "generations", *parts)

    def v3_generations(self) -> list[str]:
        try:
            names = sorted(os.listdir(self._v3_dir()))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n for n in names if v3.is_generation(n) and os.path.isdir(self._v3_dir(n))]

    def _v3_entries(self, generation: str, sub: str) -> Iterator[tuple[str, os.stat_result]]:
        try:
            names = os.listdir(self._v3_dir(generation, sub))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                yield name, os.stat(self._v3_dir(generation, sub, name))

    def v3_snapshots(self, generation: str) -> list[v3.SnapshotV3]:
        out = []
        for name, st in self._v3_entries(generation, "snapshots"):
            idx = v3.parse_snapshot_name(name)
            if idx is not None:
                out.append(v3.SnapshotV3(generation, idx, st.st_size, st.st_mtime_ns))
        return sorted(out, key=lambda s: s.index)

    def v3_wal_segments(self, generation: str) -> list[v3.SegmentV3]:
        out = []
        for name, st in self._v3_entries(generation, "wal"):
            parsed = v3.parse_segment_name(name)
            if parsed is not None:
                out.append(v3.SegmentV3(generation, parsed[0], parsed[1], st.st_size, st.st_mtime_ns))
        return sorted(out, key=lambda s: (s.index, s.offset))

    def v3_open(self, relpath: str) -> BinaryIO:
        return open(os.path.join(self.path, relpath), "rb")
