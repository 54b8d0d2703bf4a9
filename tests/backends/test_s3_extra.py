"""S3 and OSS specifics against their real servers (SeaweedFS; `rclone serve s3` standing in for OSS):
the exact remote layout and metadata, the bucket-root quirk as the reference reads it, single PUT below
the part size and multipart above, SSE-C, Content-MD5 on deletes, credentials from the environment and
~/.aws, the region lookup request, and a v0.3 backup written by Litestream 0.3.13 to S3."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import time

import apsw
import pytest
import yaml

from litestream.backends import BackendError, Source, new_replica_client
from tests.conftest import run_ours
from tests.refbin import ref_env, reference_binary, run_ref
from tests.servers import config_text, replica_config, seaweedfs

from .helpers import client_for
from .test_conformance import TS, ltx_bytes, put, read_all

TS_TEXT = "2025-11-24T16:00:00.123Z"  # TS as the reference's RFC3339Nano writes it


def raw_s3(server):
    import boto3

    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=seaweedfs.ACCESS_KEY,
                        aws_secret_access_key=seaweedfs.SECRET_KEY, region_name=seaweedfs.REGION)


def keys(server, prefix: str, bucket: str = seaweedfs.BUCKET) -> list[str]:
    out = raw_s3(server).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in out.get("Contents", [])]


def make_bucket(server, name: str) -> None:
    s3 = raw_s3(server)
    try:
        s3.create_bucket(Bucket=name)
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass


def test_layout_and_timestamp_metadata(sw, prefix):
    c = client_for(sw.replica(prefix))
    try:
        for level in (0, 9, 10):
            put(c, level, 1, 2)
    finally:
        c.close()
    name = "0000000000000001-0000000000000002.ltx"
    assert keys(sw, prefix + "/") == [f"{prefix}/0000/{name}", f"{prefix}/0009/{name}", f"{prefix}/000a/{name}"]
    head = raw_s3(sw).head_object(Bucket=seaweedfs.BUCKET, Key=f"{prefix}/0000/{name}")
    assert head["Metadata"] == {"litestream-timestamp": TS_TEXT}


def test_bucket_root_url_uses_dot_keys_as_the_reference(sw, monkeypatch):
    """`s3://bucket` has the path "." and so the reference's keys `./0000/...`. SeaweedFS refuses such a
    key (400 InvalidRequest); the reference's `replicate` fails on it with the same key and error (seen by
    hand: it retries for its whole 30 s shutdown, too slow to run here), and both list the same nothing."""
    make_bucket(sw, "rootcase")
    url = f"s3://rootcase?endpoint=127.0.0.1:{sw.port}&region=us-east-1"
    for k, v in sw.env.items():
        monkeypatch.setenv(k, v)
    c = client_for({"url": url})
    try:
        with pytest.raises(BackendError) as e:
            put(c, 0, 1, 1)
        assert str(e.value) == ("s3: put s3://rootcase/./0000/0000000000000001-0000000000000001.ltx: "
                                "InvalidRequest: Invalid Request")
        assert list(c.ltx_files(0)) == []
    finally:
        c.close()
    ours, ref = run_ours("ltx", url, env=sw.env), run_ref("ltx", url, env=sw.env)
    assert ours.returncode == ref.returncode == 0, (ours.stderr, ref.stderr)
    assert ours.stdout == ref.stdout


def etag(server, key: str) -> str:
    return raw_s3(server).head_object(Bucket=seaweedfs.BUCKET, Key=key)["ETag"].strip('"')


def test_single_put_below_part_size_multipart_above(sw, prefix, tmp_path):
    c = client_for({**sw.replica(prefix), "part-size": "5MiB", "concurrency": 2})
    try:
        big = ltx_bytes(1, 3, pages=3000, noise=True)  # ~12 MiB: 3 parts
        f = tmp_path / "big.ltx"
        f.write_bytes(big)
        info = c.write_ltx_file(9, 1, 3, Source.file(str(f)), TS)
        assert info.size == len(big) and etag(sw, f"{prefix}/0009/0000000000000001-0000000000000003.ltx").endswith("-3")
        # A stream of unknown size: the first part is read to decide, then the rest follows.
        info = c.write_ltx_file(8, 1, 3, Source.of(io.BytesIO(big)), TS)
        assert info.size == len(big) and etag(sw, f"{prefix}/0008/0000000000000001-0000000000000003.ltx").endswith("-3")
        assert read_all(c, 8, 1, 3) == big and read_all(c, 9, 1, 3) == big
        small = ltx_bytes(4, 4)
        info = c.write_ltx_file(0, 4, 4, Source.of(io.BytesIO(small)), TS)
        assert info.size == len(small) and "-" not in etag(sw, f"{prefix}/0000/0000000000000004-0000000000000004.ltx")
        # Multipart uploads carry the metadata too.
        assert [i.created_at_ns for i in c.ltx_files(9, 0, True)] == [TS * 1_000_000]
    finally:
        c.close()


def test_part_size_below_minimum_is_refused(sw, prefix):
    c = client_for({**sw.replica(prefix), "part-size": "5MB"})
    try:
        with pytest.raises(BackendError) as e:
            put(c, 0, 1, 1)
        assert str(e.value) == (f"s3: upload to {prefix}/0000/0000000000000001-0000000000000001.ltx: part size must "
                                f"be at least 5242880 bytes")
        assert keys(sw, prefix + "/") == []
    finally:
        c.close()


def test_sse_c(sw, prefix, tmp_path):
    key = os.urandom(32)
    b64 = base64.b64encode(key).decode()
    (tmp_path / "key").write_text(b64 + "\n")
    for i, mapping in enumerate(({"sse-customer-key": b64}, {"sse-customer-key-path": str(tmp_path / "key")})):
        p = f"{prefix}/{i}"
        c = client_for({**sw.replica(p), **mapping})
        try:
            data = ltx_bytes(1, 1)
            put(c, 0, 1, 1, data)
            assert read_all(c, 0, 1, 1) == data and read_all(c, 0, 1, 1, 10, 20) == data[10:30]
            assert [x.created_at_ns for x in c.ltx_files(0, 0, True)] == [TS * 1_000_000]  # HEAD with the key
        finally:
            c.close()
        s3 = raw_s3(sw)
        with pytest.raises(s3.exceptions.ClientError):  # stored encrypted: no key, no data
            s3.get_object(Bucket=seaweedfs.BUCKET, Key=f"{p}/0000/0000000000000001-0000000000000001.ltx")
        md5 = base64.b64encode(hashlib.md5(key).digest()).decode()
        got = s3.get_object(Bucket=seaweedfs.BUCKET, Key=f"{p}/0000/0000000000000001-0000000000000001.ltx",
                            SSECustomerAlgorithm="AES256", SSECustomerKey=b64, SSECustomerKeyMD5=md5)
        assert got["Body"].read() == data


@pytest.mark.parametrize("md5", [True, False])
def test_content_md5_on_delete_objects(sw, prefix, md5):
    c = client_for({**sw.replica(prefix), "require-content-md5": md5})
    seen: list[dict] = []
    try:
        put(c, 0, 1, 1)
        c._s3().meta.events.register("before-send.s3.DeleteObjects",
                                     lambda request, **kw: seen.append(dict(request.headers)))
        c.delete_ltx_files(list(c.ltx_files(0)))
        assert [i.name for i in c.ltx_files(0)] == []
    finally:
        c.close()
    assert len(seen) == 1 and ("Content-MD5" in seen[0]) is md5


def test_credentials_from_env_and_aws_files(sw, prefix, tmp_path, monkeypatch):
    """A replica with no keys: AWS_* in the environment, else ~/.aws/credentials (as `aws configure`
    writes it), and through the CLI the LITESTREAM_* variables."""
    mapping = {k: v for k, v in sw.replica(prefix).items() if k not in ("access-key-id", "secret-access-key")}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
              "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # nothing may ask an instance metadata service
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.SECRET_KEY)
    c = client_for(mapping)
    try:
        put(c, 0, 1, 1)
    finally:
        c.close()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {seaweedfs.ACCESS_KEY}\naws_secret_access_key = {seaweedfs.SECRET_KEY}\n")
    c = client_for(mapping)
    try:
        assert [i.name for i in c.ltx_files(0)] == ["0000000000000001-0000000000000001.ltx"]
    finally:
        c.close()
    (tmp_path / ".aws" / "credentials").unlink()
    env = {"LITESTREAM_ACCESS_KEY_ID": seaweedfs.ACCESS_KEY, "LITESTREAM_SECRET_ACCESS_KEY": seaweedfs.SECRET_KEY}
    p = run_ours("ltx", sw.url(prefix), env=env)
    assert p.returncode == 0 and "0000000000000001" in p.stdout, p.stderr


def test_region_lookup_request(sw, prefix):
    """The GetBucketLocation the client sends when no region is given (SeaweedFS answers with none, which
    is us-east-1)."""
    c = new_replica_client(replica_config(sw.replica(prefix)))
    try:
        assert c._find_region(c._session()) == "us-east-1"
    finally:
        c.close()


@pytest.mark.interop
def test_v3_backup_written_by_0_3_13_restores(sw, prefix, tmp_path):
    """Litestream 0.3.13 replicates to S3 (`generations/<gen>/snapshots|wal/...`); ours restores it, to the
    bytes 0.3.13's own restore gives."""
    db = tmp_path / "app.db"
    replica = {**sw.replica(prefix), "force-path-style": True, "sync-interval": "100ms"}
    cfg = tmp_path / "v3.yml"
    cfg.write_text(yaml.safe_dump({"dbs": [{"path": str(db), "replicas": [replica]}]}))
    app = apsw.Connection(str(db))
    app.execute("PRAGMA journal_mode=wal")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    proc = subprocess.Popen([str(reference_binary("0.3.13")), "replicate", "-config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ref_env())
    try:
        time.sleep(2.0)  # the generation starts and takes its snapshot
        for _ in range(3):
            with app:
                app.executemany("INSERT INTO t(v) VALUES (randomblob(700))", [()] * 20)
            time.sleep(1.5)  # a WAL segment within its 1 s monitor interval
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    app.close()
    assert any("/generations/" in k for k in keys(sw, prefix + "/")), err.decode()[-2000:]
    c = client_for(sw.replica(prefix))
    try:
        gens = c.v3_generations()
        assert len(gens) == 1 and c.v3_snapshots(gens[0]) and c.v3_wal_segments(gens[0])
    finally:
        c.close()
    # 0.3.13's restore of its own backup, and ours through the config form of 0.5.
    ref_out, ours_out = tmp_path / "ref.db", tmp_path / "ours.db"
    r3 = subprocess.run([str(reference_binary("0.3.13")), "restore", "-config", str(cfg), "-o", str(ref_out),
                         str(db)], capture_output=True, text=True, env=ref_env(), timeout=120)
    assert r3.returncode == 0, r3.stderr
    cfg5 = tmp_path / "v5.yml"
    cfg5.write_text(config_text([(str(db), replica)]))
    p = run_ours("restore", "-config", str(cfg5), "-o", str(ours_out), str(db), timeout=120)
    assert p.returncode == 0, p.stderr
    assert ours_out.read_bytes() == ref_out.read_bytes()


# ---------------------------------------------------------------------------------------------- OSS

def capture_requests(client) -> list:
    """Wrap the oss2 session so each request (method, URL params, headers) is recorded as it is sent."""
    seen: list = []
    session = client._b().session
    real = session.do_request

    def do_request(req, timeout):
        seen.append((req.method, dict(req.params or {}), {k.lower(): v for k, v in req.headers.items()}))
        return real(req, timeout)

    session.do_request = do_request
    return seen


def test_oss_sends_timestamp_metadata_signed_v4(oss_server, prefix):
    """What real OSS keeps and the stand-in drops (see test_timestamps): the metadata header is sent, in the
    reference's format, on an OSS V4-signed PUT."""
    c = client_for(oss_server.replica(prefix))
    try:
        seen = capture_requests(c)
        put(c, 0, 1, 1)
        puts = [h for m, _, h in seen if m == "PUT"]
        assert len(puts) == 1 and puts[0]["x-oss-meta-litestream-timestamp"] == TS_TEXT
        assert puts[0]["authorization"].startswith("OSS4-HMAC-SHA256 ")
    finally:
        c.close()


def test_oss_multipart_above_part_size(oss_server, prefix, tmp_path):
    c = client_for({**oss_server.replica(prefix), "part-size": "5MiB", "concurrency": 2})
    try:
        seen = capture_requests(c)
        big = ltx_bytes(1, 3, pages=3000, noise=True)
        f = tmp_path / "big.ltx"
        f.write_bytes(big)
        assert c.write_ltx_file(9, 1, 3, Source.file(str(f)), TS).size == len(big)
        parts = [p for m, p, _ in seen if m == "PUT" and "partNumber" in p]
        assert sorted(int(p["partNumber"]) for p in parts) == [1, 2, 3]
        assert read_all(c, 9, 1, 3) == big
        assert read_all(c, 9, 1, 3, len(big) - 100, 50) == big[-100:-50]
    finally:
        c.close()


class _BrokenAfter(io.RawIOBase):
    """A source that fails after `n` bytes (a disk error in the middle of a multipart upload)."""

    def __init__(self, n: int) -> None:
        self.n, self.left = 0, n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.left <= 0:
            raise OSError("disk read error (test)")
        k = min(len(b), self.left)
        b[:k] = os.urandom(k)
        self.left -= k
        return k


@pytest.mark.parametrize("name", ["seaweedfs", "rclone_oss"])
def test_failed_multipart_upload_is_aborted(servers, prefix, name):
    server = servers.get(name)
    c = client_for({**server.replica(prefix), "part-size": "5MiB"})
    try:
        with pytest.raises((BackendError, OSError)):
            c.write_ltx_file(9, 1, 5, Source.of(io.BufferedReader(_BrokenAfter(11 << 20)), 20 << 20), TS)
        assert list(c.ltx_files(9)) == []
    finally:
        c.close()
    if name == "seaweedfs":
        ups = raw_s3(server).list_multipart_uploads(Bucket=seaweedfs.BUCKET, Prefix=prefix + "/")
        assert ups.get("Uploads", []) == []
