"""S3 and OSS replica config: every key and URL form, as the reference's config/CLI builders read them
(NewS3ReplicaClientFromConfig, newOSSReplicaClientFromConfig, s3.ParseHost, replica_url.go), with their
error messages; the remote layout and timestamp metadata; SDK error mapping. No server needed."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, Source, new_replica_client
from litestream.backends import s3common as sc
from litestream.backends.oss import OSSReplicaClient, parse_list_v2
from litestream.backends.oss import parse_host as oss_parse_host
from litestream.backends.oss import settings_from_config as oss_settings
from litestream.backends.s3 import (
    S3ReplicaClient,
    S3Settings,
    _add_content_md5,
    ensure_endpoint_scheme,
    is_gcs,
    is_minio_like,
    parse_host,
    settings_from_config,
)
from litestream.config import ConfigError
from tests.servers import replica_config

KEY32 = base64.b64encode(bytes(range(32))).decode()
KEY32_MD5 = base64.b64encode(hashlib.md5(bytes(range(32))).digest()).decode()


def s3(**mapping) -> S3Settings:
    return settings_from_config(replica_config({"type": "s3", **{k.replace("_", "-"): v for k, v in mapping.items()}}))


def s3url(url: str, **mapping) -> S3Settings:
    return s3(url=url, **mapping)


def s3_error(**mapping) -> str:
    with pytest.raises(ConfigError) as e:
        s3(**mapping)
    return str(e.value)


# --------------------------------------------------------------------------------------------- errors

def test_url_with_path_or_bucket_is_an_error():
    assert s3_error(url="s3://b/p", path="x") == "cannot specify url & path for s3 replica"
    assert s3_error(url="s3://b/p", bucket="x") == "cannot specify url & bucket for s3 replica"


def test_bucket_required():
    assert s3_error(path="x") == "bucket required for s3 replica"
    # A bare host:port names no bucket.
    assert s3_error(url="s3://localhost:9000/db") == "bucket required for s3 replica"


def test_global_bucket_with_replica_url_is_the_reference_error():
    from litestream.config import apply_defaults, parse_config

    text = "bucket: b\ndbs:\n  - path: /tmp/x.db\n    replica:\n      url: s3://other/db\n"
    cfg = apply_defaults(parse_config(text, "<t>"))
    with pytest.raises(ConfigError) as e:
        new_replica_client(cfg.dbs[0].replica_configs()[0])
    assert str(e.value) == "cannot specify url & bucket for s3 replica"


@pytest.mark.parametrize("query,key,raw", [("partSize=x", "partSize", "x"), ("part-size=0", "part-size", "0"),
                                           ("concurrency=-1", "concurrency", "-1"),
                                           ("concurrency=1.5", "concurrency", "1.5")])
def test_bad_int_query(query, key, raw):
    assert s3_error(url=f"s3://b/db?{query}") == \
        f'invalid value for query parameter "{key}": "{raw}" (must be a positive integer)'


def test_bad_access_point_arn():
    assert s3_error(url="s3://arn:aws:s3:::bucket/db") == "invalid s3 access point arn: arn:aws:s3:::bucket/db"
    assert s3_error(url="s3://arn:aws:s3:us-east-1:1:accesspoint/") == \
        "invalid s3 access point arn: arn:aws:s3:us-east-1:1:accesspoint/"


# ------------------------------------------------------------------------------------------ URL forms

def test_plain_bucket_and_prefix():
    s = s3url("s3://mybucket/some/prefix")
    assert (s.bucket, s.path, s.region, s.endpoint, s.force_path_style) == ("mybucket", "some/prefix", "", "", False)
    assert s3url("S3://mybucket/a//b/../c/").path == "a/c"


def test_bucket_root_paths_keep_the_reference_quirk():
    # path.Clean("") is "." (keys "./0000/..."), path.Clean("/") trimmed is "" (keys "/0000/...").
    assert s3url("s3://mybucket").path == "."
    assert s3url("s3://mybucket/").path == ""
    assert s3(bucket="mybucket").path == ""
    assert sc.ltx_key(".", 0, 1, 1) == "./0000/0000000000000001-0000000000000001.ltx"
    assert sc.ltx_key("", 9, 1, 2) == "/0009/0000000000000001-0000000000000002.ltx"


@pytest.mark.parametrize("host,expect", [
    ("b.s3.us-west-2.amazonaws.com", ("b", "us-west-2", "", False)),
    ("b.s3.amazonaws.com", ("b", "", "", False)),
    ("my.dotted.bucket.s3.eu-west-1.amazonaws.com", ("my.dotted.bucket", "eu-west-1", "", False)),
    ("sp.nyc3.digitaloceanspaces.com", ("sp", "nyc3", "https://nyc3.digitaloceanspaces.com", False)),
    ("b2b.s3.us-west-004.backblazeb2.com", ("b2b", "us-west-004", "https://s3.us-west-004.backblazeb2.com", True)),
    ("fb.s3.filebase.com", ("fb", "", "s3.filebase.com", False)),
    ("sw.s3.fr-par.scw.cloud", ("sw", "fr-par", "s3.fr-par.scw.cloud", False)),
    ("bucket.localhost:9000", ("bucket", "us-east-1", "http://localhost:9000", True)),
    # The first dot splits: an IP with a port is read as bucket "127" (as the reference reads it).
    ("127.0.0.1:9000", ("127", "us-east-1", "http://0.0.1:9000", True)),
    ("minio:9000", ("", "", "http://minio:9000", True)),
    ("plainbucket", ("plainbucket", "", "", False)),
])
def test_parse_host(host, expect):
    assert parse_host(host) == expect


def test_provider_hosts_through_the_builder():
    s = s3url("s3://b2b.s3.us-west-004.backblazeb2.com/db")
    assert (s.bucket, s.region, s.endpoint, s.force_path_style) == \
        ("b2b", "us-west-004", "https://s3.us-west-004.backblazeb2.com", True)
    s = s3url("s3://fb.s3.filebase.com/db")  # Filebase: path style by provider default
    assert (s.endpoint, s.force_path_style) == ("s3.filebase.com", True)
    s = s3url("s3://sp.nyc3.digitaloceanspaces.com/db")
    assert (s.endpoint, s.force_path_style) == ("https://nyc3.digitaloceanspaces.com", False)
    s = s3url("s3://bucket.localhost:9000/db")
    assert (s.bucket, s.region, s.endpoint, s.force_path_style) == ("bucket", "us-east-1", "http://localhost:9000",
                                                                     True)


def test_access_point_arn():
    arn = "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap"
    s = s3url(f"s3://{arn}/db/x?storageClass=STANDARD_IA")
    assert (s.bucket, s.region, s.path, s.storage_class) == (arn, "us-west-2", "db/x", "STANDARD_IA")
    assert s3url(f"s3://{arn}").path == ""
    assert replica_config({"url": f"s3://{arn}/db"}).replica_type() == "s3"
    assert s3url(f"s3://{arn}/db", region="eu-west-1").region == "eu-west-1"  # config wins


def test_endpoint_query_gets_a_scheme_and_path_style():
    s = s3url("s3://b/db?endpoint=127.0.0.1:9000")
    assert (s.endpoint, s.force_path_style, s.region) == ("http://127.0.0.1:9000", True, "")
    assert s3url("s3://b/db?endpoint=storage.example.com").endpoint == "https://storage.example.com"
    assert s3url("s3://b/db?endpoint=nas.local").endpoint == "http://nas.local"
    assert s3url("s3://b/db?endpoint=192.168.1.5:9000").endpoint == "http://192.168.1.5:9000"
    assert s3url("s3://b/db?endpoint=https://x.example.com").endpoint == "https://x.example.com"
    # forcePathStyle=false is honoured for a host without a port...
    assert s3url("s3://b/db?endpoint=storage.example.com&forcePathStyle=false").force_path_style is False
    # ...but a host:port endpoint is "MinIO-like", which forces path style whatever the URL says.
    assert s3url("s3://b/db?endpoint=127.0.0.1:9000&forcePathStyle=false").force_path_style is True
    # Nor does a config `force-path-style: false` beat a URL endpoint's path style: the reference only
    # lets the URL turn it on (`if !forcePathStyle { forcePathStyle = uforcePathStyle }`).
    assert s3url("s3://b/db?endpoint=127.0.0.1:9000", force_path_style=False).force_path_style is True
    assert s3url("s3://b/db", force_path_style=False).force_path_style is False


@pytest.mark.parametrize("endpoint,expect", [
    ("localhost:9000", "http://localhost:9000"), ("10.1.2.3", "http://10.1.2.3"),
    ("172.20.0.1:9000", "http://172.20.0.1:9000"), ("172.32.0.1", "https://172.32.0.1"),
    ("minio.localhost", "http://minio.localhost"), ("s3.example.com", "https://s3.example.com"), ("", "")])
def test_ensure_endpoint_scheme(endpoint, expect):
    assert ensure_endpoint_scheme(endpoint) == expect


def test_config_keys_beat_url_parts():
    s = s3url("s3://b.s3.us-west-2.amazonaws.com/db?region=eu-central-1&endpoint=a.example.com&storageClass=X"
              "&signPayload=false&requireContentMD5=false", region="ap-south-1", endpoint="https://c.example.com",
              storage_class="GLACIER", sign_payload=True, require_content_md5=True)
    assert (s.region, s.endpoint, s.storage_class, s.sign_payload, s.require_content_md5) == \
        ("ap-south-1", "https://c.example.com", "GLACIER", True, True)
    assert s3url("s3://b.s3.us-west-2.amazonaws.com/db?region=eu-central-1").region == "eu-central-1"


def test_query_flags():
    s = s3url("s3://b/db?skipVerify=true&signPayload=no&require-content-md5=0&storage-class=ONEZONE_IA"
              "&part-size=10485760&concurrency=3")
    assert (s.skip_verify, s.sign_payload, s.require_content_md5, s.storage_class, s.part_size, s.concurrency) == \
        (True, False, False, "ONEZONE_IA", 10485760, 3)
    # The config builder reads skipVerify in camelCase only, and only "true" is true.
    assert s3url("s3://b/db?skip-verify=true").skip_verify is False
    assert s3url("s3://b/db?skipVerify=1").skip_verify is False
    # A bool query value that is not a bool counts as set, to false.
    assert s3url("s3://b/db?signPayload=maybe").sign_payload is False
    # Go's Query().Get: the first of repeated keys.
    assert s3url("s3://b/db?region=one&region=two").region == "one"


def test_defaults():
    s = s3(bucket="b", path="db")
    assert (s.sign_payload, s.require_content_md5, s.sign_accept_encoding, s.force_path_style, s.part_size,
            s.concurrency, s.skip_verify) == (True, True, True, False, 0, 0, False)
    # A config endpoint means path style (only AWS uses virtual hosts), unless the key says otherwise.
    assert s3(bucket="b", endpoint="minio.example.com").force_path_style is True
    assert s3(bucket="b", endpoint="minio.example.com", force_path_style=False).force_path_style is False
    assert s3(bucket="b", sign_accept_encoding=False).sign_accept_encoding is False


def test_provider_defaults():
    assert s3(bucket="b", endpoint="https://fly.storage.tigris.dev").require_content_md5 is False
    assert s3(bucket="b", endpoint="https://fly.storage.tigris.dev", require_content_md5=True).require_content_md5
    assert s3(bucket="b", endpoint="https://acct.r2.cloudflarestorage.com").concurrency == 2
    assert s3(bucket="b", endpoint="https://acct.r2.cloudflarestorage.com", concurrency=8).concurrency == 8
    assert s3url("s3://b/db?endpoint=https://acct.r2.cloudflarestorage.com&concurrency=4").concurrency == 4
    assert s3url("s3://b/db?endpoint=https://x.supabase.co&forcePathStyle=false").force_path_style is True
    assert is_minio_like("http://127.0.0.1:9000") and not is_minio_like("https://s3.amazonaws.com:443")
    assert not is_minio_like("https://x.r2.cloudflarestorage.com:443")
    assert is_gcs("https://storage.googleapis.com") and not is_gcs("https://www.googleapis.com")


def test_part_size_and_concurrency_url_then_config():
    s = s3url("s3://b/db?partSize=6291456&concurrency=2", part_size="8MiB", concurrency=7)
    assert (s.part_size, s.concurrency) == (8 << 20, 7)
    assert s3url("s3://b/db?partSize=6291456").part_size == 6291456


def test_config_endpoint_without_scheme_gets_https():
    c = S3ReplicaClient(s3(bucket="b", endpoint="minio.example.com:9000"))
    assert c._endpoint_url() == "https://minio.example.com:9000"
    assert S3ReplicaClient(s3(bucket="b", endpoint="http://x:1"))._endpoint_url() == "http://x:1"
    assert S3ReplicaClient(s3(bucket="b"))._endpoint_url() is None


# ---------------------------------------------------------------------------------------------- SSE

def test_sse_c_key():
    s = s3(bucket="b", sse_customer_key=KEY32)
    assert (s.sse_customer_algorithm, s.sse_customer_key, s.sse_customer_key_md5) == ("AES256", KEY32, KEY32_MD5)
    assert KEY32 not in repr(s)


def test_sse_c_key_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k").write_text(f"  {KEY32}\n")
    assert s3(bucket="b", sse_customer_key_path="~/k").sse_customer_key == KEY32
    assert s3_error(bucket="b", sse_customer_key_path="/nonexistent/k") == \
        'cannot read sse-customer-key-path "/nonexistent/k": open /nonexistent/k: no such file or directory'


def test_sse_errors():
    assert s3_error(bucket="b", sse_customer_key=KEY32, sse_kms_key_id="alias/x") == \
        "s3: cannot use both sse-customer-key and sse-kms-key-id; they are mutually exclusive"
    assert s3_error(bucket="b", sse_customer_key=KEY32, sse_customer_algorithm="aws:kms") == \
        's3: sse-customer-algorithm must be AES256, got "aws:kms"'
    assert s3_error(bucket="b", sse_customer_key="not*base64") == \
        "s3: sse-customer-key must be valid base64: illegal base64 data at input byte 3"
    assert s3_error(bucket="b", sse_customer_key=base64.b64encode(b"short").decode()) == \
        "s3: sse-customer-key must be 256-bit (32 bytes) when decoded, got 5 bytes"
    assert s3_error(bucket="b", sse_customer_key=KEY32, endpoint="http://s3.example.com") == \
        "s3: sse-customer-key requires HTTPS endpoint (HTTP only allowed for localhost/private networks)"
    for ok in ("http://127.0.0.1:9000", "http://localhost:9000", "http://10.0.0.5", "https://s3.example.com"):
        assert s3(bucket="b", sse_customer_key=KEY32, endpoint=ok).sse_customer_key == KEY32


def test_sse_kms_and_put_args():
    c = S3ReplicaClient(s3(bucket="b", sse_kms_key_id="alias/k", storage_class="STANDARD_IA"))
    assert c._put_args(1_764_000_000_123) == {
        "Metadata": {"litestream-timestamp": "2025-11-24T16:00:00.123Z"}, "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/k"}
    c = S3ReplicaClient(s3(bucket="b", sse_customer_key=KEY32))
    args = c._put_args(0)
    assert (args["SSECustomerAlgorithm"], args["SSECustomerKey"], args["SSECustomerKeyMD5"]) == \
        ("AES256", KEY32, KEY32_MD5)


# ------------------------------------------------------------------------------------ layout, metadata

def test_level_directories_are_hex():
    assert sc.ltx_key("p", 0, 1, 1) == "p/0000/0000000000000001-0000000000000001.ltx"
    assert sc.level_prefix("p", 9) == "p/0009/"
    assert sc.level_prefix("p", 10) == "p/000a/"


@pytest.mark.parametrize("ms,text", [(1_764_000_000_123, "2025-11-24T16:00:00.123Z"),
                                     (1_764_000_000_000, "2025-11-24T16:00:00Z"),
                                     (1_795_643_741_360, "2026-11-25T21:55:41.36Z")])
def test_timestamp_metadata_is_go_rfc3339nano(ms, text):
    assert sc.format_timestamp(ms) == text
    assert sc.parse_timestamp(text) == ms * 1_000_000


def test_timestamp_metadata_parse():
    assert sc.parse_timestamp("2025-11-24T17:00:00.123456789+01:00") == 1_764_000_000_123_456_789
    assert sc.parse_timestamp("yesterday") is None and sc.parse_timestamp(None) is None


def test_v3_layout_uses_path_join():
    assert sc.v3_prefix(".") == "generations/"
    assert sc.v3_prefix("") == "generations/"
    assert sc.v3_prefix("a/b", "0123456789abcdef", "wal") == "a/b/generations/0123456789abcdef/wal/"
    assert sc.go_join("db", "generations/g/snapshots/00000001.snapshot.lz4") == \
        "db/generations/g/snapshots/00000001.snapshot.lz4"


def test_part_size_below_five_mib_fails_every_upload():
    c = new_replica_client(replica_config({"type": "s3", "bucket": "b", "path": "db", "part-size": "5MB",
                                           "endpoint": "http://127.0.0.1:1"}))
    with pytest.raises(BackendError) as e:
        c.write_ltx_file(0, 1, 1, Source.of(io.BytesIO(b"x" * 100), 100), 0)
    assert str(e.value) == ("s3: upload to db/0000/0000000000000001-0000000000000001.ltx: part size must be at "
                            "least 5242880 bytes")


def test_importing_the_backend_loads_no_sdk():
    code = ("import sys, litestream.backends.s3, litestream.backends.oss; "
            "print(any(m in sys.modules for m in ('boto3', 'botocore', 'oss2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------- SDK error mapping

def _client_error(code: str, status: int, message: str = "msg", op: str = "PutObject"):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       op)


@pytest.mark.parametrize("code,status,cls", [
    ("NoSuchKey", 404, NotFoundError), ("404", 404, NotFoundError), ("NoSuchBucket", 404, NotFoundError),
    ("SignatureDoesNotMatch", 403, AuthError), ("InvalidAccessKeyId", 403, AuthError), ("403", 403, AuthError),
    ("AccessDenied", 403, AuthError), ("SlowDown", 503, BackendError), ("InternalError", 500, BackendError)])
def test_error_mapping(code, status, cls):
    c = S3ReplicaClient(s3(bucket="bkt", access_key_id="AKID", secret_access_key="TOPSECRETVALUE"))
    with pytest.raises(BackendError) as e, c._errors("put", "db/0000/x.ltx"):
        raise _client_error(code, status, "line one\nline two")
    assert type(e.value) is cls
    text = str(e.value)
    assert "\n" not in text and "TOPSECRETVALUE" not in text and "s3://bkt/db/0000/x.ltx" in text
    assert text.startswith("s3: put ")


def test_network_errors_are_backend_errors():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    c = S3ReplicaClient(s3(bucket="bkt"))
    with pytest.raises(BackendError) as e, c._errors("list", "db/"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert type(e.value) is BackendError and "127.0.0.1:1" in str(e.value)
    with pytest.raises(AuthError, match="Unable to locate credentials"), c._errors("list", "db/"):
        raise NoCredentialsError()


def test_content_md5_hook():
    class Req:
        def __init__(self, body):
            self.body, self.headers = body, {}

    r = Req(b"<Delete><Object><Key>a</Key></Object></Delete>")
    _add_content_md5(r)
    assert r.headers["Content-MD5"] == base64.b64encode(hashlib.md5(r.body).digest()).decode()


def test_region_lookup_uses_get_bucket_location():
    import boto3
    from botocore.stub import Stubber

    def answer(location):
        real = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b").client(
            "s3", region_name="us-east-1")
        stub = Stubber(real)
        stub.add_response("get_bucket_location", {"LocationConstraint": location} if location else {},
                          {"Bucket": "bkt"})
        stub.activate()

        class Session:
            def client(self, *a, **kw):
                return real

        return S3ReplicaClient(s3(bucket="bkt"))._find_region(Session())

    assert answer("eu-central-1") == "eu-central-1"
    assert answer("") == "us-east-1"
    assert answer("EU") == "eu-west-1"


def aws_home(home, monkeypatch) -> None:
    """No AWS settings of this machine; ~/.aws/credentials as `aws configure` writes it, with a second
    profile. Instance metadata is off so nothing leaves the machine."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
              "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(home))
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = FILESECRET\n\n"
        "[other]\naws_access_key_id = OTHERKEY\naws_secret_access_key = OTHERSECRET\n")


