"""`litestream sync [-wait] [-timeout N] [-socket PATH] [-json] DB_PATH`: sync a database now in the running
daemon (POST /sync); with -wait, until its replica holds the new TXID. The server's status is not shown."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.usage import USAGE
from litestream.server.gojson import STRING, UINT64, Struct

SYNC_RESPONSE = Struct("litestream.SyncResponse", {"status": STRING, "path": STRING, "txid": UINT64,
                                                   "replicated_txid": UINT64})


def usage() -> None:
    sys.stdout.write(USAGE["sync"])


def run(args: list[str], name: str = "sync") -> int:
    fs = cc.flag_set("sync", usage, 30)
    fs.bool("wait", False, "block until sync completes")
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    path = cc.one_path(opts, "litestream sync /path/to/db")
    cc.check_timeout(opts.timeout)
    payload = {"path": path, **({"wait": True} if opts.wait else {}), "timeout": opts.timeout}
    result, duration_ms = cc.call(opts, "sync", "POST", "sync", payload, SYNC_RESPONSE)
    out = {"db_path": result["path"], "txid": result["txid"]}
    if opts.wait:
        out["replica_txid"] = result["replicated_txid"]
    out["duration_ms"] = duration_ms
    return cc.print_fields(out, opts.json)
