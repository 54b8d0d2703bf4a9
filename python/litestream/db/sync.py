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
  still in the file and show that nothing was committed after it, and nothing of the new generation has
  been copied into the database yet;
* the database file's checksum equals the checksum we recorded at the synced position, so the database
  file is exactly the state we replicated and the new WAL generation applies on top of it.

Anything else (WAL truncated by another process, several restarts, frames we never saw, no way to tell)
writes a full snapshot into L0, as the reference does for its own verification failures.

Every L0 carries the rolling database checksum before and after it (see checksums.py). It is updated
from the checksums of the pages each file replaces and adds; the old versions come from the WAL frames of
this generation we already synced, or from the database file, which holds only replicated content while
our read transactions pin the WAL."""

from __future__ import annotations

import os
import time
from array import array
from dataclasses import dataclass

from litestream import _ltxcore as core
from litestream import wal
from litestream.db.checksums import encode_reserved
from litestream.db.meta import MetaDir
from litestream.ltx import CHECKSUM_FLAG, FLAG_NO_CHECKSUM, Header, lock_pgno

WAL_HEADER_SIZE = 32
LOW63 = CHECKSUM_FLAG - 1
DB_FILE = (1 << 64) - 1  # offset marker: the page comes from the database file


class SyncError(Exception):
    """Replication of this database cannot continue; the message says why."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


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
        self.shm_reader = lambda wal_header: None  # (mxFrame, nBackfill) of the WAL index, or None

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
        raw_hdr = os.pread(walfd, WAL_HEADER_SIZE, 0)
        hdr_t = core.wal_header_parse(raw_hdr)
        if hdr_t is None:
            return None  # empty WAL: nothing committed since it was reset; the caller writes one
        hdr = wal.WALHeader(*hdr_t)
        if self.page_size and hdr.page_size != self.page_size:
            raise SyncError(f"wal page size {hdr.page_size} does not match database page size {self.page_size}")
        start, reason = self._plan(walfd, dbfd, hdr, raw_hdr)
        snapshot = reason is not None
        try:
            scan = wal.scan(walfd, hdr, start, hdr.salts if start == WAL_HEADER_SIZE else self.pos.salts,
                            0 if snapshot else self.max_sync_wal_bytes)
        except wal.PrevFrameMismatch:
            scan, snapshot, reason = wal.scan(walfd, hdr), True, "wal frames changed under the synced position"
            start = WAL_HEADER_SIZE
        if not snapshot and scan.end == start:
            return None
        return self._write(walfd, dbfd, hdr, start, scan, snapshot, reason)

    def _plan(self, walfd: int, dbfd: int, hdr: wal.WALHeader, raw_hdr: bytes) -> tuple[int, str | None]:
        """(start offset, snapshot reason or None for incremental)."""
        if self.force_snapshot:
            return WAL_HEADER_SIZE, self.force_snapshot
        if self.txid == 0:
            return WAL_HEADER_SIZE, "initial snapshot"
        p = self.pos
        if p is None:
            return WAL_HEADER_SIZE, "last ltx file has no wal position"
        if self.db_sum is None:
            return WAL_HEADER_SIZE, "database checksum unknown"
        wal_size = os.fstat(walfd).st_size
        if hdr.salts == p.salts:
            if wal_size < p.end:
                return WAL_HEADER_SIZE, "wal truncated by another process"
            if not self._chain_ok(walfd, hdr, raw_hdr):
                return WAL_HEADER_SIZE, "wal frames do not match the last synced position"
            return p.end, None
        if self.sealed == (p.salts, p.end) and hdr.salt1 == (p.salts[0] + 1) & 0xFFFFFFFF:
            return WAL_HEADER_SIZE, None if self._enter_generation(hdr) else "wal restarted"
        if self._restart_proven_by_tail(walfd, hdr, raw_hdr, wal_size):
            self._enter_generation(hdr)
            return WAL_HEADER_SIZE, None
        if self._proven_by_db_checksum(dbfd):
            self._enter_generation(hdr)
            return WAL_HEADER_SIZE, None
        return WAL_HEADER_SIZE, "wal restarted by another process; unreplicated frames cannot be ruled out"

    def _enter_generation(self, hdr: wal.WALHeader) -> bool:
        """Continue in a new WAL generation: the database file now holds the state at pos."""
        self.pos = WalPos(hdr.salts, WAL_HEADER_SIZE, self.pos.commit, (hdr.cksum1, hdr.cksum2))
        self.gen_map, self.gen_map_ok = {}, True
        self.sealed = None
        return True

    def _chain_ok(self, walfd: int, hdr: wal.WALHeader, raw_hdr: bytes) -> bool:
        p = self.pos
        if p.end == WAL_HEADER_SIZE:
            return True
        fsz = 24 + hdr.page_size
        if p.chain is not None and self.gen_map_ok:
            fh = os.pread(walfd, 24, p.end - fsz)
            return len(fh) == 24 and fh[8:16] == _salt_bytes(p.salts) and \
                (int.from_bytes(fh[16:20], "big"), int.from_bytes(fh[20:24], "big")) == p.chain
        # After a restart of our process: the chain must validate from the header to exactly p.end, and the
        # database file must not have been given frames we never replicated.
        scan = wal.scan(walfd, hdr, WAL_HEADER_SIZE, hdr.salts, p.end - WAL_HEADER_SIZE)
        if scan.end != p.end:
            return False
        backfill = self.shm_reader(raw_hdr)
        if backfill is not None and wal_size_bytes(hdr.page_size, backfill[1]) > p.end:
            return False
        p.chain = (scan.s0, scan.s1)
        self.gen_map = scan.page_map()
        self.gen_map_ok = True
        return True

    def _restart_proven_by_tail(self, walfd: int, hdr: wal.WALHeader, raw_hdr: bytes, wal_size: int) -> bool:
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
        if len(nxt) == 24 and nxt[8:16] == _salt_bytes(p.salts):
            return False  # the old generation went on after our position: frames we never saw
        backfill = self.shm_reader(raw_hdr)
        return backfill is not None and backfill[1] == 0

    def _proven_by_db_checksum(self, dbfd: int) -> bool:
        p = self.pos
        if self.db_sum is None or p is None or not self.page_size:
            return False
        if os.fstat(dbfd).st_size != p.commit * self.page_size:
            return False
        t0 = time.monotonic()
        got = core.db_checksum(dbfd, self.page_size, p.commit)
        self.log.debug("database checksum compared", match=got == self.db_sum,
                       seconds=round(time.monotonic() - t0, 3))
        return got == self.db_sum

    # -------------------------------------------------------------------------------------- snapshots

    def write_snapshot(self, fd: int, walfd: int, dbfd: int, flags: int) -> Header:
        """Encode the state at the current position as a snapshot [1, txid] into fd: the database file
        plus the latest synced frame of every page this WAL generation changed."""
        p = self.pos
        if p is None or not self.gen_map_ok or self.txid == 0:
            raise SyncError("no replicated position to snapshot yet")
        pgnos = array("I", sorted(k for k in self.gen_map if k <= p.commit))
        offsets = array("Q", [self.gen_map[k] for k in pgnos])
        header = _snapshot_header(flags, self.page_size, p.commit, self.txid)
        enc = core.Encoder(fd)
        enc.track_sums(True)
        enc.write_header(header)
        enc.write_wal_pages(walfd, dbfd, pgnos, offsets, p.commit, 1, p.commit)
        post = CHECKSUM_FLAG | (enc.page_sum & LOW63)
        enc.finish(0)
        core.patch_reserved(fd, encode_reserved(0, post), enc.hashed_len)
        if self.db_sum is not None and post != self.db_sum:
            # The snapshot is right by construction; the running checksum is not. Re-base it.
            self.log.error("database checksum drifted; next sync takes a snapshot", expected=f"{self.db_sum:016x}",
                           actual=f"{post:016x}")
            self.force_snapshot = "database checksum drifted"
        return header

    # ------------------------------------------------------------------------------------------ write

    def _write(self, walfd: int, dbfd: int, hdr: wal.WALHeader, start: int, scan: wal.WALScan, snapshot: bool,
               reason: str | None) -> SyncResult:
        ps = hdr.page_size
        txid = self.txid + 1
        db_pages = os.fstat(dbfd).st_size // ps
        commit = scan.commit or (db_pages if snapshot else self.pos.commit)
        prev_commit = 0 if snapshot else self.pos.commit
        # Database checksum: take out the old versions of the pages this file replaces or drops (they are
        # in frames of this generation we synced before, or in the database file), add the new versions.
        old_xor = 0
        if not snapshot:
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
            post = CHECKSUM_FLAG | ((new_xor if snapshot else (pre ^ old_xor ^ new_xor)) & LOW63)
            enc.finish(0)
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
