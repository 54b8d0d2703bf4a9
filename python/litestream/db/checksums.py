"""Database checksums carried in LTX files.

The reference writes every file with the NoChecksum flag, and its restore rejects files that carry
post-apply checksums (it merges them into a NoChecksum stream and then refuses the non-zero trailer
value). So, to stay restorable by Litestream 0.5.17, our files keep the NoChecksum flag and carry the
rolling database checksums in the header's 20 reserved bytes (offset 80), which the reference's decoder
ignores and the file's CRC-64 covers:

    80..87  pre-apply database checksum (0 for snapshots)
    88..95  post-apply database checksum
    96..99  b"LSDB": marks the two fields as present

Our restore checks the final database against the last file's post-apply value, and replication uses
the value of the newest local file as proof of what the database file should contain."""

from __future__ import annotations

from typing import NamedTuple

MARK = b"LSDB"
RESERVED_OFFSET = 80


class DBChecksums(NamedTuple):
    pre_apply: int
    post_apply: int


def encode_reserved(pre_apply: int, post_apply: int) -> bytes:
    return pre_apply.to_bytes(8, "big") + post_apply.to_bytes(8, "big") + MARK


def decode_reserved(header_bytes: bytes) -> DBChecksums | None:
    """The checksums in a raw 100-byte header, or None if the file does not carry them."""
    r = header_bytes[RESERVED_OFFSET:RESERVED_OFFSET + 20]
    if len(r) != 20 or r[16:] != MARK:
        return None
    post = int.from_bytes(r[8:16], "big")
    if not post >> 63:
        return None
    return DBChecksums(int.from_bytes(r[:8], "big"), post)
