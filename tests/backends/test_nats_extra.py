"""NATS specifics against the real nats-server (tests/servers/nats.py): the object-store wire format as
nats.go and nats-py read and write it (names, the `Litestream-Timestamp` header, chunks of any size,
delete markers), ranged reads that start at the right chunk instead of streaming the whole object,
bounded memory for large objects, the timeout on a server that stops answering, a missing bucket
created on the first write (and not by a restore), the migration guide's `nats stream create` setup,
the URL form with credentials, auth errors, and logs free of secrets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import random
import socket
import threading
import time
import tracemalloc
import urllib.request

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, Source, new_replica_client
from litestream.backends import nats as natsb
from litestream.backends.transfer import download
from tests.cliutil import Background, add_rows, make_db, read_rows
from tests.conftest import run_ours
from tests.interop.workload import integrity_ok
from tests.refbin import run_ref
from tests.servers import config_text, find_binary, replica_config
from tests.servers import nats as natss

from .helpers import client_for, init_error
from .test_conformance import TS, ltx_bytes, put, read_all

TS_TEXT = "2025-11-24T16:00:00.123Z"  # TS as the reference's RFC3339Nano writes it


def bucket_of(prefix: str, suffix: str = "") -> str:
    return natss.bucket_for(prefix) + suffix


def fresh(ns, bucket: str, **extra):
    """A replica mapping for a bucket that replica() has not created."""
    return {"type": "nats", "url": f"{ns.server_url}/{bucket}", "username": natss.USER,
            "password": natss.PASSWORD, **extra}


def streams(ns) -> list[str]:
    async def names(_nc, js):
        return [s.config.name for s in await js.streams_info()]

    return ns.admin(names)


def varz(ns) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ns.monitor_port}/varz", timeout=5) as r:
        return json.loads(r.read())


class Recorder:
    """Stands in for the backend's logger: what it logged, at which level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict]] = []

    def _add(self, level):
        return lambda msg, *a, **kw: self.lines.append((level, msg, kw))

    def __getattr__(self, level):
        return self._add(level)


class Pattern(io.RawIOBase):
    """n deterministic pseudo-random bytes, produced as read (a large source that is never in memory)."""

    def __init__(self, n: int, seed: int = 1) -> None:
        self.left, self.rnd = n, random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left, 1 << 16)
        b[:k] = self.rnd.randbytes(k)
        self.left -= k
        return k


def pattern_bytes(n: int, seed: int = 1) -> bytes:
    return io.BufferedReader(Pattern(n, seed)).read()


def pattern_sha(n: int, seed: int = 1) -> str:
    h, p = hashlib.sha256(), Pattern(n, seed)
    while chunk := p.read(1 << 16):
        h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------- format and layout

def test_layout_header_and_info_as_nats_clients_read_them(ns, prefix):
    c = client_for(ns.replica(prefix))
    try:
        put(c, 0, 1, 1)
        put(c, 9, 1, 5)
        data = ltx_bytes(1, 5)
    finally:
        c.close()
    bucket = bucket_of(prefix)

    async def inspect(_nc, js):
        obs = await js.object_store(bucket)
        infos = {i.name: i for i in await obs.list()}
        got = await obs.get("ltx/9/0000000000000001-0000000000000005.ltx")  # nats-py checks the digest
        return infos, got.data

    infos, body = ns.admin(inspect)
    assert sorted(infos) == ["ltx/0/0000000000000001-0000000000000001.ltx",
                             "ltx/9/0000000000000001-0000000000000005.ltx"]
    info = infos["ltx/9/0000000000000001-0000000000000005.ltx"]
    assert info.headers == {"Litestream-Timestamp": [TS_TEXT]}
    assert info.size == len(data) and body == data
    assert info.options.max_chunk_size == natsb.CHUNK_SIZE
    assert TS == 1_764_000_000_123


