"""The one storage seam: every replica backend implements this small protocol and nothing else.

Paths inside a replica: `<root>/ltx/<level>/<min16>-<max16>.ltx` (S3/OSS use `<root>/<level %04x>/...`);
the layout belongs to each backend, callers only speak in levels and TXIDs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol, runtime_checkable

from litestream.ltx import FileInfo


class BackendError(Exception):
    """A storage operation failed; the message says which replica and what."""


@runtime_checkable
class ReplicaClient(Protocol):
    type: str

    def init(self) -> None:
        """Prepare the client (connect, check the bucket). Cheap to call again."""

    def ltx_files(self, level: int, seek: int = 0, use_metadata: bool = False) -> Iterator[FileInfo]:
        """Files of one level in ascending name order, from MinTXID >= seek. use_metadata asks for exact
        CreatedAt values where a backend normally returns approximate ones (timestamp restores)."""
        ...

    def open_ltx_file(self, level: int, min_txid: int, max_txid: int, offset: int = 0,
                      size: int = 0) -> BinaryIO:
        """A readable stream of the file (from offset; size 0 = to the end)."""
        ...

    def local_path(self, level: int, min_txid: int, max_txid: int) -> str | None:
        """The file's path when it is a local file that can be read in place, else None."""
        ...

    def write_ltx_file(self, level: int, min_txid: int, max_txid: int, src: BinaryIO,
                       timestamp_ms: int) -> FileInfo:
        """Store a complete LTX file atomically (readers never see a partial file)."""
        ...

    # Optional: write_ltx_file_with(level, fill) -> FileInfo, where fill(fd) encodes the file into a
    # seekable descriptor the backend provides and returns its Header (which names the file).
    # Backends that can offer one (file) let snapshots and compactions be written once, in place;
    # litestream.snapshot.write_filled falls back to a spool file for the others.

    def delete_ltx_files(self, infos: Iterable[FileInfo]) -> None: ...

    def delete_all(self) -> None: ...
