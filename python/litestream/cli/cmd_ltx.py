"""`litestream ltx [-level N|all] [-json] (DB_PATH | REPLICA_URL)`, and its deprecated alias `wal`."""

from __future__ import annotations

import sys

from litestream.backends.base import BackendError
from litestream.backends.url import is_url
from litestream.cli.common import (
    CommandError,
    load_config,
    print_json,
    register_config_flags,
    replica_from_config,
    replica_from_url,
)
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE
from litestream.gofmt import format_rfc3339, tabwriter
from litestream.ltx import MAX_LEVEL, format_txid

LEVEL_ALL = -1


def usage() -> None:
    sys.stdout.write(USAGE["ltx"])


def _parse_level(s: str) -> int:
    if s == "all":
        return LEVEL_ALL
    try:
        n = int(s, 10)
    except ValueError:
        raise ValueError('invalid level: must be 0-9 or "all"') from None
    if not 0 <= n <= MAX_LEVEL:
        raise ValueError("level must be between 0 and 9")
    return n


def run(args: list[str], name: str = "ltx") -> int:
    if name == "wal":
        sys.stderr.write("Warning: 'wal' command is deprecated, please use 'ltx' instead\n")
        sys.stderr.flush()
    fs = FlagSet("litestream-ltx", usage)
    register_config_flags(fs)
    fs.bool("json", False, "output raw JSON")
    fs.var("level", _parse_level, 0, 'compaction level (0-9 or "all")', formatter=lambda v: str(v))
    opts = fs.parse(args)
    if not opts.args or opts.args[0] == "":
        raise CommandError("database path or replica URL required", "litestream ltx /path/to/db")
    if len(opts.args) > 1:
        raise CommandError("too many arguments")
    target = opts.args[0]
    if is_url(target):
        if opts.config:
            raise CommandError("cannot specify a replica URL and the -config flag")
        client = replica_from_url(target)
    else:
        config = load_config(opts.config, opts.no_expand_env)
        _, client = replica_from_config(config, target)

    levels = range(MAX_LEVEL + 1) if opts.level == LEVEL_ALL else [opts.level]
    files = []
    try:
        for level in levels:
            for info in client.ltx_files(level, 0, False):
                files.append({"level": level, "min_txid": format_txid(info.min_txid),
                              "max_txid": format_txid(info.max_txid), "size": info.size,
                              "timestamp": format_rfc3339(info.created_at_ns)})
    except BackendError as e:
        raise CommandError(str(e)) from None
    if opts.json:
        print_json(files)
        return 0
    rows = [["level", "min_txid", "max_txid", "size", "created"]]
    rows += [[str(f["level"]), f["min_txid"], f["max_txid"], str(f["size"]), f["timestamp"]] for f in files]
    sys.stdout.write(tabwriter(rows))
    return 0
