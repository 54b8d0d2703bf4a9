"""When to checkpoint (the policy); the procedure lives in database.py.

Thresholds are measured on the replicated WAL size, as in the reference:
1. at or above truncate-page-n pages: a restart checkpoint first; if the WAL is still that large, TRUNCATE;
2. at or above RESTART_FACTOR (4) x min-checkpoint-page-count pages: RESTART, our name for a PASSIVE
   checkpoint that briefly locks writers out so the WAL can start over from the beginning;
3. at or above min-checkpoint-page-count pages: PASSIVE, which copies what is replicated into the
   database file without blocking anyone;
4. checkpoint-interval elapsed since the database file last changed, with data replicated since the last
   checkpoint and more than one frame in the WAL: RESTART (the database is quiet, the lock costs nothing).

Why 4x: with a writer committing 4 KiB blobs as fast as it can (bench/compare_replicate.py maxrate;
the sweep is in bench/README.md) 2x, 4x and 8x all kept it at 0.88-0.92 of its unreplicated speed, within
the noise of this machine; 4x keeps the WAL and the worst commit latency lower than 8x (a larger WAL
costs every reader and the page cache) and restarts, each locking writers out for a few milliseconds of
fsyncs, half as often as 2x. The reference takes the write lock with the whole copy under it, which
blocks such a writer far longer."""

from __future__ import annotations

from dataclasses import dataclass

from litestream.db.sync import wal_size_bytes

RESTART_FACTOR = 4


@dataclass
class CheckpointPolicy:
    min_checkpoint_page_n: int = 1000
    truncate_page_n: int = 121359
    checkpoint_interval_s: float = 60.0

    def decide(self, page_size: int, synced_wal_bytes: int, synced_since_checkpoint: bool,
               seconds_since_db_write: float) -> str | None:
        """The checkpoint mode to run now, or None."""
        if synced_wal_bytes >= wal_size_bytes(page_size, self.truncate_page_n):
            return "TRUNCATE"
        if synced_wal_bytes >= wal_size_bytes(page_size, self.restart_page_n):
            return "RESTART"
        if synced_wal_bytes >= wal_size_bytes(page_size, self.min_checkpoint_page_n):
            return "PASSIVE"
        if (self.checkpoint_interval_s > 0 and synced_since_checkpoint
                and seconds_since_db_write > self.checkpoint_interval_s
                and synced_wal_bytes > wal_size_bytes(page_size, 1)):
            return "RESTART"
        return None

    @property
    def restart_page_n(self) -> int:
        return min(self.truncate_page_n, RESTART_FACTOR * self.min_checkpoint_page_n)