def test_credentials_default_chain(tmp_path, monkeypatch):
    """No keys in the config: the SDK's chain, environment first, then ~/.aws/credentials as `aws configure`
    writes it (and a named profile). Instance metadata is off so nothing leaves the machine."""
    aws_home(tmp_path, monkeypatch)
    c = S3ReplicaClient(s3(bucket="b"))
    assert c._session().get_credentials().access_key == "FILEKEY"
    monkeypatch.setenv("AWS_PROFILE", "other")
    assert c._session().get_credentials().access_key == "OTHERKEY"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    monkeypatch.delenv("AWS_PROFILE")
    assert c._session().get_credentials().access_key == "ENVKEY"
    c = S3ReplicaClient(s3(bucket="b", access_key_id="CFGKEY", secret_access_key="CFGSECRET"))
    assert c._session().get_credentials().access_key == "CFGKEY"


def test_empty_aws_profile_is_unset_and_a_missing_one_is_one_line(tmp_path, monkeypatch):
    """AWS_PROFILE="" means no profile (as the Go SDK reads it), not a profile named ""; a profile that does
    not exist is a BackendError naming it (the replica retries; no botocore traceback)."""
    aws_home(tmp_path, monkeypatch)
    monkeypatch.setenv("AWS_PROFILE", "")
    c = S3ReplicaClient(s3(bucket="b", region="us-east-1"))
    assert c._session().get_credentials().access_key == "FILEKEY"
    assert c._s3() is not None
    monkeypatch.setenv("AWS_PROFILE", "nope")
    c = S3ReplicaClient(s3(bucket="b", region="us-east-1"))
    with pytest.raises(BackendError) as ei:
        c._s3()
    assert str(ei.value) == "s3: create client for s3://b/: The config profile (nope) could not be found"


