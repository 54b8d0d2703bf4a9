"""`litestream replicate`: run replication for the databases of the config (or DB_PATH REPLICA_URL...)."""

from __future__ import annotations

import os
import sys

from litestream import __version__, logs
from litestream.backends.base import BackendError
from litestream.backends.url import is_url
from litestream.cli.common import CommandError, configure_logging_from, register_config_flags
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE
from litestream.config import (
    DEFAULT_SYNC_INTERVAL,
    Config,
    ConfigError,
    DBConfig,
    ReplicaConfig,
    apply_defaults,
    read_config_file,
)
from litestream.config import config_path as resolve_config_path
from litestream.db.sync import SyncError
from litestream.gofmt import Duration
from litestream.ltx import LTXError, format_txid


def usage() -> None:
    sys.stdout.write(USAGE["replicate"])


def _config_from_args(args: list[str]) -> Config:
    for a in args[1:]:
        if a.startswith("-"):
            raise CommandError(f'flag "{a}" must be positioned before DB_PATH and REPLICA_URL arguments')
    replicas = [ReplicaConfig(url=u, sync_interval=Duration(DEFAULT_SYNC_INTERVAL)) for u in args[1:]]
    return apply_defaults(Config(dbs=[DBConfig(path=args[0], replicas=replicas)]))


def _restore_missing(config: Config, force: bool) -> None:
    """restore-if-db-not-exists: restore a missing database from its (first) replica before replicating."""
    from litestream.backends import new_replica_client
    from litestream.restore import TxNotAvailable, calc_restore_plan, restore_files

    for dbc in config.dbs:
        if not (force or dbc.restore_if_db_not_exists) or not dbc.path:
            continue
        if os.path.exists(dbc.path):
            logs.info("database exists, skipping restore", path=dbc.path)
            continue
        logs.info("attempting restore before replication", path=dbc.path)
        client = new_replica_client(dbc.replica_configs()[0])
        try:
            plan = calc_restore_plan(client)
        except TxNotAvailable:
            logs.info("no backup found, starting fresh", path=dbc.path)
            continue
        restore_files(client, plan, dbc.path)
        logs.info("restore completed", path=dbc.path, txid=format_txid(plan[-1].max_txid))


def _raise_fd_limit() -> None:
    """Each database needs a handful of descriptors (SQLite's and ours); like Go programs, use the hard
    limit rather than the usual soft 1024."""
    import resource

    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
    except (ValueError, OSError):
        pass


def run(args: list[str], name: str = "replicate") -> int:
    fs = FlagSet("litestream-replicate", usage)
    register_config_flags(fs)
    fs.string("exec", "", "execute subcommand")
    fs.string("log-level", "", "log level")
    fs.bool("restore-if-db-not-exists", False, "")
    fs.bool("once", False, "")
    fs.bool("force-snapshot", False, "")
    fs.bool("enforce-retention", False, "")
    opts = fs.parse(args)

    if opts.args:
        if opts.config:
            raise CommandError("cannot specify a replica URL and the -config flag")
        if len(opts.args) == 1:
            raise CommandError(f"must specify at least one replica URL for {opts.args[0]}")
        if not is_url(opts.args[1]) and opts.args[1].startswith("-"):
            raise CommandError(f'flag "{opts.args[1]}" must be positioned before DB_PATH and REPLICA_URL arguments')
        try:
            config = _config_from_args(opts.args)
        except ConfigError as e:
            raise CommandError(str(e)) from None
        config_path = ""
        config.logging.level = "INFO"  # the reference's command-line form logs at INFO and says so
        logs.init_log("stdout", os.environ.get("LOG_LEVEL") or "INFO", "text", False)
    else:
        config_path = resolve_config_path(opts.config or None)
        try:
            config = read_config_file(opts.config or None, not opts.no_expand_env)
        except ConfigError as e:
            raise CommandError(str(e)) from None
        configure_logging_from(config)
    if opts["log-level"]:
        # As the reference: the flag beats LOG_LEVEL (set for the whole process) and the config's level,
        # and is the level the first log line reports.
        os.environ["LOG_LEVEL"] = opts["log-level"]
        config.logging.level = opts["log-level"]
        configure_logging_from(config)

    # -exec (always the string form) replaces the config's exec, whichever form that has.
    exec_cmd = opts.exec or config.exec
    if opts.once and isinstance(exec_cmd, str) and exec_cmd:
        raise CommandError("cannot specify -once flag with -exec")
    if opts["force-snapshot"] and not opts.once:
        raise CommandError("cannot specify -force-snapshot flag without -once")
    if opts["enforce-retention"] and not opts.once:
        raise CommandError("cannot specify -enforce-retention flag without -once")

    logs.info("litestream", "version", __version__, "level", config.logging.level)
    _raise_fd_limit()
    if not config.dbs:
        logs.error("no databases specified in configuration")

    from litestream.assemble import build_entries, maintenance_policy
    from litestream.store import Store

    try:
        _restore_missing(config, opts["restore-if-db-not-exists"])
        entries = build_entries(config)
    except (ConfigError, BackendError, LTXError, OSError) as e:
        raise CommandError(str(e)) from None
    except Exception as e:  # restore errors carry their own message
        from litestream.restore import RestoreError

        if isinstance(e, RestoreError):
            raise CommandError(str(e)) from None
        raise

    store = Store(entries, int(config.shutdown_sync_timeout) / 1e9, int(config.shutdown_sync_interval) / 1e9,
                  background=not opts.once, policy=maintenance_policy(config))
    if opts.once:
        if exec_cmd:
            # The list form's hooks mark the start of the long-running replicate (execs.py).
            logs.info("exec hooks are not run with -once", "count", len(exec_cmd))
        return _run_once(store, opts["force-snapshot"], opts["enforce-retention"])
    return _run_daemon(store, config, config_path, exec_cmd)


def _run_once(store, force_snapshot: bool, enforce_retention: bool) -> int:
    store.open()
    try:
        store.sync_all_once()
        for e in store.entries:
            if not e.ready:
                continue
            for r in e.replicas:
                if force_snapshot:
                    store.maintenance.snapshot(e, r, force=True)
                if enforce_retention:
                    store.maintenance.snapshot_retention(e, r)
        logs.info("one-shot replication complete")
    except (SyncError, BackendError, LTXError, OSError) as e:
        store.close()
        raise CommandError(str(e)) from None
    logs.info("replication complete, litestream shutting down")
    store.close()
    logs.info("litestream shut down")
    return 0


def _run_daemon(store, config: Config, config_path: str, exec_cmd) -> int:
    from litestream.daemon import Daemon, ServiceError
    from litestream.execs import ExecError

    daemon = Daemon(config, store, config_path)
    try:
        error = daemon.run(exec_cmd)
    except (ServiceError, ExecError) as e:
        raise CommandError(str(e)) from None
    if error:
        raise CommandError(error)
    return 0
