"""Restore engine: plan edge cases, parallel fetching, segmented decoding, database checksums."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import pytest

from litestream import _ltxcore as core
from litestream import restore as restore_mod
from litestream.backends.file import FileReplicaClient
from litestream.ltx import CHECKSUM_FLAG, FileInfo
from litestream.restore import RestoreError, TxNotAvailable, calc_restore_plan, restore_files
from tests.ltxutil import encode, header, page
from tests.vectorutil import NAMES, copy_replica, manifest, sha256_file


class ListingClient:
    """A replica that is only a listing (for plan tests)."""

    type = "test"

    def __init__(self, files):
        self.files = files

    def ltx_files(self, level, seek=0, use_metadata=False):
        return iter(sorted((f for f in self.files if f.level == level and f.min_txid >= seek),
                           key=lambda f: (f.min_txid, f.max_txid)))


def fi(level, lo, hi, created=0):
    return FileInfo(level, lo, hi, 1000, created)


def names(plan):
    return [(f.level, f.min_txid, f.max_txid) for f in plan]


def test_plan_prefers_snapshot_then_furthest_reach():
    c = ListingClient([fi(9, 1, 4), fi(0, 1, 1), fi(0, 2, 2), fi(0, 3, 3), fi(0, 4, 4), fi(0, 5, 5),
                       fi(0, 6, 6), fi(1, 5, 6), fi(2, 1, 6)])
    assert names(calc_restore_plan(c)) == [(9, 1, 4), (2, 1, 6)]
    assert names(calc_restore_plan(c, 5)) == [(9, 1, 4), (0, 5, 5)]
    assert names(calc_restore_plan(c, 3)) == [(0, 1, 1), (0, 2, 2), (0, 3, 3)]


def test_plan_ties_prefer_higher_level_then_older():
    c = ListingClient([fi(0, 1, 2, 5), fi(1, 1, 2, 9), fi(2, 1, 2, 7), fi(3, 1, 2, 6)])
    assert names(calc_restore_plan(c)) == [(3, 1, 2)]
    c = ListingClient([fi(1, 1, 2, 9), fi(1, 1, 2, 3)])
    assert calc_restore_plan(c)[0].created_at_ns == 3


def test_plan_gap_and_unavailable_txid():
    c = ListingClient([fi(0, 1, 1), fi(0, 2, 2), fi(0, 4, 4)])
    with pytest.raises(RestoreError, match="non-contiguous ltx files: have up to 0000000000000002 but next "
                                           "file starts at 0000000000000004"):
        calc_restore_plan(c)
    assert names(calc_restore_plan(c, 2)) == [(0, 1, 1), (0, 2, 2)]
    with pytest.raises(TxNotAvailable):
        calc_restore_plan(c, 3)
    with pytest.raises(TxNotAvailable):
        calc_restore_plan(ListingClient([]))


def test_plan_timestamp_is_strictly_before():
    c = ListingClient([fi(0, 1, 1, 100), fi(0, 2, 2, 200), fi(0, 3, 3, 300)])
    assert names(calc_restore_plan(c, timestamp_ns=300)) == [(0, 1, 1), (0, 2, 2)]
    assert names(calc_restore_plan(c, timestamp_ns=301)) == [(0, 1, 1), (0, 2, 2), (0, 3, 3)]


class SlowRemote(FileReplicaClient):
    """A file replica that pretends to be remote: no in-place reads, and each download takes a while."""

    def __init__(self, path):
        super().__init__(path)
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def local_path(self, level, min_txid, max_txid):
        return None

    def open_ltx_file(self, level, min_txid, max_txid, offset=0, size=0):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.05)
        data = super().open_ltx_file(level, min_txid, max_txid, offset, size).read()
        with self.lock:
            self.active -= 1
        return io.BytesIO(data)


@pytest.mark.parametrize("parallelism, concurrent", [(1, False), (4, True)])
def test_parallelism_fetches_files_in_parallel(tmp_path, parallelism, concurrent):
    replica = copy_replica("v2_ps512_ckpt", tmp_path / "replica")
    client = SlowRemote(str(replica))
    plan = calc_restore_plan(client, 0xD)
    assert len(plan) >= 3
    restore_files(client, plan, str(tmp_path / "out.db"), parallelism)
    want = next(r["sha256"] for r in manifest("v2_ps512_ckpt")["restores"] if r["txid"] == "000000000000000d")
    assert sha256_file(tmp_path / "out.db") == want
    assert (client.peak > 1) == concurrent
    # Downloads are staged next to the output and removed afterwards.
    assert sorted(os.listdir(tmp_path)) == ["out.db", "replica"]


@pytest.mark.parametrize("name", NAMES)
def test_segmented_decoding_gives_same_database(tmp_path, monkeypatch, name):
    monkeypatch.setattr(restore_mod, "SEGMENT_BYTES", 0)
    replica = copy_replica(name, tmp_path / "replica")
    client = FileReplicaClient(str(replica))
    restore_files(client, calc_restore_plan(client), str(tmp_path / "out.db"), 2)
    assert sha256_file(tmp_path / "out.db") == manifest(name)["restored_latest"]["sha256"]


def _checksummed_replica(root, tamper: bool):
    ps = 1024
    snap = {p: page(p, ps, 0) for p in range(1, 9)}
    inc = {3: page(3, ps, 1), 9: page(9, ps, 1)}
    s1 = 0
    for p, d in snap.items():
        s1 ^= core.checksum_page(p, d)
    final = {**snap, **inc}
    s2 = 0
    for p, d in final.items():
        s2 ^= core.checksum_page(p, d)
    post2 = (s2 | CHECKSUM_FLAG) ^ (2 if tamper else 0)
    files = [(header(page_size=ps, commit=8, flags=0), snap, s1 | CHECKSUM_FLAG),
             (header(page_size=ps, commit=9, min_txid=2, max_txid=2, flags=0, pre=s1 | CHECKSUM_FLAG), inc, post2)]
    for h, pages, post in files:
        d = root / "ltx" / "0"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{h.min_txid:016x}-{h.max_txid:016x}.ltx").write_bytes(encode(h, pages, post))
    return final


@pytest.mark.parametrize("tamper", [False, True])
def test_database_checksum_verified(tmp_path, tamper):
    final = _checksummed_replica(tmp_path / "replica", tamper)
    client = FileReplicaClient(str(tmp_path / "replica"))
    out = tmp_path / "out.db"
    if tamper:
        with pytest.raises(RestoreError, match="restored database checksum"):
            restore_files(client, calc_restore_plan(client), str(out))
        assert os.listdir(tmp_path) == ["replica"]
    else:
        restore_files(client, calc_restore_plan(client), str(out))
        want = b"".join(final[p] for p in range(1, 10))
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(want).digest()
