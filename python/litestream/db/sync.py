"""WAL -> L0: turn newly committed WAL frames into the next L0 file, or take a snapshot when continuing
incrementally cannot be proven safe.

The reference decides with a heuristic (the last synced page still matches) that can lose committed
frames across its own restarts. Here an incremental L0 is written only when one of these proves that
every committed frame since the last synced position is still readable:

* same WAL generation (same salts) and the frame before the synced position still carries the checksum
  chain value we computed when we synced it (after a restart of our process: the chain validates from
  the WAL header up to exactly that position);
* the WAL was restarted once (salt-1 advanced by one) by our own checkpoint, which ran with writers
  locked out after syncing everything;
* the WAL was restarted once by someone else, but the old generation's frames after our position are
  still in the file and show that nothing was committed after it;
* the database file's checksum equals the checksum we recorded at the synced position, so the database
  file is exactly the state we replicated and the new WAL generation applies on top of it.

Anything else (WAL truncated by another process, several restarts, frames we never saw, no way to tell)
writes a full snapshot into L0, as the reference does for its own verification failures.

Every L0 carries the rolling database checksum before and after it (see checksums.py). It is updated
from the checksums of the pages each file replaces and adds; the old versions come from the WAL frames of
this generation we already synced, or from the database file. The database file is a valid source only
while it holds nothing past the synced position, and that needs a proof of its own (a _Guard), checked
again once the file is encoded and before it is renamed into place:

* the WAL index shows that no checkpoint ever set out to copy a frame past the position (nBackfill and
  nBackfillAttempted, see shm.py: a recovery after every process died resets nBackfill to 0, so nBackfill
  alone is no evidence). This always holds while we run, because our read transaction pins the WAL at or
  before the synced position;
* or, when the index cannot vouch (after a recovery, typically: we and the application were both
  killed, and the application may have checkpointed in between), the new file is re-based: its
  post-apply checksum is computed from the whole state (the database file overlaid with this
  generation's frames up to the end of the WAL) instead of rolled forward, which is right whatever the
  file held, at the cost of one read of the database file;
* when even the old generation's end cannot be proven, a checksum of the database file must show it
  holds exactly the recorded state, with SQLite's checkpoint lock held until the file is written.

A file whose guard no longer holds at the end is discarded; the sync is re-based, and if that cannot be
done either, takes a snapshot."""

from __future__ import annotations

import os
import time
from array import array
from dataclasses import dataclass

from litestream import _ltxcore as core
from litestream import wal
from litestream.db.checksums import encode_reserved
from litestream.db.meta import MetaDir
from litestream.db.shm import WalIndex, WalIndexInfo
from litestream.ltx import CHECKSUM_FLAG, FLAG_NO_CHECKSUM, Header, lock_pgno

WAL_HEADER_SIZE = 32
LOW63 = CHECKSUM_FLAG - 1
DB_FILE = (1 << 64) - 1  # offset marker: the page comes from the database file


