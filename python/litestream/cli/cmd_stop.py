"""`litestream stop [-timeout N] [-socket PATH] [-json] DB_PATH`: stop replicating a database in the running
daemon after a final sync and upload; it stays registered (POST /stop)."""

from __future__ import annotations

import sys

from litestream.cli import control_client as cc
from litestream.cli.cmd_start import run_start_stop
from litestream.cli.usage import USAGE


def usage() -> None:
    sys.stdout.write(USAGE["stop"])


def run(args: list[str], name: str = "stop") -> int:
    return run_start_stop(args, "stop", usage, cc.STOP_RESPONSE, "stopped")
