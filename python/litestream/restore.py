"""Restore: choose the files (the same plan as the reference's CalcRestorePlan), fetch them in parallel,
and write the database through the C core.

The plan files are applied newest first: each page is written once, by the newest file that holds it
(a bitmap records the pages already written), which gives exactly the result of the reference's k-way
merge without opening every file at once. Every file is still decoded completely so its CRC-64 is
checked; large files are cut into segments through their page index and decoded by several threads,
whose partial checksums are joined with crc64_combine. The output is a temp file in the target
directory, fsynced and renamed, so a failed or interrupted restore never leaves a partial database."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from litestream import _ltxcore as core
from litestream.backends.base import BackendError, ReplicaClient
from litestream.backends.transfer import download
from litestream.db.checksums import decode_reserved
from litestream.fsutil import fsync_dir
from litestream.ltx import (
    CHECKSUM_FLAG,
    HEADER_SIZE,
    SNAPSHOT_LEVEL,
    FileInfo,
    Header,
    LTXError,
    format_filename,
    format_txid,
    lock_pgno,
)

log = logging.getLogger("litestream.restore")

# Files larger than this are decoded in segments by several threads.
SEGMENT_BYTES = 32 << 20

# progress(phase, done, total): bytes of the plan's files fetched ("fetching", remote replicas only) or
# applied ("applying"); may be called from worker threads.
Progress = Callable[[str, int, int], None]


class RestoreError(Exception):
    """A restore failed; the message is for the user."""


class ChecksumMismatch(RestoreError):
    """The restored pages are intact (every file's CRC verified) but do not add up to the database
    checksum the files record: the replica was written with a wrong checksum, or holds other content than
    the state it claims. Its message says how to restore anyway."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{detail}. Every file is intact; to restore this database anyway and check it with "
                         "integrity_check, rerun with -ignore-checksums")


class TxNotAvailable(RestoreError):
    """No backup files cover the requested point (the reference's ErrTxNotAvailable)."""

    def __init__(self) -> None:
        super().__init__("no matching backup files available")


# ------------------------------------------------------------------------------------------------ plan


def _better(cur: FileInfo, nxt: FileInfo) -> bool:
    """Whether nxt is a better next file than cur: reaches further, then starts earlier, then comes
    from a higher level, then is older."""
    if nxt.max_txid != cur.max_txid:
        return nxt.max_txid > cur.max_txid
    if nxt.min_txid != cur.min_txid:
        return nxt.min_txid < cur.min_txid
    if nxt.level != cur.level:
        return nxt.level > cur.level
    return nxt.created_at_ns < cur.created_at_ns


class _LevelCursor:
    __slots__ = ("candidate", "items", "pos")

    def __init__(self, items: list[FileInfo]) -> None:
        self.items = items
        self.pos = 0
        self.candidate: FileInfo | None = None

    def refresh(self, cur: int, eligible: Callable[[FileInfo], bool]) -> None:
        if self.candidate is not None and self.candidate.max_txid <= cur:
            self.candidate = None
        while self.pos < len(self.items):
            info = self.items[self.pos]
            if info.min_txid > cur + 1:
                return
            self.pos += 1
            if info.max_txid <= cur or not eligible(info):
                continue
            if self.candidate is None or _better(self.candidate, info):
                self.candidate = info

    def next_unconsumed(self) -> FileInfo | None:
        return self.items[self.pos] if self.pos < len(self.items) else None


