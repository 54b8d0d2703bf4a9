"""`litestream databases [-json]`: the databases of the config and their replica types."""

from __future__ import annotations

import os
import sys

from litestream.cli.common import CommandError, load_config, print_json, register_config_flags
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE
from litestream.config import ConfigError
from litestream.gofmt import tabwriter


def usage() -> None:
    sys.stdout.write(USAGE["databases"])


def run(args: list[str], name: str = "databases") -> int:
    from litestream.backends import new_replica_client

    fs = FlagSet("litestream-databases", usage)
    register_config_flags(fs)
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    if opts.args:
        raise CommandError("too many arguments")
    config = load_config(opts.config, opts.no_expand_env)
    rows = []
    try:
        for dbc in config.dbs:
            if dbc.meta_dir is not None:
                raise ConfigError("'meta-dir' can only be used with a directory")
            # A path listed with several replicas (or a replicas: array) shows one row per replica. A `dir:`
            # item has no path and shows as the working directory, as in the reference.
            for rc in dbc.replica_configs():
                rows.append({"path": dbc.path or os.getcwd(), "replica": new_replica_client(rc).type})
    except ConfigError as e:
        raise CommandError(str(e)) from None
    if opts.json:
        print_json(rows)
        return 0
    sys.stdout.write(tabwriter([["path", "replica"]] + [[r["path"], r["replica"]] for r in rows]))
    return 0
