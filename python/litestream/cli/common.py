"""Pieces shared by the subcommands: errors with hints, config flags, output helpers."""

from __future__ import annotations

import sys
from typing import Any

from litestream.cli.goflag import FlagSet
from litestream.gofmt import go_json_dumps


class CommandError(Exception):
    """Ends a command with `Error: <message>` (and `Try: <hint>`), exit status 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def register_config_flags(fs: FlagSet) -> None:
    fs.string("config", "", "configuration path")
    fs.bool("no-expand-env", False, "do not expand env vars in config")


def print_json(obj: Any) -> None:
    sys.stdout.write(go_json_dumps(obj))
    sys.stdout.flush()


def configure_logging_from(config) -> None:
    """Re-initialise logging from a config's `logging:` section; LOG_LEVEL overrides its level."""
    import os

    from litestream import logs

    lc = config.logging
    level = os.environ.get("LOG_LEVEL") or lc.level
    try:
        logs.configure(level, lc.type or "text", lc.stderr, lc.source)
    except ValueError as e:
        raise CommandError(str(e)) from None


def load_config(path: str, no_expand_env: bool):
    """Read the config for a command (missing file, bad YAML or bad values end the command)."""
    from litestream.config import ConfigError, read_config_file

    try:
        config = read_config_file(path or None, not no_expand_env)
    except ConfigError as e:
        raise CommandError(str(e)) from None
    configure_logging_from(config)
    return config


def replica_from_url(url: str):
    from litestream.backends import new_replica_client
    from litestream.config import DEFAULT_SYNC_INTERVAL, ConfigError, ReplicaConfig
    from litestream.gofmt import Duration

    try:
        return new_replica_client(ReplicaConfig(url=url, sync_interval=Duration(DEFAULT_SYNC_INTERVAL)))
    except ConfigError as e:
        raise CommandError(str(e)) from None


def replica_from_config(config, db_path_arg: str):
    """(expanded db path, client) of the first replica configured for a database path."""
    from litestream.backends import new_replica_client
    from litestream.config import ConfigError, expand_path

    try:
        path = expand_path(db_path_arg)
    except ConfigError as e:
        raise CommandError(str(e)) from None
    dbc = config.db_config(path)
    if dbc is None:
        raise CommandError(f"database not found in config: {path}")
    try:
        if dbc.meta_dir is not None:
            raise ConfigError("'meta-dir' can only be used with a directory")
        return path, new_replica_client(dbc.replica_configs()[0])
    except ConfigError as e:
        raise CommandError(str(e)) from None
