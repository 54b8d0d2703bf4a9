"""`litestream register -replica URL [-timeout N] [-socket PATH] [-json] DB_PATH`: add a database to the
running daemon, replicated to the URL (POST /register). Nothing is written to the config."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.common import CommandError, print_json
from litestream.cli.usage import USAGE
from litestream.server.gojson import STRING, Struct

REGISTER_RESPONSE = Struct("litestream.RegisterDatabaseResponse", {"status": STRING, "path": STRING})
HINT = "litestream register -replica s3://bucket/prefix /path/to/db"


def usage() -> None:
    sys.stdout.write(USAGE["register"])


def run(args: list[str], name: str = "register") -> int:
    fs = cc.flag_set("register", usage, 30)
    fs.string("replica", "", "replica URL (e.g., s3://bucket/prefix, file:///backup/path)")
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    path = cc.one_path(opts, HINT)
    if opts.replica == "":
        raise CommandError("-replica is required", HINT)
    cc.check_timeout(opts.timeout)
    result, _ = cc.call(opts, "register", "POST", "register", {"path": path, "replica_url": opts.replica},
                        REGISTER_RESPONSE)
    out = {"status": result["status"], "db_path": result["path"], "replica": opts.replica, "socket": opts.socket}
    if opts.json:
        print_json(out)
        return 0
    shown = "already registered" if out["status"] == "already_registered" else out["status"]
    sys.stdout.write(f"status: {shown}\ndb_path: {out['db_path']}\nreplica: {out['replica']}\n"
                     f"socket: {out['socket']}\n")
    return 0