def calc_restore_plan(client: ReplicaClient, txid: int = 0, timestamp_ns: int | None = None) -> list[FileInfo]:
    """Files to apply, in order: the newest eligible snapshot, then the files that extend the TXID
    range furthest at each step, across levels 8..0."""
    if txid and timestamp_ns is not None:
        raise RestoreError("cannot specify both TXID & timestamp to restore")
    use_meta = timestamp_ns is not None

    def eligible(info: FileInfo) -> bool:
        if txid and info.max_txid > txid:
            return False
        return not (timestamp_ns is not None and info.created_at_ns >= timestamp_ns)

    plan: list[FileInfo] = []
    snapshot = None
    for info in client.ltx_files(SNAPSHOT_LEVEL, 0, use_meta):
        if eligible(info):
            snapshot = info
    if snapshot is not None:
        plan.append(snapshot)
    cur = snapshot.max_txid if snapshot else 0
    if txid and cur >= txid:
        return plan

    cursors = [_LevelCursor(sorted(client.ltx_files(level, 0, use_meta), key=lambda i: (i.min_txid, i.max_txid)))
               for level in range(SNAPSHOT_LEVEL - 1, -1, -1)]
    while True:
        best: _LevelCursor | None = None
        for c in cursors:
            c.refresh(cur, eligible)
            if c.candidate is not None and (best is None or _better(best.candidate, c.candidate)):
                best = c
        if best is None or best.candidate is None:
            break
        plan.append(best.candidate)
        cur = best.candidate.max_txid
        best.candidate = None
        if txid and cur >= txid:
            break

    if plan and not txid and timestamp_ns is None:
        for c in cursors:
            nxt = c.next_unconsumed()
            if nxt is not None and nxt.min_txid > cur + 1:
                raise RestoreError(f"cannot calc restore plan: non-contiguous ltx files: have up to "
                                   f"{format_txid(cur)} but next file starts at {format_txid(nxt.min_txid)}")
    if not plan or (txid and plan[-1].max_txid < txid):
        raise TxNotAvailable()
    return plan


def time_bounds(client: ReplicaClient) -> tuple[int | None, int | None]:
    """Earliest and latest CreatedAt over all levels (nanoseconds), or (None, None) when empty."""
    lo = hi = None
    for level in range(SNAPSHOT_LEVEL, -1, -1):
        for info in client.ltx_files(level, 0, False):
            if lo is None or info.created_at_ns < lo:
                lo = info.created_at_ns
            if hi is None or info.created_at_ns > hi:
                hi = info.created_at_ns
    return lo, hi


def check_restore_target(client: ReplicaClient, timestamp_ns: int | None) -> None:
    """The reference's CalcRestoreTarget: a timestamp must lie within the replica's time bounds."""
    if timestamp_ns is None:
        return
    lo, hi = time_bounds(client)
    from litestream import v3

    if v3.supports_v3(client):  # the reference counts the v0.3 backup's times too
        vlo, vhi = v3.time_bounds_v3(client)
        if vlo is not None:
            lo, hi = min(vlo, lo if lo is not None else vlo), max(vhi, hi if hi is not None else vhi)
    if lo is None:
        raise RestoreError("no backups found")
    if timestamp_ns < lo or timestamp_ns > hi:
        raise RestoreError("timestamp does not exist")


# --------------------------------------------------------------------------------------------- execute


@dataclass
class _Fetched:
    info: FileInfo
    path: str
    header: Header
    header_bytes: bytes
    size: int


@dataclass
class RestoreResult:
    txid: int
    page_size: int
    commit: int
    files: int
    bytes_written: int
    seconds: float
    checksum_mismatch: str | None = None  # restored anyway (ignore_checksums): what did not add up


def _read_header(path: str, info: FileInfo) -> tuple[Header, bytes, int]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise RestoreError(f"ltx file not found: {info.name} (level {info.level})") from None
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, HEADER_SIZE, 0)
    finally:
        os.close(fd)
    if size < HEADER_SIZE:
        raise RestoreError(f"invalid ltx file: level={info.level} min={format_txid(info.min_txid)} "
                           f"max={format_txid(info.max_txid)} has size {size} bytes (minimum {HEADER_SIZE})")
    try:
        header = Header.decode(data)
    except LTXError as e:
        raise RestoreError(f"decode {_describe(info)}: {e}") from None
    if (header.min_txid, header.max_txid) != (info.min_txid, info.max_txid):
        raise RestoreError(f"decode {_describe(info)}: header holds transactions "
                           f"{format_filename(header.min_txid, header.max_txid)[:-4]}, not what its name says")
    return header, data, size


