"""What only the gs and abs backends have, against their real servers (tests/servers/fakegcs.py,
azurite.py): the ABS URL forms end to end (the migration guide's `abs://<account>/<container>/<path>`
and the reference's `abs://<account>@<container>/<path>`), SAS tokens and the credential order, the
environment's keys, secrets kept out of logs, both STORAGE_EMULATOR_HOST forms, and the edges of the
chunked reads and uploads (streams that cannot seek, windows ending exactly at the end)."""

from __future__ import annotations

import io
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, Source, gcs
from litestream.backends import abs as absb
from tests.backends.helpers import apply_env, client_for
from tests.cliutil import Background, add_rows, make_db, read_rows, wait_for
from tests.conftest import run_ours
from tests.refbin import run_ref
from tests.servers import azurite, config_text

TS = 1_764_000_000_123


@pytest.fixture
def unique(request) -> str:
    return f"x{os.getpid()}-{int(time.time() * 1000) % 10**8}/{request.node.name.replace('_', '-')[:40]}"


def names(c, level=0):
    return [(i.min_txid, i.max_txid) for i in c.ltx_files(level)]


def read_all(c, level, lo, hi, offset=0, size=0) -> bytes:
    with c.open_ltx_file(level, lo, hi, offset, size) as f:
        out = bytearray()
        while chunk := f.read(7000):
            out += chunk
        return bytes(out)


def put(c, lo, data: bytes, stream=None, size: int | None = -1):
    src = Source.of(stream if stream is not None else io.BytesIO(data), len(data) if size == -1 else size)
    return c.write_ltx_file(0, lo, lo, src, TS)


class Unseekable(io.RawIOBase):
    """A stream as a pipe or another backend's download is: forward only, short reads."""

    def __init__(self, data: bytes, piece: int = 70_000) -> None:
        self._data, self._pos, self._piece = data, 0, piece

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self._piece, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def replicate_and_restore(tmp_path, replica: dict, env: dict, *, reference_restores: bool) -> list[str]:
    """Ours replicates a few commits through `replica`; ours (and the reference) restore them."""
    db = make_db(tmp_path / "app.db", ["a0"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**replica, "sync-interval": "100ms"})]))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=env)
    rows = ["a0"]
    try:
        for i in range(5):
            add_rows(db, [f"a{i + 1}"])
            rows.append(f"a{i + 1}")
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        bg.signal(signal.SIGTERM)
        rc = bg.finish(60)
    assert rc == 0, bg.stderr
    assert "level=ERROR" not in bg.stderr + bg.stdout, bg.stderr + bg.stdout
    runs = [("ours", run_ours)] + ([("reference", run_ref)] if reference_restores else [])
    for name, run in runs:
        out = tmp_path / f"restored-{name}.db"
        p = run("restore", "-config", str(cfg), "-o", str(out), str(db), env=env, timeout=120)
        assert p.returncode == 0, f"{name}: {p.stderr}"
        assert read_rows(out) == rows, name
    return rows


# ------------------------------------------------------------------------------------------------ abs


def base_abs(server, path: str) -> dict:
    return server.replica(path)


def test_azurite_guide_url_form_end_to_end(abs_server, unique, tmp_path):
    """`url: abs://<account>/<container>/<path>` with `account-name: <account>` (the migration guide's
    example): the blobs are in <container> under <path>/, where the key form puts them too."""
    replica = {"url": f"abs://{azurite.ACCOUNT}/{azurite.CONTAINER}/{unique}", "account-name": azurite.ACCOUNT,
               "account-key": azurite.KEY, "endpoint": abs_server.endpoint}
    replicate_and_restore(tmp_path, replica, {}, reference_restores=False)
    c = client_for(base_abs(abs_server, unique))  # container + path keys: the same replica
    try:
        assert names(c) and names(c, 9)
    finally:
        c.close()


