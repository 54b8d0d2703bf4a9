"""`litestream unregister [-timeout N] [-socket PATH] [-dry-run] [-json] DB_PATH`: remove a database from the
running daemon after a final sync and upload (POST /unregister); -dry-run only shows the request."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.usage import USAGE
from litestream.server.gojson import STRING, UINT64, Struct

UNREGISTER_RESPONSE = Struct("litestream.UnregisterDatabaseResponse", {"status": STRING, "path": STRING,
                                                                       "txid": UINT64})


def usage() -> None:
    sys.stdout.write(USAGE["unregister"])


def run(args: list[str], name: str = "unregister") -> int:
    fs = cc.flag_set("unregister", usage, 30)
    fs.bool("dry-run", False, "print what would be unregistered without changing the daemon")
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    path = cc.one_path(opts, "litestream unregister /path/to/db")
    cc.check_timeout(opts.timeout)
    if opts.dry_run:
        sys.stdout.write(
            "Dry run: unregister request preview\n"
            f"  database: {path}\n"
            f"  socket: {opts.socket}\n"
            "  replicas: daemon-managed replica for this database\n"
            "  final sync: daemon close will sync the database and replica before the command completes\n"
            f"  timeout: {opts.timeout}s\n"
            "No unregister request was sent.\n")
        return 0
    result, _ = cc.call(opts, "unregister", "POST", "unregister", {"path": path, "timeout": opts.timeout},
                        UNREGISTER_RESPONSE)
    out = {"status": result["status"], "db_path": result["path"], "final_txid": result["txid"],
           "socket": opts.socket}
    return cc.print_fields(out, opts.json)