def test_reads_objects_of_any_chunking_and_ranges(ns, prefix):
    """Objects another client wrote (nats-py here; nats.go writes short chunks wherever its reader returns
    short reads), in odd chunk sizes: whole, ranged at every kind of offset, and by listing."""
    bucket = bucket_of(prefix)
    ns.replica(prefix)
    data = random.Random(3).randbytes(50_000)
    from nats.js import api

    async def write(_nc, js):
        obs = await js.object_store(bucket)
        meta = api.ObjectMeta(name="ltx/0/0000000000000007-0000000000000007.ltx",
                              headers={"Litestream-Timestamp": ["2025-11-24T16:00:00.5Z"]},
                              options=api.ObjectMetaOptions(max_chunk_size=777))
        await obs.put(meta.name, data, meta=meta)
        # An object without the header: CreatedAt is its upload time.
        await obs.put("ltx/0/0000000000000008-0000000000000008.ltx", b"x" * 10)
        await obs.put("not-ltx/whatever", b"ignored")

    before = time.time_ns()
    ns.admin(write)
    c = client_for(ns.replica(prefix))
    try:
        files = list(c.ltx_files(0))
        assert [(f.min_txid, f.size) for f in files] == [(7, len(data)), (8, 10)]
        assert files[0].created_at_ns == 1_764_000_000_500_000_000
        assert before - 2_000_000_000 <= files[1].created_at_ns <= time.time_ns() + 2_000_000_000
        assert read_all(c, 0, 7, 7) == data
        for off, n in [(1, 0), (776, 2), (777, 777), (778, 5000), (49_999, 0), (12_345, 1), (0, 1), (100, 30_000)]:
            assert read_all(c, 0, 7, 7, off, n) == (data[off:off + n] if n else data[off:]), (off, n)
        assert read_all(c, 0, 7, 7, len(data)) == b""
    finally:
        c.close()


def test_delete_marker_as_nats_clients_read_it(ns, prefix):
    c = client_for(ns.replica(prefix))
    try:
        info = put(c, 0, 1, 1)
        put(c, 0, 2, 2)
        c.delete_ltx_files([info])
    finally:
        c.close()
    bucket = bucket_of(prefix)

    async def inspect(_nc, js):
        obs = await js.object_store(bucket)
        live = [i.name for i in await obs.list(ignore_deletes=True)]
        gone = await obs.get_info("ltx/0/0000000000000001-0000000000000001.ltx", show_deleted=True)
        state = await js.stream_info(f"OBJ_{bucket}")
        return live, gone, state.state.messages

    live, gone, messages = ns.admin(inspect)
    assert live == ["ltx/0/0000000000000002-0000000000000002.ltx"]
    assert gone.deleted and gone.size == 0 and gone.chunks == 0
    assert messages == 3  # the deleted file's marker, the live file's info and its one chunk


# ------------------------------------------------------------------------------ ranges and memory

def test_ranged_read_starts_at_its_chunk(ns, prefix):
    """A read at an offset does not stream the object's beginning: it maps the chunks (headers only)
    and starts at the one holding the offset; the map is kept for the next ranges of the object."""
    c = client_for(ns.replica(prefix))
    try:
        n = 24 << 20
        c.write_ltx_file(9, 1, 2, Source.of(io.BufferedReader(Pattern(n)), n), TS)
        want = pattern_bytes(n)
        sent = varz(ns)["out_bytes"]
        assert read_all(c, 9, 1, 2, n - 5000, 1000) == want[n - 5000:n - 4000]
        first = varz(ns)["out_bytes"] - sent
        assert first < 1 << 20, f"{first} bytes sent for a 1000-byte range"
        sent = varz(ns)["out_bytes"]
        assert read_all(c, 9, 1, 2, 10 << 20, 300_000) == want[10 << 20:(10 << 20) + 300_000]
        again = varz(ns)["out_bytes"] - sent
        assert again < 1 << 20, f"{again} bytes sent for a 300 kB range with the map cached"
    finally:
        c.close()


