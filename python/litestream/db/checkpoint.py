"""When to checkpoint (the policy); the procedure lives in database.py.

Thresholds are measured on the replicated WAL size, as in the reference:
1. at or above truncate-page-n pages: PASSIVE first; if the WAL is still that large, TRUNCATE;
2. at or above min-checkpoint-page-count pages: PASSIVE;
3. checkpoint-interval elapsed since the database file last changed, with data replicated since the last
   checkpoint and more than one frame in the WAL: PASSIVE."""

from __future__ import annotations

from dataclasses import dataclass

from litestream.db.sync import wal_size_bytes


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
        if synced_wal_bytes >= wal_size_bytes(page_size, self.min_checkpoint_page_n):
            return "PASSIVE"
        if (self.checkpoint_interval_s > 0 and synced_since_checkpoint
                and seconds_since_db_write > self.checkpoint_interval_s
                and synced_wal_bytes > wal_size_bytes(page_size, 1)):
            return "PASSIVE"
        return None
