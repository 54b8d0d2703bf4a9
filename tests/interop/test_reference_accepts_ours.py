"""Files we encode are accepted by the real Litestream 0.5.17: we write a file-replica tree with our
encoder and merge (L0 per transaction, an L1 compaction, an L9 snapshot), then the reference binary
restores every TXID of it bit for bit.

The checksummed form (pre/post-apply database checksums, flag NoChecksum clear) is valid LTX, and we
restore and verify it, but the reference cannot restore it: its restore merges the plan through a
compactor that writes a NoChecksum stream yet copies the last input's post-apply checksum into it, and
its own encoder then rejects that ("post-apply checksum not allowed"). The test pins that down, because
it decides what replication may write."""

from __future__ import annotations

import contextlib
import hashlib
import os

import apsw
import pytest

from litestream import _ltxcore as core
from litestream.ltx import CHECKSUM_FLAG, FLAG_NO_CHECKSUM, Header, format_filename
from tests.conftest import run_ours
from tests.refbin import run_ref

pytestmark = pytest.mark.interop


def db_states(tmp_path, page_size: int, steps: int = 6) -> list[bytes]:
    """Database file contents after each of several transactions (grow, update, delete, VACUUM)."""
    path = tmp_path / f"src-{page_size}.db"
    conn = apsw.Connection(str(path))
    conn.execute(f"PRAGMA page_size={page_size}; PRAGMA journal_mode=WAL")
    states = []

    def snap():
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        states.append(path.read_bytes())

    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    snap()
    for i in range(steps):
        with conn:
            if i % 3 == 2:
                conn.execute("DELETE FROM t WHERE id % 2 = 0")
            else:
                conn.executemany("INSERT INTO t(v) VALUES (?)", [(os.urandom(50 + 37 * k) * 3,) for k in range(40)])
        snap()
    conn.execute("VACUUM")
    snap()
    conn.close()
    return states


def pages_of(state: bytes, ps: int) -> dict[int, bytes]:
    lock = core.lock_pgno(ps)
    return {i + 1: state[i * ps:(i + 1) * ps] for i in range(len(state) // ps) if i + 1 != lock}


def db_sum(pages: dict[int, bytes]) -> int:
    total = 0
    for p, d in pages.items():
        total ^= core.checksum_page(p, d)
    return total | CHECKSUM_FLAG


def write_file(path, h: Header, pages: dict[int, bytes], post: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        enc = core.Encoder(f.fileno())
        enc.write_header(h)
        for p in sorted(pages):
            enc.write_page(p, pages[p])
        enc.finish(post)
    os.utime(path, ns=(h.timestamp * 1_000_000,) * 2)


def build_replica(root, states, ps, checksums: bool) -> None:
    flags = 0 if checksums else FLAG_NO_CHECKSUM
    ts = 1_790_000_000_000
    prev: dict[int, bytes] = {}
    prev_sum = 0
    for txid, state in enumerate(states, 1):
        cur = pages_of(state, ps)
        commit = len(state) // ps
        changed = cur if txid == 1 else {p: d for p, d in cur.items() if prev.get(p) != d}
        post = db_sum(cur) if checksums else 0
        pre = prev_sum if checksums and txid > 1 else 0
        h = Header(flags, ps, commit, txid, txid, ts + txid * 1000, pre)
        write_file(root / "ltx" / "0" / format_filename(txid, txid), h, changed, post)
        prev, prev_sum = cur, post
    # L1: our merge of L0 2..4; L9: our merge of everything up to 5 (a snapshot).
    for level, lo, hi in ((1, 2, 4), (9, 1, 5)):
        out = root / "ltx" / str(level) / format_filename(lo, hi)
        os.makedirs(out.parent, exist_ok=True)
        with contextlib.ExitStack() as stack, open(out, "wb") as f:
            inputs = [stack.enter_context(open(root / "ltx" / "0" / format_filename(t, t), "rb"))
                      for t in range(lo, hi + 1)]
            oh, _ = core.merge(inputs, f.fileno(), flags)
        os.utime(out, ns=(oh[5] * 1_000_000,) * 2)


@pytest.mark.parametrize("checksums", [False, True], ids=["nochecksum", "checksums"])
@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_reference_restores_our_files(tmp_path, page_size, checksums):
    states = db_states(tmp_path, page_size)
    replica = tmp_path / "replica"
    build_replica(replica, states, page_size, checksums)
    for txid, state in [(t, s) for t, s in enumerate(states, 1)] + [(None, states[-1])]:
        want = hashlib.sha256(state).hexdigest()
        for tool in (run_ref, run_ours):
            out = tmp_path / f"{tool.__name__}-{txid}.db"
            args = ["restore", "-o", str(out)] + (["-txid", f"{txid:016x}"] if txid else []) + [f"file://{replica}"]
            r = tool(*args)
            if checksums and tool is run_ref:
                assert r.returncode == 1 and "post-apply checksum not allowed" in r.stderr, r.stderr
                assert not out.exists()
                continue
            assert r.returncode == 0, (tool.__name__, txid, r.stderr)
            assert hashlib.sha256(out.read_bytes()).hexdigest() == want, (tool.__name__, txid)
    # The reference also lists our tree the way we do.
    assert run_ref("ltx", "-level", "all", "-json", f"file://{replica}").stdout == \
        run_ours("ltx", "-level", "all", "-json", f"file://{replica}").stdout