def _describe(info: FileInfo) -> str:
    return f"ltx file {info.name} (level {info.level})"


class _Fetcher:
    """Brings plan files to local paths: in place for local replicas, else downloaded into a staging
    directory next to the output, several at a time."""

    def __init__(self, client: ReplicaClient, staging_parent: str, parallelism: int) -> None:
        self.client = client
        self.staging_parent = staging_parent
        self.parallelism = max(1, parallelism)
        self.staging: str | None = None
        self._lock = threading.Lock()

    def _staging_dir(self) -> str:
        with self._lock:
            if self.staging is None:
                self.staging = tempfile.mkdtemp(prefix=".litestream-restore-", dir=self.staging_parent)
            return self.staging

    def fetch_one(self, info: FileInfo) -> _Fetched:
        path = self.client.local_path(info.level, info.min_txid, info.max_txid)
        if path is None:
            path = os.path.join(self._staging_dir(), f"{info.level}-{info.name}")
            try:
                download(self.client, info, path)
            except BackendError as e:
                raise RestoreError(str(e)) from None
        header, raw, size = _read_header(path, info)
        return _Fetched(info, path, header, raw, size)

    def fetch_all(self, plan: list[FileInfo], progress: Progress | None = None) -> list[_Fetched]:
        # Files read in place need no download: a thread per header read only costs (10,000 L0 files
        # of a file replica spent half the restore handing futures around).
        local = self.client.local_path(plan[0].level, plan[0].min_txid, plan[0].max_txid) is not None
        fetch = self.fetch_one
        if progress is not None and not local:
            total = sum(i.size for i in plan)
            done = 0
            lock = threading.Lock()
            progress("fetching", 0, total)

            def fetch(info: FileInfo) -> _Fetched:
                nonlocal done
                f = self.fetch_one(info)
                with lock:
                    done += info.size
                    progress("fetching", done, total)
                return f

        if self.parallelism == 1 or len(plan) == 1 or local:
            return [fetch(i) for i in plan]
        with ThreadPoolExecutor(max_workers=min(self.parallelism, len(plan))) as pool:
            return list(pool.map(fetch, plan))

    def cleanup(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)


def _check_chain(files: list[_Fetched]) -> None:
    first = files[0].header
    if not first.is_snapshot:
        raise RestoreError("decode database: cannot decode non-snapshot LTX file")
    prev = first
    for f in files[1:]:
        h = f.header
        if h.page_size != first.page_size:
            raise RestoreError(f"decode {_describe(f.info)}: page size {h.page_size} does not match "
                               f"{first.page_size}")
        if not f.info.is_contiguous_after(prev.max_txid):
            raise RestoreError(f"non-contiguous transaction files: {f.info.name} follows "
                               f"{format_filename(prev.min_txid, prev.max_txid)}")
        prev = h


