"""`litestream start [-timeout N] [-socket PATH] [-json] DB_PATH`: start replication of a stopped database
in the running daemon (POST /start), and `stop`'s output (the two print the same confirmation)."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.usage import USAGE


def usage() -> None:
    sys.stdout.write(USAGE["start"])


def run_start_stop(args: list[str], command: str, usage_fn, response, state: str) -> int:
    fs = cc.flag_set(command, usage_fn, 30)
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    path = cc.one_path(opts, f"litestream {command} /path/to/db")
    # The reference checks no -timeout here: 0 means no limit, a negative one fails the dial at once.
    payload = {"path": path, **({"timeout": opts.timeout} if opts.timeout else {})}
    result, _ = cc.call(opts, command, "POST", command, payload, response)
    out = {"status": result["status"], "db_path": result["path"], "state": state, "txid": result["txid"],
           "socket": opts.socket}
    return cc.print_fields(out, opts.json)


def run(args: list[str], name: str = "start") -> int:
    return run_start_stop(args, "start", usage, cc.START_RESPONSE, "running")
