"""Build databases and replicas (the objects `replicate` runs) from the config."""

from __future__ import annotations

import os
from collections import OrderedDict

from litestream import logs
from litestream.backends import new_replica_client
from litestream.config import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_L0_RETENTION,
    DEFAULT_L0_RETENTION_CHECK_INTERVAL,
    DEFAULT_MAX_SYNC_LTX_FILES,
    DEFAULT_MAX_SYNC_WAL_BYTES,
    DEFAULT_MIN_CHECKPOINT_PAGE_N,
    DEFAULT_MONITOR_INTERVAL,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_SNAPSHOT_RETENTION,
    DEFAULT_SYNC_INTERVAL,
    DEFAULT_TRUNCATE_PAGE_N,
    Config,
    ConfigError,
    DBConfig,
    ReplicaConfig,
    expand_path,
)
from litestream.db.database import Database, DBSettings
from litestream.gofmt import format_duration
from litestream.replica import Replica, ReplicaSettings
from litestream.replication.jobs import Level, Policy
from litestream.store import DBEntry

NS = 1e9


def db_settings(dbc: DBConfig) -> DBSettings:
    def dur(v, default):
        return (default if v is None else int(v)) / NS

    if dbc.min_checkpoint_page_count is not None and dbc.min_checkpoint_page_count <= 0:
        raise ConfigError("minimum checkpoint page count required")
    return DBSettings(
        monitor_interval_s=dur(dbc.monitor_interval, DEFAULT_MONITOR_INTERVAL),
        checkpoint_interval_s=dur(dbc.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL),
        busy_timeout_ms=int(dur(dbc.busy_timeout, DEFAULT_BUSY_TIMEOUT) * 1000),
        min_checkpoint_page_n=dbc.min_checkpoint_page_count or DEFAULT_MIN_CHECKPOINT_PAGE_N,
        truncate_page_n=dbc.truncate_page_n or DEFAULT_TRUNCATE_PAGE_N,
        max_sync_wal_bytes=DEFAULT_MAX_SYNC_WAL_BYTES if dbc.max_sync_wal_bytes is None else dbc.max_sync_wal_bytes,
        meta_path=expand_path(dbc.meta_path) if dbc.meta_path else None,
    )


def replica_settings(rc: ReplicaConfig) -> ReplicaSettings:
    if rc.retention is not None and rc.retention <= 0:
        raise ConfigError(f"replica {rc.url or rc.path or rc.type}: retention must be greater than 0 "
                          f"(got {format_duration(int(rc.retention))})")
    return ReplicaSettings(
        sync_interval_s=(DEFAULT_SYNC_INTERVAL if rc.sync_interval is None else int(rc.sync_interval)) / NS,
        max_sync_ltx_files=DEFAULT_MAX_SYNC_LTX_FILES if rc.max_sync_ltx_files is None else rc.max_sync_ltx_files,
        auto_recover=bool(rc.auto_recover),
        retention_ns=None if rc.retention is None else int(rc.retention),
    )


def maintenance_policy(config: Config) -> Policy:
    """The global compaction, snapshot and retention settings (defaults already applied by the loader)."""
    snap = config.snapshot
    return Policy(
        levels=[Level(i, int(lv.interval), None if lv.retention is None else int(lv.retention))
                for i, lv in enumerate(config.levels or [], 1)],
        snapshot_interval_ns=int(snap.interval) if snap and snap.interval is not None else DEFAULT_SNAPSHOT_INTERVAL,
        snapshot_retention_ns=int(snap.retention) if snap and snap.retention is not None
        else DEFAULT_SNAPSHOT_RETENTION,
        l0_retention_ns=DEFAULT_L0_RETENTION if config.l0_retention is None else int(config.l0_retention),
        l0_retention_check_interval_ns=DEFAULT_L0_RETENTION_CHECK_INTERVAL
        if config.l0_retention_check_interval is None else int(config.l0_retention_check_interval),
        retention_enabled=config.retention is None or config.retention.enabled is not False,
    )


def build_entries(config: Config) -> list[DBEntry]:
    """One Database per distinct path; every `replica`/`replicas` entry of every `dbs` item with that path
    becomes one of its replicas, each with its own position (the reference allows one replica per path).
    A `dir:` item stands for the databases its scan finds (litestream.dirwatch), each with its own config."""
    from litestream import dirwatch

    grouped: OrderedDict[str, list[DBConfig]] = OrderedDict()
    sources: dict[str, str] = {}
    for dbc in config.dbs:
        if dbc.dir:
            found = dirwatch.expand_dir(dbc)
            logs.info("found databases in directory", "dir", dbc.dir, "count", len(found), "watch", dbc.watch)
            for d in found:
                grouped.setdefault(d.path, []).append(d)
                sources.setdefault(d.path, "dir")
            continue
        if dbc.meta_dir is not None:
            raise ConfigError("'meta-dir' can only be used with a directory")
        grouped.setdefault(dbc.path, []).append(dbc)
        sources[dbc.path] = "config"  # also listed by path: the config entry, not the directory, owns it
    entries = [new_entry(path, dbcs, sources[path]) for path, dbcs in grouped.items()]
    # Two databases sharing a meta directory would overwrite each other's L0 files. The reference checks
    # this within one `dir:` item; checked across the whole config here (e.g. two directories with the
    # same meta-dir and the same file names).
    metas: dict[str, str] = {}
    for e in entries:
        other = metas.setdefault(e.db.meta.path, e.path)
        if other != e.path:
            raise dirwatch.collision_error(other, e.path, e.db.meta.path)
    return entries


def new_entry(path: str, dbcs: list[DBConfig], source: str = "config") -> DBEntry:
    """The Database of one path and its replicas (from every config item listing that path)."""
    try:
        db = Database(path, db_settings(dbcs[0]))
        replicas = []
        seen = set()
        for dbc in dbcs:
            for rc in dbc.replica_configs():
                client = new_replica_client(rc)
                key = (client.type, getattr(client, "path", None) or id(client))
                if key in seen:
                    raise ConfigError(f"dbs[{path}]: the same replica is listed twice: {key[1]}")
                seen.add(key)
                replicas.append(Replica(db, client, replica_settings(rc)))
    except ConfigError as e:
        if source != "dir":
            raise
        raise ConfigError(f"failed to create DB for {path}: {e}") from None
    return DBEntry(db, replicas, source=source)


def meta_path_for(dbc: DBConfig) -> str:
    from litestream.db.meta import default_meta_path

    return expand_path(dbc.meta_path) if dbc.meta_path else default_meta_path(dbc.path or os.getcwd())
