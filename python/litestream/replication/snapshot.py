"""Snapshots (L9, [1, position]) of a database, written straight into a replica."""

from __future__ import annotations

from litestream.backends.base import ReplicaClient
from litestream.db.database import Database
from litestream.ltx import SNAPSHOT_LEVEL, FileInfo
from litestream.replication.writes import write_filled


def upload_snapshot(db: Database, client: ReplicaClient, level: int = SNAPSHOT_LEVEL) -> FileInfo:
    """Encode the replicated state as a snapshot file into the replica: no copy of the database is staged
    on local disk where the backend takes the file in place. Raises SyncError when there is no replicated
    position yet."""
    return write_filled(client, level, db.write_snapshot, spool_dir=db.meta.path)
