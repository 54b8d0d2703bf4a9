"""`litestream status [-json] [DB_PATH]`: local replication state, read from local files only."""

from __future__ import annotations

import os
import sys

from litestream.assemble import meta_path_for
from litestream.cli.common import CommandError, load_config, print_json, register_config_flags
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE
from litestream.config import ConfigError
from litestream.db.meta import MetaDir
from litestream.gofmt import humanize_bytes, tabwriter
from litestream.ltx import format_txid, parse_filename


def usage() -> None:
    sys.stdout.write(USAGE["status"])


def db_status(path: str, meta_path: str) -> dict:
    st = {"database": path, "status": "unknown", "local_txid": "-", "wal_size": "-"}
    if not os.path.exists(path):
        st["status"] = "no database"
        return st
    try:
        st["wal_size"] = humanize_bytes(os.stat(path + "-wal").st_size)
    except FileNotFoundError:
        st["wal_size"] = "0 B"
    except OSError:
        pass
    meta = MetaDir(meta_path)
    try:
        names = os.listdir(meta.level_dir(0))
    except FileNotFoundError:
        names = []
    except OSError:
        st["status"] = "error"
        return st
    # Like the reference: the highest MaxTXID of any LTX file name in the local L0 directory.
    txid = max((t[1] for t in map(parse_filename, names) if t is not None), default=0)
    if txid:
        st["status"], st["local_txid"] = "ok", format_txid(txid)
    else:
        st["status"] = "not initialized"
    return st


def run(args: list[str], name: str = "status") -> int:
    fs = FlagSet("litestream-status", usage)
    register_config_flags(fs)
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    config = load_config(opts.config, opts.no_expand_env)
    want = opts.args[0] if opts.args else ""
    rows = []
    for dbc in config.dbs:
        try:
            if dbc.meta_dir is not None:
                raise ConfigError("'meta-dir' can only be used with a directory")
            dbc.replica_configs()
        except ConfigError as e:
            raise CommandError(str(e)) from None
        path = dbc.path or os.getcwd()  # a `dir:` item shows as the working directory (the reference's quirk)
        if want and path != want:
            continue
        rows.append(db_status(path, meta_path_for(dbc)))
    if opts.json:
        print_json(rows)
        return 0
    table = [["database", "status", "local txid", "wal size"]]
    table += [[r["database"], r["status"], r["local_txid"], r["wal_size"]] for r in rows]
    sys.stdout.write(tabwriter(table))
    return 0
