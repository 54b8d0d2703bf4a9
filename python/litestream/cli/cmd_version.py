"""`litestream version [-verbose]`.

Plain output is the reference's version string. -verbose keeps the reference's lines where they mean the
same thing (`Version:`, `OS/Arch:`, labels padded to 13 columns) and replaces the Go build metadata with
what identifies this implementation: the package, the Python and the C core (which CRC-64 code the CPU
selected at run time, and the liblz4 loaded). Only the standard library and the core are imported: a
version check must stay instant and must not load any cloud SDK."""

from __future__ import annotations

import platform
import sys

from litestream import __version__
from litestream.cli.goflag import FlagSet
from litestream.cli.usage import USAGE

# GOARCH names for platform.machine() values.
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386",
           "i686": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}
_CRC_IMPL = {"pclmul": "PCLMUL", "slice8": "slice-by-8"}


def usage() -> None:
    sys.stdout.write(USAGE["version"])


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("litestream-py")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        return __version__


def core_info() -> str:
    from litestream import _ltxcore

    crc = _ltxcore.crc64_impl()
    return f"ltxcore (crc64 {_CRC_IMPL.get(crc, crc)}, liblz4 {_ltxcore.lz4_version()})"


def verbose_lines() -> list[str]:
    machine = platform.machine()
    return [
        f"Version:     {__version__}",
        f"Implementation: litestream-py {package_version()}",
        f"Python:      {platform.python_version()}",
        f"Core:        {core_info()}",
        f"OS/Arch:     {sys.platform}/{_GOARCH.get(machine.lower(), machine.lower())}",
    ]


def run(args: list[str], name: str = "version") -> int:
    fs = FlagSet("litestream-version", usage)
    fs.bool("verbose", False, "print detailed build metadata")
    opts = fs.parse(args)
    sys.stdout.write("\n".join(verbose_lines() if opts.verbose else [__version__]) + "\n")
    return 0
