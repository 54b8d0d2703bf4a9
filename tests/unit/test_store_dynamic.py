"""Databases joining and leaving a running Store (register/unregister, stop/start, directory replication)
and `sync` on demand, while the others keep replicating."""

from __future__ import annotations

import itertools

import pytest

from litestream.db.database import Database, DBSettings
from litestream.replica import Replica, ReplicaSettings
from litestream.restore import calc_restore_plan, restore_files
from litestream.store import DatabaseNotOpen, DBEntry, Store
from tests.unit.test_store import CountingClient, make_app, wait_for

_seq = itertools.count()


def entry(tmp_path, name: str) -> tuple[DBEntry, CountingClient]:
    db = Database(str(tmp_path / f"{name}.db"), DBSettings(monitor_interval_s=0.05, checkpoint_interval_s=0))
    client = CountingClient(str(tmp_path / f"rep-{name}"))
    return DBEntry(db, [Replica(db, client, ReplicaSettings(sync_interval_s=0.05))]), client


def rows(path) -> list:
    import apsw

    return apsw.Connection(str(path)).execute("SELECT v FROM t ORDER BY id").fetchall()


def restored(tmp_path, client, name: str) -> list:
    out = tmp_path / f"restored-{name}-{next(_seq)}.db"
    restore_files(client, calc_restore_plan(client), str(out))
    return rows(out)


@pytest.fixture
def store():
    s = Store([], shutdown_sync_timeout_s=5)
    s.open()
    yield s
    s.close()


def test_added_database_replicates_and_removed_one_is_released(tmp_path, store):
    a, ca = entry(tmp_path, "a")
    b, cb = entry(tmp_path, "b")
    apps = {n: make_app(tmp_path / f"{n}.db") for n in ("a", "b")}
    assert store.add(a) and store.add(b)
    assert not store.add(a)  # same path twice
    assert wait_for(lambda: a.ready and b.ready and a.replicas[0].pos and b.replicas[0].pos)
    apps["a"].execute("INSERT INTO t(v) VALUES ('a1')")
    apps["b"].execute("INSERT INTO t(v) VALUES ('b1')")
    assert wait_for(lambda: a.replicas[0].pos == a.db.txid == 2 and b.replicas[0].pos == b.db.txid == 2)

    apps["b"].execute("INSERT INTO t(v) VALUES ('b2-before-remove')")
    assert store.remove(b.db.path) is b  # final sync and upload included
    assert store.find(b.db.path) is None and b not in store.entries
    assert not b.db.is_open
    assert restored(tmp_path, cb, "b") == [("b1",), ("b2-before-remove",)]
    calls = cb.calls
    apps["b"].execute("INSERT INTO t(v) VALUES ('b3-after')")
    apps["a"].execute("INSERT INTO t(v) VALUES ('a2')")
    assert wait_for(lambda: restored(tmp_path, ca, "a")[-1] == ("a2",))
    assert cb.calls == calls  # a released database makes no requests
    assert store.remove(b.db.path) is None


def test_stop_then_start_continues_the_replica(tmp_path, store):
    a, ca = entry(tmp_path, "a")
    app = make_app(tmp_path / "a.db")
    store.add(a)
    assert wait_for(lambda: a.ready and a.replicas[0].pos)
    app.execute("INSERT INTO t(v) VALUES ('1')")
    assert wait_for(lambda: a.replicas[0].pos == a.db.txid == 2)
    app.execute("INSERT INTO t(v) VALUES ('2')")
    assert store.stop_db(a) and not store.stop_db(a)
    assert not store.is_open(a)
    with pytest.raises(DatabaseNotOpen):
        store.sync_db(a)
    assert restored(tmp_path, ca, "s1") == [("1",), ("2",)]  # stop syncs and uploads first
    app.execute("INSERT INTO t(v) VALUES ('3-while-stopped')")
    assert store.start_db(a) and not store.start_db(a)
    assert wait_for(lambda: store.is_open(a) and a.replicas[0].pos == a.db.txid)
    app.execute("INSERT INTO t(v) VALUES ('4')")
    assert wait_for(lambda: restored(tmp_path, ca, "s2") == [("1",), ("2",), ("3-while-stopped",), ("4",)], timeout=30)


def test_sync_wait_rides_the_scheduled_upload(tmp_path):
    # A long monitor-interval: only `sync` makes the L0 file; the wait must not add uploads of its own.
    db = Database(str(tmp_path / "a.db"), DBSettings(monitor_interval_s=3600, checkpoint_interval_s=0))
    client = CountingClient(str(tmp_path / "rep"))
    e = DBEntry(db, [Replica(db, client, ReplicaSettings(sync_interval_s=3600))])
    app = make_app(tmp_path / "a.db")
    s = Store([e], shutdown_sync_timeout_s=5)
    s.open()
    try:
        assert wait_for(lambda: e.ready and db.txid and e.replicas[0].pos == db.txid)
        app.execute("INSERT INTO t(v) VALUES ('x')")
        before = len(list(client.ltx_files(0)))
        out = s.sync_db(e, wait=True, timeout_s=10)
        assert out.changed and out.replicated_txid == out.txid == db.txid
        assert len(list(client.ltx_files(0))) == before + 1
        writes = client.calls
        again = s.sync_db(e, wait=True, timeout_s=10)
        assert not again.changed and again.txid == out.txid
        assert client.calls == writes  # nothing new: no request at all
    finally:
        s.close()


def test_sync_wait_times_out_when_the_replica_fails(tmp_path, store):
    a, ca = entry(tmp_path, "a")
    app = make_app(tmp_path / "a.db")
    store.add(a)
    assert wait_for(lambda: a.db.txid and a.replicas[0].pos == a.db.txid)
    ca.fail = True
    app.execute("INSERT INTO t(v) VALUES ('x')")
    with pytest.raises(TimeoutError):
        store.sync_db(a, wait=True, timeout_s=0.5)
    ca.fail = False
    assert store.sync_db(a, wait=True, timeout_s=20).replicated_txid == a.db.txid
