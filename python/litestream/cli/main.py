"""Entry point: dispatches subcommands with the reference's exit codes and error format."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from litestream.cli.common import CommandError
from litestream.cli.goflag import FlagError, HelpRequested, report_parse_error
from litestream.cli.usage import USAGE

COMMANDS: dict[str, str] = {
    "version": "litestream.cli.cmd_version",
    "ltx": "litestream.cli.cmd_ltx",
    "wal": "litestream.cli.cmd_ltx",
    "restore": "litestream.cli.cmd_restore",
    "replicate": "litestream.cli.cmd_replicate",
    "databases": "litestream.cli.cmd_databases",
    "status": "litestream.cli.cmd_status",
    "reset": "litestream.cli.cmd_reset",
    "info": "litestream.cli.cmd_info",
    "list": "litestream.cli.cmd_list",
    "start": "litestream.cli.cmd_start",
    "stop": "litestream.cli.cmd_stop",
    "sync": "litestream.cli.cmd_sync",
    "register": "litestream.cli.cmd_register",
    "unregister": "litestream.cli.cmd_unregister",
}


def _usage() -> None:
    sys.stdout.write(USAGE[""])
    sys.stdout.flush()


def _copy_credentials_env() -> None:
    # The reference copies LITESTREAM_* credentials to the AWS variables when those are unset.
    for src, dst in (("LITESTREAM_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                     ("LITESTREAM_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")):
        if os.environ.get(src) and not os.environ.get(dst):
            os.environ[dst] = os.environ[src]


def run(argv: list[str]) -> int:
    if not argv:
        _usage()
        return 1
    cmd, args = argv[0], argv[1:]
    if cmd in ("help", "-h", "-help", "--help"):
        _usage()
        return 0
    if cmd.startswith("-"):
        _usage()
        return 1
    module_name = COMMANDS.get(cmd)
    if module_name is None:
        if cmd in USAGE:
            sys.stderr.write(f"Error: litestream {cmd}: this command is not implemented by litestream-py yet\n")
        else:
            sys.stderr.write(f"Error: litestream {cmd}: unknown command\n")
        return 1
    import importlib

    module = importlib.import_module(module_name)
    command: Callable[[list[str], str], int | None] = module.run
    usage: Callable[[], None] = module.usage
    try:
        return command(args, cmd) or 0
    except (FlagError, HelpRequested) as e:
        return report_parse_error(e, usage, argv)
    except CommandError as e:
        from litestream.logs import redact_text  # the log handler's secret masking, for this line too

        sys.stdout.flush()
        sys.stderr.write(f"Error: {redact_text(e.message)}\n")
        if e.hint:
            sys.stderr.write(f"Try: {redact_text(e.hint)}\n")
        return 1


def main(argv: list[str] | None = None) -> int:
    # A closed stdout (e.g. `litestream ltx ... | head`) must not end in a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _copy_credentials_env()
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        return 130
