"""Test helpers: build LTX files with the encoder and read them back into plain Python structures."""

from __future__ import annotations

import io
import os

from litestream import _ltxcore as core
from litestream.ltx import FLAG_NO_CHECKSUM, Header


def header(page_size=4096, commit=1, min_txid=1, max_txid=1, timestamp=1_700_000_000_000, flags=FLAG_NO_CHECKSUM,
           pre=0, wal_offset=0, wal_size=0, salt1=0, salt2=0) -> Header:
    return Header(flags, page_size, commit, min_txid, max_txid, timestamp, pre, wal_offset, wal_size, salt1, salt2, 0)


def page(pgno: int, page_size: int, seed: int = 0) -> bytes:
    """Deterministic page content: partly compressible, partly not."""
    head = f"page {pgno} seed {seed} ".encode() * 8
    body = os.urandom(0) or bytes(((pgno * 131 + seed * 7 + i * i) >> 3) & 0xFF for i in range(page_size // 2))
    data = (head + body)[:page_size]
    return data + bytes(page_size - len(data))


def encode(h: Header, pages: dict[int, bytes], post_apply: int = 0) -> bytes:
    buf = io.BytesIO()
    enc = core.Encoder(buf)
    enc.write_header(h)
    for pgno in sorted(pages):
        enc.write_page(pgno, pages[pgno])
    enc.finish(post_apply)
    return buf.getvalue()


def decode(data: bytes) -> tuple[Header, dict[int, bytes], tuple[int, int]]:
    dec = core.Decoder(io.BytesIO(data))
    h = Header(*dec.read_header())
    pages = dict(dec)
    trailer = dec.finish()
    return h, pages, trailer