def test_azurite_reference_url_form_and_env_key(abs_server, unique, tmp_path):
    """`url: abs://<account>@<container>/<path>` with the key in $LITESTREAM_AZURE_ACCOUNT_KEY: both
    tools read the URL the same way, so the reference restores what ours wrote."""
    replica = {"url": f"abs://{azurite.ACCOUNT}@{azurite.CONTAINER}/{unique}", "endpoint": abs_server.endpoint}
    replicate_and_restore(tmp_path, replica, {"LITESTREAM_AZURE_ACCOUNT_KEY": azurite.KEY},
                          reference_restores=True)
    c = client_for(base_abs(abs_server, unique))
    try:
        assert names(c)
    finally:
        c.close()


def container_sas(server, permission="racwdl") -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(azurite.ACCOUNT, azurite.CONTAINER, account_key=azurite.KEY,
                                  permission=ContainerSasPermissions.from_string(permission),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))


def test_azurite_sas_token_beats_the_key(abs_server, unique, monkeypatch):
    sas = container_sas(abs_server)
    # A wrong account key as well: the SAS token is used, as in the reference.
    mapping = {**base_abs(abs_server, unique), "account-key": azurite.WRONG_KEY, "sas-token": "?" + sas}
    c = client_for(mapping)
    try:
        data = random.Random(1).randbytes(50_000)
        put(c, 1, data)
        assert names(c) == [(1, 1)] and read_all(c, 0, 1, 1) == data
        c.delete_all()
        assert names(c) == []
    finally:
        c.close()
    # From the environment, with no key anywhere.
    monkeypatch.setenv("LITESTREAM_AZURE_SAS_TOKEN", sas)
    c = client_for({k: v for k, v in base_abs(abs_server, unique).items() if k != "account-key"})
    try:
        put(c, 2, b"x" * 100)
        assert names(c) == [(2, 2)]
    finally:
        c.close()


def test_azurite_bad_sas_token_is_an_auth_error_without_the_signature(abs_server, unique):
    sas = container_sas(abs_server)
    forged = "&".join(f"sig={'A' * 43}%3D" if p.startswith("sig=") else p for p in sas.split("&"))
    c = client_for({**base_abs(abs_server, unique), "sas-token": forged})
    try:
        with pytest.raises(AuthError) as e:
            put(c, 1, b"y" * 100)
        assert "A" * 43 not in str(e.value) and "sig=" not in str(e.value)
        assert f"container {azurite.CONTAINER!r}" in str(e.value) and "\n" not in str(e.value)
    finally:
        c.close()
    # A read-only token: listing works, writing is refused.
    c = client_for({**base_abs(abs_server, unique), "sas-token": container_sas(abs_server, "rl")})
    try:
        assert names(c) == []
        with pytest.raises(AuthError):
            put(c, 1, b"y" * 100)
    finally:
        c.close()


def test_azurite_logs_name_no_secret(abs_server, unique, tmp_path):
    """Both a SAS token and a key: the reference's warning, and neither secret in any log line, even
    at debug level."""
    sas = container_sas(abs_server)
    db = make_db(tmp_path / "app.db", ["a"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**base_abs(abs_server, unique), "sas-token": sas,
                                           "sync-interval": "100ms"})], logging={"level": "debug"}))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env={})
    c = client_for(base_abs(abs_server, unique))
    try:
        assert wait_for(lambda: bool(names(c)), timeout=30)
    finally:
        c.close()
        bg.signal(signal.SIGTERM)
        bg.finish(60)
    logs = bg.stdout + bg.stderr
    assert "both SAS token and account key configured, using SAS token" in logs, logs
    sig = next(p for p in sas.split("&") if p.startswith("sig="))[4:]
    assert azurite.KEY not in logs and sig not in logs and sas not in logs


def test_azurite_missing_container_is_not_found(abs_server, unique):
    c = client_for({**base_abs(abs_server, unique), "bucket": "no-such-container"})
    try:
        with pytest.raises(NotFoundError):
            names(c)
    finally:
        c.close()


