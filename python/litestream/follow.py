"""`restore -f`: keep a restored database up to date by applying new LTX files to it in place.

As the reference: after the restore, `<out>-txid` holds the last applied TXID (`%016x` and a newline,
written atomically); every follow-interval the L0 files past it are applied, gaps filled from L1..L8;
each file is written page by page into the database under SQLite's exclusive lock bytes (PENDING and the
SHARED range, waiting for readers to finish), page 1 marked rollback-journal mode (bytes 18-19 = 1) with a
new change counter (bytes 24-27, so readers drop their cache), the file truncated to the new size and
fsynced; only then does `<out>-txid` move on. A crash between the two re-applies the same file, which
writes the same pages again.

Past the reference: every file's CRC is verified before its first page is written (the reference writes
pages as it decodes them, so a damaged file leaves a half-applied database), and a resume after new files
appeared continues from the saved TXID (the reference refuses any saved TXID past its newest snapshot;
§3.7 of the reference notes). A resume fails, with the way out, only when the files after the saved TXID
are gone."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading

from litestream import _ltxcore as core
from litestream import logs
from litestream.backends.base import BackendError, ReplicaClient
from litestream.backends.transfer import download
from litestream.fsutil import write_atomic
from litestream.ltx import HEADER_SIZE, SNAPSHOT_LEVEL, FileInfo, Header, LTXError, format_txid, parse_txid
from litestream.restore import RestoreError

_PENDING_BYTE = 0x40000000
_SHARED_FIRST = _PENDING_BYTE + 2
_SHARED_SIZE = 510

log = logs.get_logger("restore")


def txid_path(out: str) -> str:
    return out + "-txid"


def write_txid_file(out: str, txid: int) -> None:
    write_atomic(txid_path(out), (format_txid(txid) + "\n").encode())


def read_txid_file(out: str) -> int:
    """The saved TXID, 0 when there is no file."""
    try:
        with open(txid_path(out)) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return 0
    try:
        return parse_txid(text)
    except ValueError:
        raise RestoreError(f"cannot resume follow mode: {txid_path(out)} does not hold a TXID ({text[:40]!r}); "
                           f"delete {out} and {txid_path(out)} to re-restore") from None


def check_resumable(client: ReplicaClient, out: str) -> int:
    """The TXID to resume following from for an existing output, or a RestoreError saying what to do."""
    txid = read_txid_file(out)
    if txid == 0:
        raise RestoreError("cannot resume follow mode: database exists but no -txid file found; delete the "
                           f"database to re-restore: {out}")
    latest = 0
    reachable = False
    for level in range(SNAPSHOT_LEVEL):
        for info in client.ltx_files(level, 0, False):
            latest = max(latest, info.max_txid)
            if info.min_txid <= txid + 1 <= info.max_txid:
                reachable = True
    for info in client.ltx_files(SNAPSHOT_LEVEL, 0, False):
        latest = max(latest, info.max_txid)
    if txid > latest:
        raise RestoreError(f"cannot resume follow mode: saved TXID {format_txid(txid)} is ahead of the replica "
                           f"(latest TXID {format_txid(latest)}): it holds another database now; delete {out} "
                           f"and {txid_path(out)} to re-restore")
    if txid < latest and not reachable:
        raise RestoreError(f"cannot resume follow mode: the files after saved TXID {format_txid(txid)} are no "
                           f"longer in the replica (removed by retention); delete {out} and {txid_path(out)} "
                           "to re-restore")
    return txid


class Follower:
    def __init__(self, client: ReplicaClient, out: str, txid: int, interval_s: float) -> None:
        self.client = client
        self.out = out
        self.txid = txid
        self.interval_s = interval_s if interval_s > 0 else 1.0
        self.stop = threading.Event()
        self._failing: str | None = None

    def run(self) -> None:
        fd = os.open(self.out, os.O_RDWR | os.O_CLOEXEC)
        try:
            page_size = _page_size(fd)
            log.info("entering follow mode", output=self.out, txid=format_txid(self.txid),
                     interval=_dur(self.interval_s))
            while not self.stop.wait(self.interval_s):
                try:
                    new = self.apply_new(fd, page_size)
                except (BackendError, LTXError, RestoreError, OSError) as e:
                    if str(e) != self._failing:  # once per distinct error, not every interval
                        log.error("follow: error applying updates", err=str(e))
                    self._failing = str(e)
                    continue
                self._failing = None
                if new > self.txid:
                    write_txid_file(self.out, new)
                    log.info("follow: applied updates", from_txid=format_txid(self.txid), to_txid=format_txid(new))
                    self.txid = new
            log.info("follow mode stopped")
        finally:
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    def apply_new(self, fd: int, page_size: int) -> int:
        """Apply every file that continues the chain after self.txid; returns the TXID reached."""
        cur = self.txid
        for info in self.client.ltx_files(0, cur + 1, False):
            if info.min_txid > cur + 1:
                cur = self._fill_gap(fd, page_size, cur)
                if info.min_txid > cur + 1:
                    return cur  # still a gap: the files in between are not there yet
            if info.max_txid <= cur:
                continue
            self.apply_file(fd, page_size, info)
            cur = info.max_txid
        return self._fill_gap(fd, page_size, cur)

    def _fill_gap(self, fd: int, page_size: int, cur: int) -> int:
        """Continue from the compacted levels where L0 no longer holds the next files."""
        progressed = True
        while progressed:
            progressed = False
            for level in range(1, SNAPSHOT_LEVEL):
                nxt = next((i for i in self.client.ltx_files(level, 0, False)
                            if i.min_txid <= cur + 1 < i.max_txid + 1 and i.max_txid > cur), None)
                if nxt is not None:
                    self.apply_file(fd, page_size, nxt)
                    cur = nxt.max_txid
                    progressed = True
                    break
        return cur

    def apply_file(self, fd: int, page_size: int, info: FileInfo) -> None:
        with self._local(info) as path:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                header = Header.decode(os.pread(src, HEADER_SIZE, 0))
                if header.page_size != page_size:
                    raise RestoreError(f"ltx file {info.name} (level {info.level}) has page size {header.page_size}, "
                                       f"the database {page_size}")
                core.Decoder(src).verify()  # the whole file is intact before a page of it is written
                _lock_exclusive(fd)
                try:
                    core.apply_file(src, header, fd, header.commit, core.new_claim_map(header.commit))
                    _mark_rollback_mode(fd)
                    os.fsync(fd)
                    os.ftruncate(fd, header.commit * page_size)
                    os.fsync(fd)
                finally:
                    _unlock(fd)
            finally:
                os.close(src)

    @contextlib.contextmanager
    def _local(self, info: FileInfo):
        path = self.client.local_path(info.level, info.min_txid, info.max_txid)
        if path is not None:
            yield path
            return
        d = tempfile.mkdtemp(prefix=".litestream-follow-", dir=os.path.dirname(os.path.abspath(self.out)))
        try:
            path = os.path.join(d, info.name)
            download(self.client, info, path)
            yield path
        finally:
            shutil.rmtree(d, ignore_errors=True)


def _page_size(fd: int) -> int:
    raw = os.pread(fd, 2, 16)
    ps = int.from_bytes(raw, "big")
    return 65536 if ps == 1 else ps


def _mark_rollback_mode(fd: int) -> None:
    """Page 1: rollback-journal mode (readers need no WAL) and a new change counter."""
    os.pwrite(fd, b"\x01\x01", 18)
    os.pwrite(fd, os.urandom(4), 24)


def _lock_exclusive(fd: int) -> None:
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, _PENDING_BYTE)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, _SHARED_SIZE, _SHARED_FIRST)
    except BaseException:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _PENDING_BYTE)
        raise


def _unlock(fd: int) -> None:
    fcntl.lockf(fd, fcntl.LOCK_UN, _SHARED_SIZE, _SHARED_FIRST)
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, _PENDING_BYTE)


def _dur(seconds: float):
    from litestream.gofmt import Duration

    return Duration(int(seconds * 1e9))
