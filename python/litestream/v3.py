"""Restoring Litestream v0.3.x backups (read-only), as the reference does.

Layout: `<root>/generations/<16 hex>/snapshots/<index %08x>.snapshot.lz4` (the database, LZ4 frame) and
`<root>/generations/<gen>/wal/<index %08x>_<offset %08x>.wal.lz4` (WAL bytes). A backend offers them
through four optional methods (`v3_generations`, `v3_snapshots`, `v3_wal_segments`, `v3_open`), which
list and open the raw objects; decompression and the restore itself live here, so every backend that
can list gets v0.3 restores.

The restore picks the newest snapshot across generations (or the newest created at or before the
timestamp), writes it, then, for each WAL index from the snapshot's on, joins its segments (offsets must
follow on) into `<db>-wal` and lets SQLite (apsw) checkpoint it with TRUNCATE. `restore` uses this
instead of the LTX files when no TXID and no follow mode are asked for and the v0.3 backup is newer
(or, with a timestamp, has the better snapshot)."""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from litestream.backends.base import NotFoundError, ReplicaClient
from litestream.fsutil import fsync_dir
from litestream.ltx import SNAPSHOT_LEVEL
from litestream.restore import RestoreError

_GENERATION = re.compile(r"[0-9a-f]{16}")
_SNAPSHOT = re.compile(r"([0-9a-f]{8})\.snapshot\.lz4")
_SEGMENT = re.compile(r"([0-9a-f]{8})_([0-9a-f]{8,16})\.wal\.lz4")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SnapshotV3:
    generation: str
    index: int
    size: int
    created_at_ns: int


@dataclass(frozen=True)
class SegmentV3:
    generation: str
    index: int
    offset: int
    size: int
    created_at_ns: int


@runtime_checkable
class V3Client(Protocol):
    def v3_generations(self) -> list[str]: ...

    def v3_snapshots(self, generation: str) -> list[SnapshotV3]: ...

    def v3_wal_segments(self, generation: str) -> list[SegmentV3]: ...

    def v3_open(self, relpath: str) -> BinaryIO: ...


def parse_snapshot_name(name: str) -> int | None:
    m = _SNAPSHOT.fullmatch(name)
    return int(m.group(1), 16) if m else None


def parse_segment_name(name: str) -> tuple[int, int] | None:
    m = _SEGMENT.fullmatch(name)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


def is_generation(name: str) -> bool:
    return _GENERATION.fullmatch(name) is not None


def snapshot_relpath(s: SnapshotV3) -> str:
    return f"generations/{s.generation}/snapshots/{s.index:08x}.snapshot.lz4"


def segment_relpath(s: SegmentV3) -> str:
    return f"generations/{s.generation}/wal/{s.index:08x}_{s.offset:08x}.wal.lz4"


def supports_v3(client: ReplicaClient) -> bool:
    return isinstance(client, V3Client)


def _snapshots(client: V3Client) -> list[SnapshotV3]:
    out = [s for g in client.v3_generations() for s in client.v3_snapshots(g)]
    out.sort(key=lambda s: s.created_at_ns)  # stable: equal times keep generation order, as the reference
    return out


def time_bounds_v3(client: V3Client) -> tuple[int | None, int | None]:
    times = []
    for g in client.v3_generations():
        times += [s.created_at_ns for s in client.v3_snapshots(g)]
        times += [s.created_at_ns for s in client.v3_wal_segments(g)]
    return (min(times), max(times)) if times else (None, None)


def best_snapshot(snapshots: list[SnapshotV3], timestamp_ns: int | None) -> SnapshotV3 | None:
    if timestamp_ns is None:
        return snapshots[-1] if snapshots else None
    return next((s for s in reversed(snapshots) if s.created_at_ns <= timestamp_ns), None)


