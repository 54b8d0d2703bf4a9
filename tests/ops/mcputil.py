"""A test-only `litestream` subcommand for cli/capture.py (registered in cli.main.COMMANDS by the test):
prints, logs, re-initialises logging, exits or raises, as its first argument says."""

from __future__ import annotations

import sys
import threading

from litestream import logs


def usage() -> None:
    sys.stdout.write("usage: litestream mcptest ACTION\n")


def run(args: list[str], name: str = "mcptest") -> int:
    action = args[0]
    if action == "print":
        # Like restore: its own logging setup first, then output on both streams and a log line.
        logs.init_log("stderr", "ERROR", "json", False)
        tag = args[1]
        for i in range(200):
            sys.stdout.write(f"{tag} out {i}\n")
            if i % 50 == 0:
                sys.stderr.write(f"{tag} err {i}\n")
                logs.info("command log", tag=tag, thread=threading.current_thread().name)
        return 0
    if action == "exit":
        sys.exit(int(args[1]))
    if action == "exit-message":
        sys.exit("fatal: gave up")
    if action == "raise":
        raise RuntimeError("kaboom")
    return 2
