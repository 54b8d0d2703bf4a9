"""`litestream info [-json] [-socket PATH] [-timeout N]`: version, pid and uptime of the running daemon
(GET /info)."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.common import print_json
from litestream.cli.usage import USAGE
from litestream.gofmt import format_duration
from litestream.server.gojson import INT, INT64, STRING, TIME, Struct, format_time

INFO_RESPONSE = Struct("litestream.InfoResponse", {"version": STRING, "pid": INT, "uptime_seconds": INT64,
                                                   "started_at": TIME, "database_count": INT})


def usage() -> None:
    sys.stdout.write(USAGE["info"])


def run(args: list[str], name: str = "info") -> int:
    fs = cc.flag_set("info", usage, 10)
    fs.bool("json", False, "output raw JSON")
    opts = fs.parse(args)
    cc.no_args(opts)
    cc.check_timeout(opts.timeout)
    r, _ = cc.call(opts, "info", "GET", "info", None, INFO_RESPONSE)
    if opts.json:
        print_json({"version": r["version"], "pid": r["pid"], "uptime_seconds": r["uptime_seconds"],
                    "started_at": format_time(r["started_at"]), "database_count": r["database_count"]})
        return 0
    # Go's time.Duration(seconds) * time.Second, which wraps around past int64 nanoseconds.
    uptime_ns = (r["uptime_seconds"] * 10**9 + (1 << 63)) % (1 << 64) - (1 << 63)
    sys.stdout.write(f"Litestream {r['version']}\n"
                     f"  PID:        {r['pid']}\n"
                     f"  Uptime:     {format_duration(uptime_ns)}\n"
                     f"  Started at: {format_time(r['started_at'], nano=False)}\n"
                     f"  Databases:  {r['database_count']}\n")
    return 0