# ------------------------------------------------------------------------------------------------ gs


def test_fakegcs_emulator_host_with_scheme(gcs_server, unique, tmp_path, monkeypatch):
    """STORAGE_EMULATOR_HOST as a URL (google-cloud-storage's form) works for both tools too."""
    env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{gcs_server.port}"}
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", env["STORAGE_EMULATOR_HOST"])
    replicate_and_restore(tmp_path, gcs_server.replica(unique), env, reference_restores=True)
    p = run_ours("ltx", gcs_server.url(unique), env=env)
    q = run_ref("ltx", gcs_server.url(unique), env=env)
    assert p.returncode == q.returncode == 0 and p.stdout == q.stdout, (p.stderr, q.stderr)


def test_fakegcs_missing_bucket_is_not_found(gcs_server, unique):
    c = client_for({**gcs_server.replica(unique), "bucket": "no-such-bucket"})
    try:
        with pytest.raises(NotFoundError):
            names(c)
        with pytest.raises(NotFoundError):
            read_all(c, 0, 1, 1)
    finally:
        c.close()


# ------------------------------------------------------------------------------------------------ both


@pytest.fixture(params=["fakegcs", "azurite"])
def small_window_client(request, servers, monkeypatch, unique):
    """A client whose reads and uploads use 64 KiB pieces, so small files cross every boundary."""
    s = apply_env(servers.get(request.param), monkeypatch)
    monkeypatch.setattr(gcs, "READ_WINDOW", 64 << 10)
    monkeypatch.setattr(gcs, "CHUNK_SIZE", 256 << 10)  # GCS chunks are multiples of 256 KiB
    for name in ("GET_CHUNK_SIZE", "SINGLE_PUT_SIZE", "BLOCK_SIZE"):
        monkeypatch.setattr(absb, name, 64 << 10)
    c = client_for(s.replica(unique))
    yield c
    c.close()


def test_fakegcs_azurite_reads_at_window_edges(small_window_client):
    c = small_window_client
    w = 64 << 10
    for lo, n in ((1, w), (2, 3 * w), (3, 3 * w + 5), (4, w - 1)):
        data = random.Random(n).randbytes(n)
        put(c, lo, data)
        assert read_all(c, 0, lo, lo) == data
        assert read_all(c, 0, lo, lo, offset=w - 3, size=w + 6) == data[w - 3:2 * w + 3]
        assert read_all(c, 0, lo, lo, offset=n) == b""
        assert read_all(c, 0, lo, lo, offset=n - 1, size=10) == data[-1:]


def test_fakegcs_azurite_uploads_from_streams_that_cannot_seek(small_window_client):
    c = small_window_client
    data = random.Random(7).randbytes(1_000_003)  # several chunks / blocks at 64-256 KiB
    info = put(c, 1, data, stream=io.BufferedReader(Unseekable(data)))
    assert info.size == len(data) and read_all(c, 0, 1, 1) == data
    info = put(c, 2, data, stream=Unseekable(data), size=None)  # size unknown
    assert info.size == len(data) and read_all(c, 0, 2, 2) == data
    small = data[:5000]
    put(c, 3, small, stream=Unseekable(small, piece=333))  # the single-request path, short reads
    assert read_all(c, 0, 3, 3) == small
    # A copy of one of our own downloads, as compaction copies a file to another level.
    with c.open_ltx_file(0, 1, 1) as f:
        c.write_ltx_file(5, 1, 1, Source.of(f, len(data)), TS)
    assert read_all(c, 5, 1, 1) == data
    assert [i.created_at_ns for i in c.ltx_files(0)] == [TS * 1_000_000] * 3


def test_fakegcs_azurite_short_source_stores_nothing(small_window_client):
    c = small_window_client
    with pytest.raises((BackendError, OSError)):
        put(c, 1, b"z" * 1000, stream=io.BytesIO(b"z" * 600), size=1000)
    assert names(c) == []
