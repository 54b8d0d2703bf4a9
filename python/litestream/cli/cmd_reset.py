"""`litestream reset [-dry-run] DB_PATH`: drop local LTX state so the next sync starts with a snapshot."""

from __future__ import annotations

import os
import sys

from litestream import logs
from litestream.assemble import meta_path_for
from litestream.cli.common import CommandError, register_config_flags
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE
from litestream.config import DEFAULT_CONFIG_PATH, ConfigError, read_config_file
from litestream.db.meta import MetaDir, default_meta_path


def usage() -> None:
    sys.stdout.write(USAGE["reset"])


def _find_config_entry(config_arg: str, no_expand_env: bool, db_path: str):
    """The config entry for db_path. Unlike the reference, $LITESTREAM_CONFIG and /etc/litestream.yml are
    consulted too (quietly, when present) so a custom meta-path is not missed."""
    path = config_arg or os.environ.get("LITESTREAM_CONFIG") or ""
    if not path and os.path.exists(DEFAULT_CONFIG_PATH):
        path = DEFAULT_CONFIG_PATH
    if not path:
        return None
    try:
        config = read_config_file(path, not no_expand_env)
    except ConfigError as e:
        if config_arg:
            raise CommandError(f"cannot read config: {e}") from None
        return None
    for dbc in config.dbs:
        if dbc.path == db_path:
            return dbc
    return None


def run(args: list[str], name: str = "reset") -> int:
    fs = FlagSet("litestream-reset", usage)
    register_config_flags(fs)
    fs.bool("dry-run", False, "print local state that would be removed without deleting")
    opts = fs.parse(args)
    if not opts.args:
        raise CommandError("database path required", "litestream reset /path/to/db")
    if len(opts.args) > 1:
        raise CommandError("too many arguments")
    db_path = os.path.abspath(opts.args[0])
    dbc = _find_config_entry(opts.config, opts.no_expand_env, db_path)
    if not os.path.exists(db_path):
        raise CommandError(f"database does not exist: {db_path}")
    meta = MetaDir(meta_path_for(dbc) if dbc is not None else default_meta_path(db_path))
    out = sys.stdout
    if not os.path.exists(meta.path):
        out.write(f"No local state to reset for {db_path}\n")
        out.write(f"Meta directory does not exist: {meta.path}\n")
        return 0
    if opts["dry-run"]:
        files = []
        for root, _, names in os.walk(meta.ltx_root):
            files += [os.path.join(root, n) for n in names]
        out.write(f"Dry run: local Litestream state would be reset for: {db_path}\n")
        out.write(f"Would remove: {meta.ltx_root}\n")
        if not files:
            out.write("No local LTX files would be removed.\n")
            return 0
        out.write("Files that would be removed:\n")
        for f in sorted(files):
            out.write(f"  {f}\n")
        out.write("No files were removed.\n")
        return 0
    out.write(f"Resetting local Litestream state for: {db_path}\n")
    out.write(f"Removing: {meta.ltx_root}\n")
    out.flush()
    name = os.path.basename(db_path)
    logs.info("resetting local litestream state", "db", name, "meta_path", meta.path, "ltx_dir", meta.ltx_root)
    meta.reset()
    logs.info("local state reset complete, next sync will create fresh snapshot", "db", name)
    out.write("Reset complete. Next replication sync will create a fresh snapshot.\n")
    return 0