class SyncError(Exception):
    """Replication of this database cannot continue; the message says why."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


_SNAPSHOT_ATTEMPTS = 5
# A whole commit in the WAL past the index's mxFrame belongs to a writer about to publish it if the WAL was
# written this recently. writer_active() cannot tell when that writer is a connection of this very process
# (POSIX locks never conflict within a process: an application embedding the replicator, the tests), and
# its frames may predate the WAL watch that would have told us; a dead writer's leftovers are older.
LIVE_COMMIT_S = 5.0


def _recent(fd: int) -> bool:
    try:
        return time.time() - os.fstat(fd).st_mtime < LIVE_COMMIT_S
    except OSError:
        return False


class _DBFileChanged(Exception):
    """The guard of an incremental sync no longer holds: a checkpoint by another process may have copied
    frames past the synced position into the database file while the L0 file was being encoded."""


@dataclass
class WalPos:
    """Where the last L0 ended in the WAL."""

    salts: tuple[int, int]
    end: int  # offset just past the last synced commit frame
    commit: int  # database size in pages at that point
    chain: tuple[int, int] | None = None  # WAL checksum chain at `end`, when known


@dataclass
class SyncResult:
    txid: int
    snapshot: bool
    reason: str | None
    wal_offset: int
    wal_size: int
    pages: int
    size: int
    limited: bool


def wal_size_bytes(page_size: int, frames: int) -> int:
    return WAL_HEADER_SIZE + frames * (24 + page_size)


def wal_frames_at(page_size: int, offset: int) -> int:
    return (offset - WAL_HEADER_SIZE) // (24 + page_size)


@dataclass(frozen=True)
class SnapshotPlan:
    txid: int
    commit: int
    pgnos: array
    offsets: array
    raw_hdr: bytes
    info: WalIndexInfo  # the WAL index when planned: nothing may be copied until the snapshot is encoded
    db_sum: int | None  # the database checksum recorded for this position


# ------------------------------------------------------------------------------------------------ guards

class _Guard:
    """Why the database file may serve as the source of the page versions at the synced position."""

    def holds(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


@dataclass
class _CopyBound(_Guard):
    """The WAL index of this generation (raw_hdr) shows that no frame past `frames` was ever set out to be
    copied into the database file. Salts that no longer match (the WAL restarted) fail it too."""

    idx: WalIndex
    raw_hdr: bytes
    frames: int

    def holds(self) -> bool:
        info = self.idx.info(self.raw_hdr)
        return info is not None and info.copied_upto <= self.frames


@dataclass
class _SameGeneration(_Guard):
    """A snapshot reads the frames of the generation it scanned; those stay as they were while the WAL
    header does. A writer that restarts the WAL writes the new header before any frame it overwrites, so
    an unchanged header after encoding shows no frame was overwritten before it was read. Needed because
    a read transaction begun on a completely copied WAL sits on read mark 0, which holds off checkpoints
    but not the next writer's restart (the crash loop found a snapshot mixing two generations)."""

    walfd: int
    raw_hdr: bytes

    def holds(self) -> bool:
        return os.pread(self.walfd, WAL_HEADER_SIZE, 0) == self.raw_hdr


@dataclass
class _Rebase(_Guard):
    """The WAL index cannot tell what the database file holds past our position, so the next L0 is not
    rolled forward: its post-apply checksum is computed from the whole state at the end of its scan (the
    database file overlaid with this generation's frames up to there; see Syncer._write). No lock is
    needed for that: the only pages taken from the file are those no frame up to the scan end touches,
    which no checkpoint writes, and no checkpoint copies past our read transaction, which pins the WAL
    at or before the scan end. It holds while the index, for the same salts, shows nothing was set out to
    be copied past the scan end (end_frames, known once the WAL is scanned)."""

    idx: WalIndex
    raw_hdr: bytes
    end_frames: int = -1

    def holds(self) -> bool:
        return self.end_frames >= 0 and _CopyBound(self.idx, self.raw_hdr, self.end_frames).holds()


@dataclass
class _Frozen(_Guard):
    """SQLite's checkpoint lock is held, so the database file stays as it was when it was taken. That
    still stands if the lock is still ours (taking it again succeeds at once; had it been lost, a
    checkpoint of another process in progress would have it) and the copy counters did not move (a
    checkpoint that copied anything in between advanced nBackfill)."""

    idx: WalIndex
    raw_hdr: bytes
    before: WalIndexInfo
    took_lock: bool

    def holds(self) -> bool:
        if not self.idx.hold():
            return False
        now = self.idx.info(self.raw_hdr)  # mxFrame may grow meanwhile: writers are not held up
        return now is not None and (now.backfill, now.backfill_attempted) == \
            (self.before.backfill, self.before.backfill_attempted)

    def close(self) -> None:
        if self.took_lock:
            self.idx.release()