class _Applier:
    """Writes the plan into an open output file, newest file first."""

    def __init__(self, out_fd: int, header: Header, workers: int, track_sum: bool) -> None:
        self.out_fd = out_fd
        self.commit = header.commit
        self.page_size = header.page_size
        self.claimed = core.new_claim_map(header.commit)
        self.workers = max(1, workers)
        self.track_sum = track_sum
        self.out_sum = 0
        self.bytes_written = 0
        self.post_apply: dict[FileInfo, int] = {}

    def apply(self, f: _Fetched, pool: ThreadPoolExecutor | None, advance: Callable[[int], None] | None = None) -> None:
        """Apply one file; advance(n), when given, is told of its bytes as they are done (per segment)."""
        fd = os.open(f.path, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            if pool is not None and f.size > SEGMENT_BYTES:
                self._apply_segmented(fd, f, pool, advance)
            else:
                trailer, _, _, nbytes, out_sum = core.apply_file(fd, f.header, self.out_fd, self.commit,
                                                                 self.claimed, self.track_sum)
                self.post_apply[f.info] = trailer[0]
                self.bytes_written += nbytes
                self.out_sum ^= out_sum
                if advance is not None:
                    advance(f.size)
        except LTXError as e:
            raise RestoreError(f"decode {_describe(f.info)}: {e}") from None
        finally:
            os.close(fd)

    def _apply_segmented(self, fd: int, f: _Fetched, pool: ThreadPoolExecutor,
                         advance: Callable[[int], None] | None) -> None:
        index = core.PageIndex(fd, f.size)
        target = max(4 << 20, f.size // (self.workers * 4))
        segments = index.segments(target)
        futures = [pool.submit(core.apply_segment, fd, f.header, start, end, prev, self.out_fd, self.commit,
                               self.claimed, self.track_sum) for start, end, prev in segments]
        results = []
        for (start, end, _), fut in zip(segments, futures, strict=True):
            results.append(fut.result())
            if advance is not None:
                advance(end - start)
        crc = core.crc64(f.header_bytes)
        index_crc = index_len = page_sum = 0
        last_pgno = 0
        for (start, _end, prev), r in zip(segments, results, strict=True):
            seg_crc, hashed, seg_icrc, seg_ilen, seg_sum, seg_last, n_pages, _, nbytes, out_sum = r
            if prev != last_pgno and start != HEADER_SIZE:
                raise LTXError("page index does not match the page frames", "format")
            crc = core.crc64_combine(crc, seg_crc, hashed)
            index_crc = core.crc64_combine(index_crc, seg_icrc, seg_ilen)
            index_len += seg_ilen
            page_sum ^= seg_sum
            if n_pages:
                last_pgno = seg_last
            self.bytes_written += nbytes
            self.out_sum ^= out_sum
        trailer = core.finish_tail(fd, f.header, index.end_marker_offset, crc, index_crc, index_len, last_pgno,
                                   page_sum)
        self.post_apply[f.info] = trailer[0]
        if advance is not None:
            advance(f.size - sum(end - start for start, end, _ in segments))  # header, index and trailer


def _check_sum_chain(files: list[_Fetched], sums: list) -> None:
    """Files that carry database checksums must chain: each one was written on top of the state the one
    before it produced (skipped where a file replaces the whole database, pre-apply 0)."""
    for i in range(1, len(files)):
        prev, cur = sums[i - 1], sums[i]
        if prev is None or cur is None or not cur.pre_apply:
            continue
        if files[i].header.min_txid == files[i - 1].header.max_txid + 1 and cur.pre_apply != prev.post_apply:
            raise ChecksumMismatch(f"decode {_describe(files[i].info)}: database checksum chain is broken "
                                   f"(pre-apply {cur.pre_apply:016x}, previous file ends at {prev.post_apply:016x})")


def _trust_commit(files: list[_Fetched]) -> None:
    """The output size comes from the last file's Commit, which is only covered by that file's checksum.
    Make sure it is genuine before allocating or sizing anything from it: a snapshot must list every page
    up to its Commit in its index; any other last file is verified in full first (it is usually small)."""
    last = files[-1]
    fd = os.open(last.path, os.O_RDONLY)
    try:
        if len(files) == 1:
            try:
                listed = len(core.PageIndex(fd, last.size))
            except LTXError:
                listed = -1
            if listed >= last.header.commit - 1:
                return
        core.Decoder(fd).verify()
        if len(files) == 1:
            raise LTXError("snapshot does not hold the pages its header promises", "format")
    except LTXError as e:
        raise RestoreError(f"decode {_describe(last.info)}: {e}") from None
    finally:
        os.close(fd)


def _create_temp(out_dir: str, output: str) -> tuple[int, str]:
    """A new temp file beside the output, created with 0666 less the umask like the reference's
    os.Create (mkstemp would make it 0600)."""
    base = os.path.basename(output)
    for _ in range(100):
        path = os.path.join(out_dir, f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), path
        except FileExistsError:
            continue
    raise RestoreError(f"cannot create a temp file in {out_dir}")


def _apply_progress(progress: Progress, total: int) -> Callable[[int], None]:
    applied = 0
    progress("applying", 0, total)

    def advance(n: int) -> None:
        nonlocal applied
        applied += n
        progress("applying", applied, total)

    return advance


def restore_files(client: ReplicaClient, plan: list[FileInfo], output: str, parallelism: int = 8,
                  replace: Callable[[str], None] | None = None, ignore_checksums: bool = False,
                  progress: Progress | None = None) -> RestoreResult:
    """Build the database described by `plan` at `output`. `replace`, when given, is called with the output
    path just before the finished database is renamed over it (used by -force to remove stale sidecars only
    once the new database is complete, so a failed restore never destroys the old one).

    A database checksum that does not add up raises ChecksumMismatch, unless ignore_checksums: then the
    database is restored and the mismatch reported in the result (the caller checks its integrity). The
    files' own CRCs are verified either way. `progress` (see Progress) follows the fetch and apply phases."""
    mismatch: list[str] = []

    def sum_mismatch(e: ChecksumMismatch) -> None:
        if not ignore_checksums:
            raise e
        mismatch.append(e.detail)

    start = time.monotonic()
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fetcher = _Fetcher(client, out_dir, parallelism)
    tmp_path = None
    try:
        files = fetcher.fetch_all(plan, progress)
        _check_chain(files)
        _trust_commit(files)
        last = files[-1].header
        reserved = [decode_reserved(f.header_bytes) for f in files]
        try:
            _check_sum_chain(files, reserved)
        except ChecksumMismatch as e:
            sum_mismatch(e)
        track_sum = last.has_checksums or reserved[-1] is not None
        fd, tmp_path = _create_temp(out_dir, output)
        try:
            os.ftruncate(fd, last.commit * last.page_size)
            workers = min(max(1, parallelism), os.cpu_count() or 1)
            applier = _Applier(fd, last, workers, track_sum)
            pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
            advance: Callable[[int], None] | None = None
            if progress is not None:
                advance = _apply_progress(progress, sum(f.size for f in files))

            try:
                for f in reversed(files):
                    applier.apply(f, pool, advance)
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
            missing = core.claimed_missing(applier.claimed, last.commit, lock_pgno(last.page_size))
            if missing:
                raise RestoreError(f"decode database: no file in the plan holds page {missing}")
            if track_sum:
                want = applier.post_apply[files[-1].info] if last.has_checksums else reserved[-1].post_apply
                if (applier.out_sum | CHECKSUM_FLAG) != want:
                    sum_mismatch(ChecksumMismatch(f"decode database: restored database checksum "
                                                  f"{applier.out_sum | CHECKSUM_FLAG:016x} does not match "
                                                  f"{want:016x} recorded in {files[-1].info.name}"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace is not None:
            replace(output)
        os.replace(tmp_path, output)
        tmp_path = None
        fsync_dir(out_dir)
        return RestoreResult(plan[-1].max_txid, last.page_size, last.commit, len(files),
                             applier.bytes_written, time.monotonic() - start, "; ".join(mismatch) or None)
    except OSError as e:
        raise RestoreError(f"restore {output}: {e.strerror or e}") from None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp_path)
        fetcher.cleanup()


def integrity_check(path: str, mode: str) -> None:
    """PRAGMA quick_check / integrity_check on the restored file, opened immutable so no -wal or -shm
    files are created next to it."""
    import apsw

    pragma = {"quick": "quick_check", "full": "integrity_check"}[mode]
    try:
        conn = apsw.Connection(f"file:{path}?immutable=1", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
        finally:
            conn.close()
    except apsw.Error as e:  # so damaged that the check itself cannot run
        raise RestoreError(f"post-restore integrity check: {e}") from None
    if rows != ["ok"]:
        raise RestoreError("post-restore integrity check: " + "; ".join(str(r) for r in rows[:5]))
