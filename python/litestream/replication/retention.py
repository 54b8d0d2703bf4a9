"""Which files of a replica may go, and deleting them (through the ReplicaClient protocol only).

Snapshot retention keeps every snapshot created inside the window and, unlike the reference, also the
newest one created before it: that one is the base every restore of a TXID from the start of the window
needs (the reference keeps only snapshots inside the window, so a restore of a TXID committed in the
window before its oldest snapshot fails). The floor is that base's MaxTXID: files of levels 1..8 that
end below it are needed by no restore that the window promises. Each level keeps at least its newest
file, as in the reference.

Level retention (`levels[].retention`, which the seed documents and the reference ignores) removes a
level's files older than its retention once a file of a higher level (or a snapshot) covers each of
them: restores keep working end to end, at the coarser level's granularity for older history.

L0 retention, as the reference: files compacted into L1 (MaxTXID <= L1's max) and older than
l0-retention, walking in order and stopping at the first that is too recent; the newest L0 stays."""

from __future__ import annotations

from dataclasses import dataclass

from litestream.backends.base import ReplicaClient
from litestream.ltx import SNAPSHOT_LEVEL, FileInfo
from litestream.replication.compactor import max_file

MAX_COMPACTION_LEVEL = 8
NEVER = 1 << 62  # a wake-up time that never comes


@dataclass
class Deleter:
    """Deletes through the client unless retention is disabled (`retention.enabled: false`), in which
    case it only counts what it would have deleted, as the reference logs it."""

    client: ReplicaClient
    enabled: bool = True
    deleted: int = 0
    skipped: int = 0

    def delete(self, infos: list[FileInfo]) -> None:
        if not infos:
            return
        if not self.enabled:
            self.skipped += len(infos)
            return
        self.client.delete_ltx_files(infos)
        self.deleted += len(infos)


def enforce_snapshot_retention(client: ReplicaClient, deleter: Deleter, retention_ns: int, now_ns: int) -> int:
    """Delete snapshots no restore inside the window needs. Returns the floor TXID (0: nothing below it
    may go)."""
    snaps = sorted(client.ltx_files(SNAPSHOT_LEVEL, 0, False), key=lambda i: (i.max_txid, i.created_at_ns))
    if not snaps:
        return 0
    start = now_ns - retention_ns
    before = [s for s in snaps if s.created_at_ns < start]
    if not before:
        return 0
    base = before[-1]  # the newest snapshot from before the window: the base of its earliest restores
    deleter.delete([s for s in snaps if s.max_txid < base.max_txid])
    return base.max_txid


def enforce_retention_by_txid(client: ReplicaClient, deleter: Deleter, level: int, floor: int) -> None:
    """Delete files of a level ending below floor, keeping the level's newest file."""
    if floor <= 0:
        return
    files = list(client.ltx_files(level, 0, False))
    doomed = [f for f in files if f.max_txid < floor]
    if doomed and files and doomed[-1] == files[-1]:
        doomed.pop()
    deleter.delete(doomed)


def enforce_level_retention(client: ReplicaClient, deleter: Deleter, level: int, retention_ns: int,
                            higher_levels: list[int], now_ns: int) -> int:
    """Delete files of a level older than its retention that a file of a higher level covers. Returns when
    the next file ages past the retention (NEVER: none does; an old file not covered yet can only go once
    a higher level is written)."""
    files = list(client.ltx_files(level, 0, False))
    if len(files) <= 1:
        return NEVER
    start = now_ns - retention_ns
    old = [f for f in files[:-1] if f.created_at_ns < start]
    wake = min((f.created_at_ns + retention_ns for f in files[:-1] if f.created_at_ns >= start), default=NEVER)
    if not old:
        return wake
    cover = [g for lv in higher_levels for g in client.ltx_files(lv, 0, False)]
    cover += [FileInfo(SNAPSHOT_LEVEL, 1, s.max_txid, s.size, s.created_at_ns)
              for s in client.ltx_files(SNAPSHOT_LEVEL, 0, False)]
    deleter.delete([f for f in old if any(g.min_txid <= f.min_txid and g.max_txid >= f.max_txid for g in cover)])
    return wake


@dataclass(frozen=True, slots=True)
class L0Counts:
    """One L0 retention scan, as the reference's litestream_l0_retention_files_total reports it: files
    that go, old files not compacted into L1 yet, and files from the first too recent one on."""

    eligible: int = 0
    not_compacted: int = 0
    too_recent: int = 0


L0_STATUSES = ("eligible", "not_compacted", "too_recent")  # L0Counts' fields, the gauge's status label


@dataclass(frozen=True, slots=True)
class L0Plan:
    doomed: list[FileInfo]
    wake_ns: int  # when the next file becomes eligible if nothing is uploaded or compacted meanwhile
    counts: L0Counts | None  # None: no scan (l0-retention disabled)


def l0_expired(client: ReplicaClient, retention_ns: int, now_ns: int) -> list[FileInfo]:
    """The L0 files L0 retention lets go (the reference's EnforceL0Retention)."""
    return l0_plan(client, retention_ns, now_ns).doomed


def l0_plan(client: ReplicaClient, retention_ns: int, now_ns: int) -> L0Plan:
    """l0_expired, with when to look again (NEVER: not before something changes), so an idle replica is
    not listed every check interval for nothing, and the scan's counts."""
    if retention_ns <= 0:
        return L0Plan([], NEVER, None)
    l1 = max_file(client, 1)
    if l1 is None:
        return L0Plan([], NEVER, L0Counts())
    threshold = now_ns - retention_ns
    files = list(client.ltx_files(0, 0, False))
    doomed = []
    not_compacted = too_recent = 0
    whole = True
    wake = NEVER
    for i, f in enumerate(files):
        created = f.created_at_ns or threshold
        if created > threshold:
            whole = False
            too_recent = len(files) - i
            if f.max_txid <= l1.max_txid and f != files[-1]:
                wake = created + retention_ns
            break
        if f.max_txid <= l1.max_txid:
            doomed.append(f)
        else:
            not_compacted += 1
    if whole and doomed and doomed[-1] == files[-1]:
        doomed.pop()
    return L0Plan(doomed, wake, L0Counts(len(doomed), not_compacted, too_recent))
