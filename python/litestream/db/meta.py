"""The local meta directory of one database: `<dir>/.<name>-litestream/ltx/0/<txid>-<txid>.ltx`.

Only L0 files live here. They are written to `<name>.tmp`, fsynced, renamed and the directory fsynced;
stale temp files are removed when the database is opened."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from litestream import _ltxcore as core
from litestream.db.checksums import DBChecksums, decode_reserved
from litestream.fsutil import fsync_dir
from litestream.ltx import HEADER_SIZE, Header, LTXError, format_filename, parse_filename

META_SUFFIX = "-litestream"


def default_meta_path(db_path: str) -> str:
    d, base = os.path.split(db_path)
    return os.path.join(d, f".{base}{META_SUFFIX}")


@dataclass(frozen=True)
class L0Info:
    """What the newest local L0 file says about where replication stands."""

    txid: int
    header: Header
    sums: DBChecksums | None
    path: str

    @property
    def wal_end(self) -> int:
        return self.header.wal_offset + self.header.wal_size

    @property
    def salts(self) -> tuple[int, int]:
        return self.header.wal_salt1, self.header.wal_salt2


class MetaDir:
    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def ltx_root(self) -> str:
        return os.path.join(self.path, "ltx")

    def level_dir(self, level: int = 0) -> str:
        return os.path.join(self.ltx_root, str(level))

    def l0_path(self, txid: int) -> str:
        return os.path.join(self.level_dir(0), format_filename(txid, txid))

    def ensure(self, mode_from: str | None = None) -> None:
        os.makedirs(self.level_dir(0), exist_ok=True)

    def clean_temp(self) -> None:
        """Remove temp files a crash left behind (every *.tmp below the meta directory)."""
        for root, _, files in os.walk(self.path):
            for name in files:
                if name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(root, name))

    def l0_txids(self) -> list[int]:
        try:
            names = os.listdir(self.level_dir(0))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            t = parse_filename(name)
            if t is not None and t[0] == t[1]:
                out.append(t[0])
        out.sort()
        return out

    def max_l0_txid(self) -> int:
        txids = self.l0_txids()
        return txids[-1] if txids else 0

    def read_l0(self, txid: int, verify: bool = True) -> L0Info:
        """Header and database checksums of a local L0 file; verify decodes it completely first."""
        path = self.l0_path(txid)
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
            header = Header.decode(raw)
            if verify:
                f.seek(0)
                core.Decoder(f.fileno()).verify()
        return L0Info(txid, header, decode_reserved(raw), path)

    def last_l0(self) -> L0Info | None:
        """The newest valid local L0 file. A newest file that fails to decode (torn by a crash despite the
        rename, or damaged) raises, so the caller can fall back to a snapshot."""
        txid = self.max_l0_txid()
        if not txid:
            return None
        return self.read_l0(txid)

    def write_l0(self, txid: int, write: Callable[[int], None], mode: int | None = None,
                 mtime_ns: int | None = None) -> int:
        """Create the L0 file for txid atomically: write(fd) fills the temp file. Returns its size."""
        path = self.l0_path(txid)
        tmp = path + ".tmp"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644 if mode is None else mode)
        try:
            write(fd)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
        os.close(fd)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(path))
        return size

    def remove_l0_above(self, txid: int) -> None:
        for t in self.l0_txids():
            if t > txid:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.l0_path(t))

    def reset(self) -> None:
        """`litestream reset`: drop all local LTX state; the next sync starts with a snapshot."""
        shutil.rmtree(self.ltx_root, ignore_errors=True)


def verify_l0(path: str) -> None:
    with open(path, "rb") as f:
        try:
            core.Decoder(f.fileno()).verify()
        except LTXError as e:
            raise LTXError(f"{path}: {e}", e.kind) from None