def test_parallel_ranged_download_of_a_large_file(ns, prefix, tmp_path):
    c = client_for(ns.replica(prefix))
    try:
        n = 40 << 20  # above transfer.PARALLEL_ABOVE: read as ranges at once
        info = c.write_ltx_file(9, 1, 3, Source.of(io.BufferedReader(Pattern(n, 5)), n), TS)
        out = tmp_path / "copy.ltx"
        download(c, info, str(out))
        h = hashlib.sha256()
        with open(out, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert h.hexdigest() == pattern_sha(n, 5)
    finally:
        c.close()


def test_large_object_memory_stays_bounded(ns, prefix):
    """64 MiB written from a stream and read back as a stream: neither side holds the object."""
    n = 64 << 20
    c = client_for(ns.replica(prefix))
    try:
        tracemalloc.start()
        try:
            c.write_ltx_file(9, 1, 9, Source.of(io.BufferedReader(Pattern(n, 9)), n), TS)
            _, peak_write = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            h = hashlib.sha256()
            with c.open_ltx_file(9, 1, 9) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            _, peak_read = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert h.hexdigest() == pattern_sha(n, 9)
        assert peak_write < 16 << 20, peak_write
        assert peak_read < 16 << 20, peak_read
    finally:
        c.close()


class FreezingProxy:
    """A TCP proxy in front of the server that can stop forwarding (a server that hangs)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.frozen = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [a, b]
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                dst.sendall(data)

    def close(self) -> None:
        self.frozen.clear()
        for s in [self.sock, *self.conns]:
            with contextlib.suppress(OSError):
                s.close()


def test_a_hung_server_is_a_timeout_per_chunk(ns, prefix):
    ns.replica(prefix)
    proxy = FreezingProxy(ns.port)
    c = client_for({**fresh(ns, bucket_of(prefix)), "url": f"nats://127.0.0.1:{proxy.port}/{bucket_of(prefix)}",
                    "timeout": "1s"})
    try:
        n = 8 << 20
        c.write_ltx_file(9, 1, 2, Source.of(io.BufferedReader(Pattern(n)), n), TS)
        f = c.open_ltx_file(9, 1, 2)
        assert len(f.read(1 << 20)) == 1 << 20
        proxy.frozen.set()
        t0 = time.monotonic()
        with pytest.raises(BackendError) as e:
            while f.read(1 << 20):
                pass
        assert time.monotonic() - t0 < 15, "a read waited far past the timeout"
        assert "\n" not in str(e.value)
        t0 = time.monotonic()
        with pytest.raises(BackendError):
            list(c.ltx_files(9))
        assert time.monotonic() - t0 < 10
    finally:
        proxy.close()
        c.close()


# ------------------------------------------------------------------------------------------ buckets

def test_missing_bucket_is_created_on_first_write_only(ns, prefix, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(natsb, "log", rec)
    bucket = bucket_of(prefix, "-new")
    c = client_for(fresh(ns, bucket))
    try:
        # Listing, reading and deleting do not create it (a restore from a mistyped name makes nothing).
        assert list(c.ltx_files(0)) == []
        with pytest.raises(NotFoundError):
            read_all(c, 0, 1, 1)
        c.delete_all()
        assert f"OBJ_{bucket}" not in streams(ns)
        put(c, 0, 1, 1)
        assert [i.min_txid for i in c.ltx_files(0)] == [1]
    finally:
        c.close()
    assert f"OBJ_{bucket}" in streams(ns)
    created = [r for r in rec.lines if r[1] == "created NATS object store bucket"]
    assert len(created) == 1 and created[0][0] == "info" and created[0][2]["bucket"] == bucket


def test_the_migration_guides_setup_works_as_written(ns, prefix, tmp_path):
    """The guide: `nats-server -js`, the config (type nats, url nats://localhost:4222/my-app-bucket,
    username, password ${NATS_PASSWORD}), `nats stream create my-app-bucket --subjects="my-app-bucket.>"
    --storage=file --retention=limits --max-age=168h`. That stream is not an object store; ours creates
    the object store beside it (and says so), replicates, and both tools restore."""
    bucket = bucket_of(prefix, "-my-app-bucket")
    from nats.js import api

    async def guide_stream(_nc, js):
        await js.add_stream(name=bucket, subjects=[f"{bucket}.>"], storage=api.StorageType.FILE,
                            retention=api.RetentionPolicy.LIMITS, max_age=168 * 3600)

    ns.admin(guide_stream)
    db = make_db(tmp_path / "app.db", ["g0"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"logging:\n  level: debug\ndbs:\n  - path: {db}\n    replica:\n      type: nats\n"
                   f"      url: nats://localhost:{ns.port}/{bucket}\n      username: {natss.USER}\n"
                   "      password: ${NATS_PASSWORD}\n")
    env = {"NATS_PASSWORD": natss.PASSWORD}
    # As the reference reads this setup: no object store, so it refuses to start.
    p = run_ref("ltx", "-config", str(cfg), str(db), env=env, timeout=60)
    assert p.returncode != 0 and "must be created beforehand" in p.stderr, p.stderr
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=env)
    rows = ["g0"]
    try:
        for i in range(5):
            add_rows(db, [f"g{i + 1}"])
            rows.append(f"g{i + 1}")
            time.sleep(0.3)
        time.sleep(1.5)
    finally:
        bg.signal()
        rc = bg.finish(60)
    logs = bg.stdout + bg.stderr
    assert rc == 0, logs
    line = [ln for ln in logs.splitlines() if "created NATS object store bucket" in ln]
    assert len(line) == 1 and "level=INFO" in line[0] and f"bucket={bucket}" in line[0], logs
    assert "is a plain JetStream stream, not an object store" in line[0]
    assert natss.PASSWORD not in logs  # debug logs included
    assert {bucket, f"OBJ_{bucket}"} <= set(streams(ns))
    for who, run in (("ours", run_ours), ("reference", run_ref)):
        out = tmp_path / f"restored-{who}.db"
        p = run("restore", "-config", str(cfg), "-o", str(out), str(db), env=env, timeout=120)
        assert p.returncode == 0, f"{who}: {p.stderr}"
        assert read_rows(out) == rows and integrity_ok(out), who


def test_a_stream_in_the_way_is_a_clear_error(ns, prefix):
    bucket = bucket_of(prefix, "-taken")

    async def streams_in_the_way(_nc, js):
        # A stream with the object store's name that is not one, and one whose subjects overlap.
        await js.add_stream(name=f"OBJ_{bucket}", subjects=[f"{bucket}-other.>"])
        await js.add_stream(name=f"{bucket}-greedy", subjects=[f"$O.{bucket}2.>"])

    ns.admin(streams_in_the_way)
    c = new_replica_client(replica_config(fresh(ns, bucket)))
    try:
        with pytest.raises(BackendError) as e:
            c.init()
            put(c, 0, 1, 1)
        msg = str(e.value)
        assert "\n" not in msg and f'stream "OBJ_{bucket}" exists but is not an object store' in msg, msg
    finally:
        c.close()
    c = client_for(fresh(ns, bucket + "2"))
    try:
        with pytest.raises(BackendError) as e:
            put(c, 0, 1, 1)
        msg = str(e.value)
        assert "\n" not in msg and "overlap" in msg and f"nats object add {bucket}2" in msg, msg
    finally:
        c.close()


# ------------------------------------------------------------------------------------- credentials

def test_url_with_credentials_restores_with_ours(ns, prefix, tmp_path):
    db = make_db(tmp_path / "app.db", ["u0", "u1"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**ns.replica(prefix), "sync-interval": "100ms"})]))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path)
    try:
        time.sleep(2)
    finally:
        bg.signal()
        assert bg.finish(60) == 0, bg.stderr
    out = tmp_path / "restored.db"
    url = ns.url_with_credentials(prefix)
    p = run_ours("restore", "-o", str(out), url, timeout=120)
    assert p.returncode == 0, p.stderr
    assert read_rows(out) == ["u0", "u1"]
    p = run_ours("ltx", url)
    assert p.returncode == 0 and "0000000000000001" in p.stdout, p.stderr


@pytest.mark.parametrize("bad", [{"password": "wrong-password"}, {"username": "", "password": "",
                                                                   "token": "wrong-token"}])
def test_auth_errors_name_the_server_never_the_secret(ns, prefix, bad):
    msg = str(init_error({**ns.replica(prefix), **bad}, AuthError))
    assert "\n" not in msg and f"127.0.0.1:{ns.port}/{bucket_of(prefix)}" in msg, msg
    assert "wrong-password" not in msg and "wrong-token" not in msg


def test_nkey_seed_authenticates(tmp_path):
    """nkey auth with a seed (the reference's nkey option cannot sign): a server of its own, whose only
    user is the seed's public key."""
    nkeys = pytest.importorskip("nkeys")
    from tests.servers import free_port, spawn, terminate, wait_port

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    public = nkeys.from_seed(bytearray(seed.encode())).public_key.decode()
    port = free_port()
    conf = tmp_path / "nkey.conf"
    conf.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
                    f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    binary = find_binary("nats-server")
    assert binary is not None
    proc = spawn([binary, "-c", str(conf)], tmp_path / "nkey.log")
    try:
        wait_port(port, proc, timeout=30)
        c = client_for({"type": "nats", "url": f"nats://127.0.0.1:{port}/nk", "nkey": seed})
        try:
            put(c, 0, 1, 1)
            assert [i.min_txid for i in c.ltx_files(0)] == [1]
        finally:
            c.close()
        init_error({"type": "nats", "url": f"nats://127.0.0.1:{port}/nk"}, AuthError)
    finally:
        terminate(proc)


def test_concurrent_calls_from_many_threads(ns, prefix):
    """The engine's threads share one client: writes, listings and reads at once."""
    from concurrent.futures import ThreadPoolExecutor

    c = client_for(ns.replica(prefix))
    try:
        datas = {t: ltx_bytes(t, t, pages=40, noise=True) for t in range(1, 41)}

        def work(t):
            put(c, 0, t, t, datas[t])
            assert read_all(c, 0, t, t) == datas[t]
            assert read_all(c, 0, t, t, 1000, 5000) == datas[t][1000:6000]
            return len(list(c.ltx_files(0)))

        with ThreadPoolExecutor(12) as pool:
            list(pool.map(work, datas))
        assert [i.min_txid for i in c.ltx_files(0)] == list(range(1, 41))
    finally:
        c.close()


def test_client_closes_its_loop_thread(ns, prefix):
    before = {t.name for t in threading.enumerate()}
    c = client_for(ns.replica(prefix))
    assert any(t.name == "litestream-nats" for t in threading.enumerate())
    c.close()
    time.sleep(0.2)
    after = [t for t in threading.enumerate() if t.name == "litestream-nats" and t.name not in before]
    assert not after
    asyncio.run(asyncio.sleep(0))  # this thread's own loops are untouched


def test_survives_a_server_restart(tmp_path):
    """A server of its own, stopped and started again on the same port and store: calls during the outage
    fail (BackendError, bounded by the timeout), later ones work on the reconnected client."""
    from tests.servers import free_port, spawn, terminate, wait_port

    binary = find_binary("nats-server")
    assert binary is not None
    port = free_port()
    argv = [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")]
    proc = spawn(argv, tmp_path / "restart.log")
    c = None
    try:
        wait_port(port, proc, timeout=30)
        c = client_for({"type": "nats", "url": f"nats://127.0.0.1:{port}/restart", "timeout": "1s",
                        "reconnect-wait": "100ms"})
        data = ltx_bytes(1, 1, pages=100, noise=True)
        put(c, 0, 1, 1, data)
        terminate(proc)
        t0 = time.monotonic()
        with pytest.raises(BackendError):
            list(c.ltx_files(0))
        assert time.monotonic() - t0 < 10
        proc = spawn(argv, tmp_path / "restart.log")
        wait_port(port, proc, timeout=30)
        deadline = time.monotonic() + 20
        while True:
            try:
                got = [i.min_txid for i in c.ltx_files(0)]
                break
            except BackendError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert got == [1]
        assert read_all(c, 0, 1, 1) == data
        put(c, 0, 2, 2)
        assert [i.min_txid for i in c.ltx_files(0)] == [1, 2]
    finally:
        if c is not None:
            c.close()
        terminate(proc)


def test_listing_many_pages(ns, prefix):
    """More infos than one pull request asks for (LIST_WINDOW)."""
    from concurrent.futures import ThreadPoolExecutor

    c = client_for(ns.replica(prefix))
    try:
        data = ltx_bytes(1, 1, pages=1)
        n = natsb.LIST_WINDOW * 2 + 37
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda t: c.write_ltx_file(0, t, t, Source.of(io.BytesIO(data), len(data)), TS),
                          range(1, n + 1)))
        assert [i.min_txid for i in c.ltx_files(0)] == list(range(1, n + 1))
        c.delete_all()
        assert list(c.ltx_files(0)) == []
    finally:
        c.close()


def _tls_files(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in d."""
    x509 = pytest.importorskip("cryptography.x509")
    import datetime
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(cn, key, issuer_key=None, issuer=None, ca=False, san=None, usage=None):
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        return b.sign(issuer_key or key, hashes.SHA256())

    def write(name, obj):
        path = d / name
        if hasattr(obj, "private_bytes"):
            path.write_bytes(obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        else:
            path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("test-ca", ca_key, ca=True)
    srv_key, cli_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    srv = cert("127.0.0.1", srv_key, ca_key, ca.subject, san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
               usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    cli = cert("litestream", cli_key, ca_key, ca.subject, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return {"ca": write("ca.pem", ca), "server": write("server.pem", srv),
            "server_key": write("server-key.pem", srv_key), "client": write("client.pem", cli),
            "client_key": write("client-key.pem", cli_key)}


def test_mutual_tls_with_root_cas_and_client_cert(tmp_path):
    from tests.servers import free_port, spawn, terminate, wait_port

    f = _tls_files(tmp_path)
    port = free_port()
    binary = find_binary("nats-server")
    assert binary is not None
    proc = spawn([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js"), "--tlsverify",
                  "--tlscert", f["server"], "--tlskey", f["server_key"], "--tlscacert", f["ca"]], tmp_path / "tls.log")
    try:
        wait_port(port, proc, timeout=30)
        base = {"type": "nats", "url": f"nats://127.0.0.1:{port}/tls", "timeout": "3s"}
        c = client_for({**base, "tls": True, "root-cas": [f["ca"]], "client-cert": f["client"],
                        "client-key": f["client_key"]})
        try:
            put(c, 0, 1, 1)
            assert [i.min_txid for i in c.ltx_files(0)] == [1]
        finally:
            c.close()
        # The server's certificate is not from a system root: refused, in one line.
        e = init_error({**base, "tls": True}, BackendError)
        assert "\n" not in str(e) and "127.0.0.1" in str(e)
        # root-cas alone means TLS (as nats.RootCAs), but this server also wants a client certificate.
        c = new_replica_client(replica_config({**base, "root-cas": [f["ca"]]}))
        try:
            with pytest.raises(BackendError):
                c.init()
                list(c.ltx_files(0))
        finally:
            c.close()
    finally:
        terminate(proc)


def test_jetstream_disabled_is_a_clear_error(tmp_path):
    from tests.servers import free_port, spawn, terminate, wait_port

    port = free_port()
    binary = find_binary("nats-server")
    assert binary is not None
    proc = spawn([binary, "-a", "127.0.0.1", "-p", str(port)], tmp_path / "nojs.log")
    try:
        wait_port(port, proc, timeout=30)
        e = init_error({"type": "nats", "url": f"nats://127.0.0.1:{port}/b", "timeout": "2s"}, BackendError)
        assert "JetStream is not enabled" in str(e) and "-js" in str(e), str(e)
    finally:
        terminate(proc)
