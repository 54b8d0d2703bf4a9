"""`litestream list [-json] [-socket PATH] [-timeout N]`: the databases of the running daemon (GET /list)."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.common import print_json
from litestream.cli.usage import USAGE
from litestream.server.gojson import STRING, TIME_PTR, Slice, Struct, format_time

LIST_RESPONSE = Struct("litestream.ListResponse", {"databases": Slice(Struct(
    "litestream.DatabaseSummary", {"path": STRING, "status": STRING, "last_sync_at": TIME_PTR}))})


def usage() -> None:
    sys.stdout.write(USAGE["list"])


def run(args: list[str], name: str = "list") -> int:
    fs = cc.flag_set("list", usage, 10)
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    cc.no_args(opts)
    cc.check_timeout(opts.timeout)
    result, _ = cc.call(opts, "list", "GET", "list", None, LIST_RESPONSE)
    dbs = result["databases"]
    if opts.json:
        # The reply as the reference re-encodes it: its fields only, a null list kept as null.
        out = None if dbs is None else [
            {"path": d["path"], "status": d["status"],
             **({"last_sync_at": format_time(d["last_sync_at"])} if d["last_sync_at"] is not None else {})}
            for d in dbs]
        print_json({"databases": out})
        return 0
    if not dbs:
        sys.stdout.write("No databases configured\n")
        return 0
    for d in dbs:
        last = "never" if d["last_sync_at"] is None else format_time(d["last_sync_at"], nano=False)
        sys.stdout.write(f"{d['path']} [{d['status']}] (last sync: {last})\n")
    return 0