def should_use_v3(client: ReplicaClient, timestamp_ns: int | None) -> bool:
    """The reference's choice between the v0.3 backup and the LTX files of one replica."""
    if not supports_v3(client):
        return False
    _, v3_latest = time_bounds_v3(client)
    if v3_latest is None:
        return False
    from litestream.restore import time_bounds

    _, ltx_latest = time_bounds(client)
    if ltx_latest is None:
        return True
    if timestamp_ns is None:
        return v3_latest > ltx_latest
    snap = best_snapshot(_snapshots(client), timestamp_ns)
    ltx_snaps = [i for i in client.ltx_files(SNAPSHOT_LEVEL, 0, False) if i.created_at_ns < timestamp_ns]
    ltx_best = max(ltx_snaps, key=lambda i: i.max_txid) if ltx_snaps else None
    return snap is not None and (ltx_best is None or snap.created_at_ns > ltx_best.created_at_ns)


def restore_v3(client: V3Client, out: str, timestamp_ns: int | None = None) -> SnapshotV3:
    """Restore into `out` (which must not exist); nothing is left at `out` on failure."""
    snapshot = best_snapshot(_snapshots(client), timestamp_ns)
    if snapshot is None:
        raise RestoreError("no snapshots available")
    segments = [s for s in client.v3_wal_segments(snapshot.generation) if s.index >= snapshot.index
                and (timestamp_ns is None or s.created_at_ns <= timestamp_ns)]
    segments.sort(key=lambda s: (s.index, s.offset))
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(out)}.{os.urandom(6).hex()}.v3.tmp")
    try:
        with open(tmp, "wb") as f:
            _decompress(client, snapshot_relpath(snapshot), f)
            f.flush()
            os.fsync(f.fileno())
        _apply_segments(client, snapshot.index, segments, tmp)
        os.replace(tmp, out)
        fsync_dir(directory)
    finally:
        for p in (tmp, tmp + "-wal", tmp + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)
    return snapshot


def _apply_segments(client: V3Client, first_index: int, segments: list[SegmentV3], db: str) -> None:
    expected, offset = first_index, 0
    wal: BinaryIO | None = None
    try:
        for seg in segments:
            if seg.offset == 0:
                if wal is not None:
                    wal.close()
                    wal = None
                    _checkpoint(db)
                if seg.index != expected:
                    raise RestoreError(f"missing WAL index: expected {expected}/0, got {seg.index}/{seg.offset}")
                wal = open(db + "-wal", "wb")  # noqa: SIM115 - closed when the index ends
                offset = 0
                expected += 1
            elif wal is None or seg.offset != offset:
                raise RestoreError(f"missing WAL segment: expected {seg.index}/{offset}, got {seg.index}/{seg.offset}")
            offset += _decompress(client, segment_relpath(seg), wal)
        if wal is not None:
            wal.close()
            wal = None
            _checkpoint(db)
    finally:
        if wal is not None:
            wal.close()


def _checkpoint(db: str) -> None:
    import apsw

    conn = apsw.Connection(db)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()[0]
        if busy:
            raise RestoreError(f"cannot checkpoint the restored WAL into {db}")
    except apsw.Error as e:
        raise RestoreError(f"apply WAL segments: {e}") from None
    finally:
        conn.close()


def _decompress(client: V3Client, relpath: str, dst: BinaryIO) -> int:
    """LZ4-frame-decompress one object into dst, streaming (the system liblz4, through the core). Returns
    the bytes written."""
    from litestream import _ltxcore as core
    from litestream.ltx import LTXError

    n = 0
    dec = core.LZ4FrameDecoder()
    try:
        with client.v3_open(relpath) as raw:
            while chunk := raw.read(_CHUNK):
                out = dec.decompress(chunk)
                dst.write(out)
                n += len(out)
    except LTXError as e:
        raise RestoreError(f"decompress {relpath}: {e}") from None
    except (FileNotFoundError, NotFoundError):
        raise RestoreError(f"v0.3 backup file missing: {relpath}") from None
    if not dec.finished:
        raise RestoreError(f"decompress {relpath}: the lz4 frame is cut short")
    return n