class Syncer:
    """Replication position of one database and the procedure that advances it by one L0 file."""

    def __init__(self, db_path: str, meta: MetaDir, log, max_sync_wal_bytes: int = 64 << 20) -> None:
        self.db_path = db_path
        self.wal_path = db_path + "-wal"
        self.meta = meta
        self.log = log
        self.max_sync_wal_bytes = max_sync_wal_bytes
        self.page_size = 0
        self.txid = 0
        self.pos: WalPos | None = None
        self.db_sum: int | None = None  # database checksum (with flag) at pos, None when unknown
        self.gen_map: dict[int, int] = {}  # pgno -> frame offset of the latest synced version, this generation
        self.gen_map_ok = False  # gen_map describes the WAL up to pos.end
        self.sealed: tuple[tuple[int, int], int] | None = None  # (salts, end) we checkpointed completely
        self.force_snapshot: str | None = None
        self.idx = WalIndex()  # the -shm file (Database.open sets it)
        self.lock_wait_s = 1.0  # how long a checksum proof waits for SQLite's checkpoint lock
        # The last sync left a commit that a live writer had not yet published in the WAL index: look
        # again soon, as no further WAL write may come to trigger it.
        self.index_behind = False

    # ------------------------------------------------------------------------------------------ state

    def load(self) -> None:
        """Position from the newest local L0 (fully verified), as after a restart."""
        try:
            info = self.meta.last_l0()
        except (core.LTXError, OSError) as e:
            raise SyncError(f"local ltx file is unreadable: {e}",
                            f"Run 'litestream reset {self.db_path}' to discard local state") from None
        if info is None:
            self.txid, self.pos, self.db_sum = 0, None, None
            return
        h = info.header
        self.txid = info.txid
        self.pos = WalPos((h.wal_salt1, h.wal_salt2), h.wal_offset + h.wal_size, h.commit) if h.wal_offset else None
        self.db_sum = info.sums.post_apply if info.sums else None
        self.gen_map, self.gen_map_ok = {}, False
        self.sealed = None

    def seal(self) -> None:
        """Our checkpoint copied everything up to pos into the database with writers locked out."""
        if self.pos is not None:
            self.sealed = (self.pos.salts, self.pos.end)

    # ------------------------------------------------------------------------------------------- sync

    def sync(self, walfd: int, dbfd: int) -> SyncResult | None:
        """Write the next L0 file if there is anything new (or a snapshot is due). None when idle."""
        self.index_behind = False
        try:
            return self._sync(walfd, dbfd, rebase=False)
        except _DBFileChanged:
            self.log.info("database file changed during sync; its checksum is recomputed")
        try:
            return self._sync(walfd, dbfd, rebase=True)
        except _DBFileChanged:
            self.log.warn("database file changed during sync; taking a snapshot instead")
        for _ in range(_SNAPSHOT_ATTEMPTS):
            self.force_snapshot = self.force_snapshot or "database file changed during sync"
            try:
                return self._sync(walfd, dbfd, rebase=False)
            except _DBFileChanged:
                self.log.info("wal restarted while the snapshot was read; reading it again")
        raise SyncError("the wal kept restarting while a snapshot was read; the next sync tries again")

    def _sync(self, walfd: int, dbfd: int, rebase: bool) -> SyncResult | None:
        raw_hdr = os.pread(walfd, WAL_HEADER_SIZE, 0)
        hdr_t = core.wal_header_parse(raw_hdr)
        if hdr_t is None:
            return None  # empty WAL: nothing committed since it was reset; the caller writes one
        hdr = wal.WALHeader(*hdr_t)
        if self.page_size and hdr.page_size != self.page_size:
            raise SyncError(f"wal page size {hdr.page_size} does not match database page size {self.page_size}")
        start, reason, guard = self._plan(walfd, dbfd, hdr, raw_hdr, rebase)
        try:
            snapshot = reason is not None
            # A re-based file covers everything up to the end of the WAL: the database file may hold frames
            # up to there, and the whole state is only known at a point past all of them.
            whole = snapshot or isinstance(guard, _Rebase)
            # Asked before the index is read: a writer that held the lock then may publish its commit
            # after we read the index (no WAL write follows to tell us); one that starts later writes
            # frames after we looked, and that write schedules the next sync.
            writing = self.idx.writer_active()
            limit = self._committed_end(raw_hdr, hdr.page_size)
            try:
                scan = wal.scan(walfd, hdr, start, hdr.salts if start == WAL_HEADER_SIZE else self.pos.salts,
                                0 if whole else self.max_sync_wal_bytes, limit)
            except wal.PrevFrameMismatch:
                scan, snapshot, reason = wal.scan(walfd, hdr, end_limit=limit), True, \
                    "wal frames changed under the synced position"
                start = WAL_HEADER_SIZE
            self.index_behind = self._commit_past(walfd, hdr, scan.end, limit) and (writing or _recent(walfd))
            if not snapshot and scan.end == start:
                return None
            return self._write(walfd, dbfd, hdr, start, scan, snapshot, reason,
                               _SameGeneration(walfd, raw_hdr) if snapshot else guard)
        finally:
            if guard is not None:
                guard.close()

    def _committed_end(self, raw_hdr: bytes, page_size: int) -> int:
        """The end of what SQLite counts as committed: mxFrame of the WAL index (0, no limit, when the index
        cannot be read). Frames past it that look committed in the file are a transaction whose writer died
        before updating the index: SQLite discards them, so must we."""
        info = self.idx.info(raw_hdr)
        return wal_size_bytes(page_size, info.mx_frame) if info is not None else 0

    def _commit_past(self, walfd: int, hdr: wal.WALHeader, end: int, limit: int) -> bool:
        """Whether the scan stopped at the index's mxFrame with a whole commit in the file past it: either a
        writer that has not yet published it in the index, or one that died before it could."""
        if not limit or end != limit or os.fstat(walfd).st_size <= limit:
            return False
        try:
            return wal.scan(walfd, hdr, limit, hdr.salts, 0, 0).end > limit
        except wal.PrevFrameMismatch:
            return False

    def _plan(self, walfd: int, dbfd: int, hdr: wal.WALHeader, raw_hdr: bytes,
              rebase: bool) -> tuple[int, str | None, _Guard | None]:
        """(start offset, snapshot reason or None for incremental, the guard of an incremental sync).
        rebase: re-base even where the WAL index would vouch (the last attempt found it changing)."""
        if self.force_snapshot:
            return WAL_HEADER_SIZE, self.force_snapshot, None
        if self.txid == 0:
            return WAL_HEADER_SIZE, "initial snapshot", None
        p = self.pos
        if p is None:
            return WAL_HEADER_SIZE, "last ltx file has no wal position", None
        if self.db_sum is None:
            return WAL_HEADER_SIZE, "database checksum unknown", None
        wal_size = os.fstat(walfd).st_size
        if hdr.salts == p.salts:
            if wal_size < p.end:
                return WAL_HEADER_SIZE, "wal truncated by another process", None
            if not self._chain_ok(walfd, hdr):
                return WAL_HEADER_SIZE, "wal frames do not match the last synced position", None
            return p.end, None, self._db_file_guard(raw_hdr, wal_frames_at(hdr.page_size, p.end), rebase)
        # A new generation: the old one must have ended at our position (the database file then held
        # exactly the state there when the WAL restarted). Our own sealed checkpoint or the old
        # generation's tail show that; otherwise a checksum of the database file must show it holds that
        # state, which also shows nothing of the new generation was copied into it.
        if (self.sealed == (p.salts, p.end) and hdr.salt1 == (p.salts[0] + 1) & 0xFFFFFFFF) or \
                self._restart_proven_by_tail(walfd, hdr, wal_size):
            guard = self._db_file_guard(raw_hdr, 0, rebase)
        else:
            guard = self._locked_guard(raw_hdr)
            if guard is not None and self._state_checksum(walfd, dbfd, p.commit, None) != self.db_sum:
                guard.close()
                guard = None
        if guard is None:
            return WAL_HEADER_SIZE, "wal restarted by another process; unreplicated frames cannot be ruled out", None
        self._enter_generation(hdr)
        return WAL_HEADER_SIZE, None, guard

    def _enter_generation(self, hdr: wal.WALHeader) -> None:
        """Continue in a new WAL generation: the database file holds the state at pos."""
        self.pos = WalPos(hdr.salts, WAL_HEADER_SIZE, self.pos.commit, (hdr.cksum1, hdr.cksum2))
        self.gen_map, self.gen_map_ok = {}, True
        self.sealed = None

    def _chain_ok(self, walfd: int, hdr: wal.WALHeader) -> bool:
        p = self.pos
        if p.end == WAL_HEADER_SIZE:
            return True
        fsz = 24 + hdr.page_size
        if p.chain is not None and self.gen_map_ok:
            fh = os.pread(walfd, 24, p.end - fsz)
            return len(fh) == 24 and fh[8:16] == _salt_bytes(p.salts) and \
                (int.from_bytes(fh[16:20], "big"), int.from_bytes(fh[20:24], "big")) == p.chain
        # After a restart of our process: the chain must validate from the header to exactly p.end. (Whether
        # the database file was given frames past it is the guard's question.)
        scan = wal.scan(walfd, hdr, WAL_HEADER_SIZE, hdr.salts, p.end - WAL_HEADER_SIZE)
        if scan.end != p.end:
            return False
        p.chain = (scan.s0, scan.s1)
        self.gen_map = scan.page_map()
        self.gen_map_ok = True
        return True

    def _restart_proven_by_tail(self, walfd: int, hdr: wal.WALHeader, wal_size: int) -> bool:
        """One restart by someone else: prove the old generation ended at our position. The evidence must
        still be in the file: our last synced frame untouched by the new generation, and beyond it (the
        file must go on past it, or a truncation could have hidden frames) no frame of the old one."""
        p = self.pos
        fsz = 24 + hdr.page_size
        if hdr.salt1 != (p.salts[0] + 1) & 0xFFFFFFFF or p.end == WAL_HEADER_SIZE or wal_size <= p.end:
            return False
        new_gen = wal.scan(walfd, hdr, WAL_HEADER_SIZE, hdr.salts)
        if new_gen.valid_end > p.end - fsz:
            return False  # the new generation reached our last frame: older frames may have been replaced
        prev = os.pread(walfd, 24, p.end - fsz)
        if len(prev) < 24 or prev[8:16] != _salt_bytes(p.salts):
            return False
        if p.chain is not None and (int.from_bytes(prev[16:20], "big"), int.from_bytes(prev[20:24], "big")) != p.chain:
            return False
        nxt = os.pread(walfd, 24, p.end)
        return not (len(nxt) == 24 and nxt[8:16] == _salt_bytes(p.salts))  # else: frames we never saw

    # ------------------------------------------------------------------------------ database-file proofs

    def _db_file_guard(self, raw_hdr: bytes, frames: int, rebase: bool) -> _Guard:
        """The WAL index shows the database file holds nothing past frame `frames` of this generation; or,
        when it cannot (or rebase), the next L0 re-bases the checksum."""
        bound = _CopyBound(self.idx, raw_hdr, frames)
        if not rebase and bound.holds():
            return bound
        return _Rebase(self.idx, raw_hdr)

    def _locked_guard(self, raw_hdr: bytes) -> _Frozen | None:
        """Hold SQLite's checkpoint lock (waiting for a checkpoint in progress to end) until the L0 file is
        written, so that no other process copies frames into the database file meanwhile."""
        took = not self.idx.held
        if not self.idx.hold(self.lock_wait_s if took else 0.0):
            self.log.info("checkpoint lock busy; cannot freeze the database file")
            return None
        before = self.idx.info(raw_hdr)
        if before is None:
            if took:
                self.idx.release()
            return None
        return _Frozen(self.idx, raw_hdr, before, took)

    def _state_checksum(self, walfd: int, dbfd: int, commit: int, overlay: dict[int, int] | None) -> int | None:
        """Database checksum of pages 1..commit as the database file and overlay (pgno -> WAL frame offset,
        taking precedence) hold them; None when they do not hold every page. Without an overlay the file
        must be exactly commit pages long, as a complete checkpoint leaves it."""
        ps = self.page_size
        if not ps:
            return None
        t0 = time.monotonic()
        size = os.fstat(dbfd).st_size
        if overlay is None and size != commit * ps:
            return None
        in_file = min(size // ps, commit)
        wal_pages = sorted(k for k in (overlay or {}) if k <= commit)
        lock = lock_pgno(ps)
        beyond_file = commit - in_file - (1 if in_file < lock <= commit else 0)
        if sum(1 for k in wal_pages if k > in_file) != beyond_file:
            return None  # pages past the end of the file that no frame holds
        total = core.db_checksum(dbfd, ps, in_file)
        if wal_pages:
            shadowed = array("I", [k for k in wal_pages if k <= in_file])
            total ^= core.checksum_pages(walfd, dbfd, ps, shadowed, array("Q", [DB_FILE]) * len(shadowed))
            total ^= core.checksum_pages(walfd, dbfd, ps, array("I", wal_pages),
                                         array("Q", [overlay[k] for k in wal_pages]))
        got = CHECKSUM_FLAG | (total & LOW63)
        self.log.debug("database checksum computed", pages=commit, seconds=round(time.monotonic() - t0, 3))
        return got

    # -------------------------------------------------------------------------------------- snapshots

    def plan_snapshot(self, walfd: int) -> SnapshotPlan:
        """What a snapshot of the current position reads: the database file plus the latest synced frame of
        every page this WAL generation changed. Call it with the database lock held; encode_snapshot then
        needs no lock while SQLite's checkpoint lock keeps the database file as it is."""
        p = self.pos
        if p is None or not self.gen_map_ok or self.txid == 0:
            raise SyncError("no replicated position to snapshot yet")
        raw_hdr = os.pread(walfd, WAL_HEADER_SIZE, 0)
        info = self.idx.info(raw_hdr)
        if raw_hdr[16:24] != _salt_bytes(p.salts) or info is None or \
                info.copied_upto > wal_frames_at(self.page_size, p.end):
            raise SyncError("the wal moved past the replicated position; the snapshot is taken after the next sync")
        pgnos = array("I", sorted(k for k in self.gen_map if k <= p.commit))
        offsets = array("Q", [self.gen_map[k] for k in pgnos])
        return SnapshotPlan(self.txid, p.commit, pgnos, offsets, raw_hdr, info, self.db_sum)

    def encode_snapshot(self, plan: SnapshotPlan, fd: int, walfd: int, dbfd: int, flags: int) -> tuple[Header, bool]:
        """Encode a planned snapshot [1, txid] into fd. Returns the header and whether the database checksum
        recorded for that position drifted from the snapshot's (the caller then forces a snapshot L0).
        Raises SyncError when the database file or the frames may have changed while they were read."""
        header = _snapshot_header(flags, self.page_size, plan.commit, plan.txid)
        enc = core.Encoder(fd)
        enc.track_sums(True)
        enc.write_header(header)
        enc.write_wal_pages(walfd, dbfd, plan.pgnos, plan.offsets, plan.commit, 1, plan.commit)
        post = CHECKSUM_FLAG | (enc.page_sum & LOW63)
        enc.finish(0)
        core.patch_reserved(fd, encode_reserved(0, post), enc.hashed_len)
        # Still the same generation (a restart rewrites the index salts before any frame), the checkpoint
        # lock still ours and nothing copied meanwhile: the file and the frames held what the plan saw.
        if not _Frozen(self.idx, plan.raw_hdr, plan.info, took_lock=False).holds():
            raise SyncError("the database changed while the snapshot was written; it is taken again later")
        drift = plan.db_sum is not None and post != plan.db_sum
        if drift:
            # The snapshot is right by construction; the running checksum is not. Re-base it.
            self.log.error("database checksum drifted; next sync takes a snapshot", expected=f"{plan.db_sum:016x}",
                           actual=f"{post:016x}")
        return header, drift

    def _write(self, walfd: int, dbfd: int, hdr: wal.WALHeader, start: int, scan: wal.WALScan, snapshot: bool,
               reason: str | None, guard: _Guard | None) -> SyncResult:
        ps = hdr.page_size
        txid = self.txid + 1
        db_pages = os.fstat(dbfd).st_size // ps
        commit = scan.commit or (db_pages if snapshot else self.pos.commit)
        prev_commit = 0 if snapshot else self.pos.commit
        # Database checksum: take out the old versions of the pages this file replaces or drops (they are
        # in frames of this generation we synced before, or in the database file), add the new versions.
        # Or, re-basing, compute it from the whole new state.
        old_xor = 0
        rebased: int | None = None
        if isinstance(guard, _Rebase):
            guard.end_frames = wal_frames_at(ps, scan.end)
            if not guard.holds():
                raise _DBFileChanged  # frames past the end of our scan were copied: no state to sum up
            overlay = dict(self.gen_map)  # this generation's synced frames ({} just after a restart)
            overlay.update(zip(scan.pgnos, scan.offsets, strict=True))
            rebased = self._state_checksum(walfd, dbfd, commit, overlay)
            if rebased is None:
                raise _DBFileChanged
            self.log.info("database checksum recomputed from the database file", txid=f"{txid:016x}",
                          reason="the wal index cannot show what the database file holds (rebuilt after a crash?)")
        elif not snapshot:
            lock = lock_pgno(ps)
            old = sorted({p for p in scan.pgnos if p <= prev_commit} |
                         {p for p in range(commit + 1, prev_commit + 1) if p != lock})
            if old:
                old_off = array("Q", [self.gen_map.get(p, DB_FILE) for p in old])
                old_xor = core.checksum_pages(walfd, dbfd, ps, array("I", old), old_off)
        ts = time.time_ns() // 1_000_000
        header = Header(FLAG_NO_CHECKSUM, ps, commit, txid, txid, ts, 0, start, scan.end - start,
                        hdr.salt1, hdr.salt2, 0)
        pre = 0 if snapshot else (self.db_sum or 0)
        result: dict = {}

        def write(fd: int) -> None:
            enc = core.Encoder(fd)
            enc.track_sums(True)
            enc.write_header(header)
            # Growth pages the WAL does not hold come from the database file (all pages for a snapshot).
            db_from = 1 if snapshot else (prev_commit + 1 if commit > prev_commit else 0)
            enc.write_wal_pages(walfd, dbfd, scan.pgnos, scan.offsets, commit, db_from, commit)
            new_xor = enc.page_sum
            if rebased is not None:
                post = rebased
            else:
                post = CHECKSUM_FLAG | ((new_xor if snapshot else (pre ^ old_xor ^ new_xor)) & LOW63)
            enc.finish(0)
            if guard is not None and not guard.holds():
                raise _DBFileChanged  # the old versions read above may be newer ones: discard the file
            core.patch_reserved(fd, encode_reserved(pre, post), enc.hashed_len)
            result["post"] = post

        mode = _file_mode(self.db_path)
        size = self.meta.write_l0(txid, write, mode, ts * 1_000_000)
        # The new position counts only once the file is durable.
        if snapshot or (self.pos is not None and self.pos.salts != hdr.salts):
            self.gen_map = {}
        self.gen_map.update(zip(scan.pgnos, scan.offsets, strict=True))
        self.gen_map_ok = True
        self.txid = txid
        self.pos = WalPos(hdr.salts, scan.end, commit, (scan.s0, scan.s1))
        self.db_sum = result["post"]
        self.force_snapshot = None
        self.sealed = None
        return SyncResult(txid, snapshot, reason, start, scan.end - start, len(scan.pgnos), size, scan.limited)


def _salt_bytes(salts: tuple[int, int]) -> bytes:
    return salts[0].to_bytes(4, "big") + salts[1].to_bytes(4, "big")


def _file_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o644


def _snapshot_header(flags: int, ps: int, commit: int, txid: int) -> Header:
    return Header(flags, ps, commit, 1, txid, time.time_ns() // 1_000_000)
