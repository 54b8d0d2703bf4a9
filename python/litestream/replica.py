"""Upload loop and position of one replica of one database.

The position is the highest L0 TXID on the replica, read from the replica at start and after any error.
Uploads copy the local L0 files position+1 .. database TXID in order, at most max-sync-ltx-files per
batch. When the files a replica needs are no longer available locally (after `litestream reset`, or a
replica added later), it is healed with a snapshot of the current state (L9) followed by the newest L0,
so that it restores completely instead of failing on a gap."""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass

from litestream import logs
from litestream.backends import opstats
from litestream.backends.base import BackendError, ReplicaClient, Source
from litestream.db.database import Database
from litestream.ltx import HEADER_SIZE, Header, format_txid

MAX_BACKOFF_S = 300.0


@dataclass
class ReplicaSettings:
    sync_interval_s: float = 1.0
    max_sync_ltx_files: int = 256
    auto_recover: bool = False
    retention_ns: int | None = None  # snapshot retention of this replica (None: the global snapshot.retention)


class Replica:
    def __init__(self, db: Database, client: ReplicaClient, settings: ReplicaSettings | None = None,
                 name: str = "") -> None:
        self.db = db
        self.client = client
        self.settings = settings or ReplicaSettings()
        self.name = name or client.type
        self.pos: int | None = None  # highest L0 TXID on the replica; None: read it from the replica
        self.lock = threading.Lock()
        self.log = logs.get_logger("replica").with_attrs(db=os.path.basename(db.path), replica=client.type)
        self.errors = 0
        self.last_success_ns = 0
        self.last_error: str | None = None
        self.reported_auth_error: str | None = None  # a credential error is logged once, not every retry
        # For the metrics (server/metrics.py), read at scrape time.
        self.known_pos = 0  # the last position read or reached; kept when pos is reset after an error
        self.failures = 0  # failed sync() calls in all (errors counts the consecutive ones)
        self.l0_counts = None  # the last L0 retention scan's L0Counts (replication/retention.py)
        opstats.instrument(client)  # counts this client's backend operations

    # ------------------------------------------------------------------------------------- position

    def remote_l0_max(self) -> int:
        txid = 0
        for info in self.client.ltx_files(0, 0, False):
            txid = max(txid, info.max_txid)
        return txid

    def position(self) -> int:
        if self.pos is None:
            self.client.init()
            self.pos = self.known_pos = self.remote_l0_max()
        return self.pos

    def backoff_s(self) -> float:
        if not self.errors:
            return 0.0
        # Jitter (0.8x..1.2x), so many databases failing against one server do not retry in lockstep.
        base = min(MAX_BACKOFF_S, self.settings.sync_interval_s * (2 ** (self.errors - 1)))
        return min(MAX_BACKOFF_S, base * random.uniform(0.8, 1.2))

    # --------------------------------------------------------------------------------------- upload

    def sync(self) -> int:
        """Upload the L0 files the replica lacks (one batch). Returns how many were uploaded; raises on
        error after resetting the position so it is re-read next time."""
        with self.lock:
            try:
                n = self._sync()
            except (BackendError, OSError) as e:
                if self.pos is not None:
                    self.known_pos = self.pos
                self.pos = None
                self.errors += 1
                self.failures += 1
                self.last_error = str(e)
                raise
            if self.pos is not None:
                self.known_pos = self.pos
            self.errors = 0
            self.last_error = None
            if self.db.txid > 0:
                # A pass before the database's first sync had nothing to hold: as the reference's "wait
                # for data", not a success the heartbeat may count (it pinged before any upload).
                self.last_success_ns = time.time_ns()
            return n

    def _sync(self) -> int:
        pos = self.position()
        target = self.db.txid
        self.log.debug("replica sync", **{"txid.replica": format_txid(pos), "txid.db": format_txid(target)})
        if pos >= target:
            return 0
        batch = self.settings.max_sync_ltx_files or (target - pos)
        n = 0
        txid = pos + 1
        while txid <= target and n < batch:
            path = self.db.meta.l0_path(txid)
            if not os.path.exists(path):
                self._heal(txid)
                return n + 1
            self._upload_l0(txid, path)
            self.pos = txid
            txid += 1
            n += 1
        return n

    def _upload_l0(self, txid: int, path: str) -> None:
        with open(path, "rb") as f:
            ts = Header.decode(f.read(HEADER_SIZE)).timestamp
        info = self.client.write_ltx_file(0, txid, txid, Source.file(path), ts)
        self.log.debug("ltx file uploaded", level=0, minTXID=format_txid(txid), maxTXID=format_txid(txid),
                       size=info.size)

    def _heal(self, missing: int) -> None:
        """The replica needs L0 files we no longer have: give it a snapshot of the current state, then the
        newest L0, so its history has no gap a restore could fall into."""
        self.log.warn("local ltx file missing for replica; uploading a snapshot", missing=format_txid(missing))
        from litestream.replication.snapshot import upload_snapshot

        header = upload_snapshot(self.db, self.client)
        self.log.info("snapshot uploaded", txid=format_txid(header.max_txid))
        latest = self.db.meta.l0_path(header.max_txid)
        if os.path.exists(latest):
            self._upload_l0(header.max_txid, latest)
        self.pos = header.max_txid