def test_litestream_env_credentials_are_copied_by_the_cli(monkeypatch):
    code = ("import os; from litestream.cli import main; main._copy_credentials_env(); "
            "print(os.environ.get('AWS_ACCESS_KEY_ID'), os.environ.get('AWS_SECRET_ACCESS_KEY'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    env.update(LITESTREAM_ACCESS_KEY_ID="LK", LITESTREAM_SECRET_ACCESS_KEY="LS")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["LK", "LS"]


# ---------------------------------------------------------------------------------------------- OSS

def oss(**mapping):
    return oss_settings(replica_config({"type": "oss", **{k.replace("_", "-"): v for k, v in mapping.items()}}))


def test_oss_errors():
    for mapping, msg in (({"url": "oss://b/p", "path": "x"}, "cannot specify url & path for oss replica"),
                         ({"url": "oss://b/p", "bucket": "x"}, "cannot specify url & bucket for oss replica"),
                         ({"path": "x"}, "bucket required for oss replica")):
        with pytest.raises(ConfigError) as e:
            oss(**mapping)
        assert str(e.value) == msg


@pytest.mark.parametrize("host,expect", [("b.oss-cn-beijing.aliyuncs.com", ("b", "cn-beijing")),
                                         ("b.oss-cn-shanghai-internal.aliyuncs.com", ("b", "cn-shanghai")),
                                         ("oss-cn-beijing.aliyuncs.com", ("", "cn-beijing")),
                                         ("mybucket", ("mybucket", ""))])
def test_oss_parse_host(host, expect):
    assert oss_parse_host(host) == expect


def test_oss_settings():
    s = oss(url="oss://b.oss-cn-beijing.aliyuncs.com/db/x")
    assert (s.bucket, s.path, s.region, s.endpoint_url()) == ("b", "db/x", "cn-beijing",
                                                              "https://oss-cn-beijing.aliyuncs.com")
    s = oss(url="oss://b", region="cn-shenzhen", part_size="8MiB", concurrency=4)
    assert (s.path, s.region, s.part_size, s.concurrency) == (".", "cn-shenzhen", 8 << 20, 4)
    assert oss(bucket="b").endpoint_url() == "https://oss-cn-hangzhou.aliyuncs.com"
    assert oss(bucket="b", endpoint="oss-cn-hongkong.aliyuncs.com").endpoint_url() == \
        "https://oss-cn-hongkong.aliyuncs.com"
    s = oss(bucket="b", access_key_id="AK", secret_access_key="VERYSECRET")
    assert "VERYSECRET" not in repr(s) and "VERYSECRET" not in repr(OSSReplicaClient(s))


@pytest.mark.parametrize("ns", ["", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'])
def test_oss_listing_parser_takes_both_xml_forms(ns):
    body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult{ns}><Name>b</Name><Prefix>p/</Prefix>'
            "<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>"
            "<Contents><Key>p/0000/0000000000000001-0000000000000001.ltx</Key>"
            "<LastModified>2025-11-24T16:00:00.000Z</LastModified><ETag>\"x\"</ETag><Size>42</Size></Contents>"
            "<CommonPrefixes><Prefix>p/x/</Prefix></CommonPrefixes></ListBucketResult>").encode()
    objects, prefixes, truncated, token = parse_list_v2(body)
    assert objects == [("p/0000/0000000000000001-0000000000000001.ltx", 42, 1_764_000_000_000_000_000)]
    assert (prefixes, truncated, token) == (["p/x/"], True, "tok")


def test_oss_part_size_minimum():
    c = new_replica_client(replica_config({"type": "oss", "bucket": "b", "path": "db", "part-size": "64KiB",
                                           "endpoint": "http://127.0.0.1:1"}))
    with pytest.raises(BackendError, match="part size must be at least 102400 bytes"):
        c.write_ltx_file(0, 1, 1, Source.of(io.BytesIO(b"x"), 1), 0)


# ------------------------------------------------------------- the URL factory (`register`)

def test_url_factory_reads_what_only_register_reads(monkeypatch):
    from litestream.backends import client_from_url

    key = base64.b64encode(b"k" * 32).decode()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LITESTREAM_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("LITESTREAM_SECRET_ACCESS_KEY", "SECRET")
    monkeypatch.setenv("LITESTREAM_S3_ENDPOINT", "127.0.0.1:9000")
    s = client_from_url(f"s3://bkt/a/b?skip-verify=true&sse-customer-key={key}&storage-class=STANDARD_IA").settings
    assert (s.bucket, s.path, s.endpoint, s.force_path_style) == ("bkt", "a/b", "http://127.0.0.1:9000", True)
    assert s.skip_verify and s.storage_class == "STANDARD_IA"
    assert s.sse_customer_algorithm == "AES256" and s.sse_customer_key_md5
    assert (s.access_key_id, s.secret_access_key) == ("AKID", "SECRET")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AWSID")
    s = client_from_url("s3://bkt/p?endpoint=minio.local:9000&force-path-style=false").settings
    assert s.endpoint == "http://minio.local:9000" and not s.force_path_style and s.access_key_id == "AWSID"
    # The config builder ignores LITESTREAM_S3_ENDPOINT and the hyphen aliases, as the reference.
    c = new_replica_client(__import__("litestream.config", fromlist=["ReplicaConfig"]).ReplicaConfig(
        url="s3://bkt/p?skip-verify=true"))
    assert c.settings.endpoint == "" and not c.settings.skip_verify


@pytest.mark.parametrize(("url", "message"), [
    ("bogus://x/y", 'unsupported replica URL scheme: "bogus"'),
    ("s3://localhost:9000/p", "bucket required for s3 replica URL"),
    ("s3://bkt/p?sse-customer-key=short", "s3: sse-customer-key must be"),
    ("s3://bkt/p?partSize=x", 'invalid value for query parameter "partSize"'),
])
def test_url_factory_errors(url, message):
    from litestream.backends import client_from_url

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        client_from_url(url)
