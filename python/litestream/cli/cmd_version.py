"""`litestream version [-verbose]`."""

from __future__ import annotations

import platform
import sys

from litestream import __version__
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE


def usage() -> None:
    sys.stdout.write(USAGE["version"])


def run(args: list[str], name: str = "version") -> int:
    fs = FlagSet("litestream-version", usage)
    fs.bool("verbose", False, "print detailed build metadata")
    opts = fs.parse(args)
    if not opts.verbose:
        print(__version__)
        return 0
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    from litestream import _ltxcore

    print(f"Version:     {__version__}")
    print(f"Go Version:  none (litestream-py on Python {platform.python_version()}, "
          f"crc64 {_ltxcore.crc64_impl()})")
    print("Git Commit:  ")
    print("Commit Time: ")
    print(f"OS/Arch:     {sys.platform}/{machine}")
    return 0
