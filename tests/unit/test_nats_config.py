"""The nats backend without a server: how config keys and URLs become settings (messages checked against
the reference binary, `litestream ltx -config FILE DB`), defaults, auth precedence, the object-store
wire details (names, digests, ack subjects), how failures are classified, and that nats-py loads only
when a NATS replica is used."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, new_replica_client
from litestream.backends import nats as natsb
from litestream.config import ConfigError, ReplicaConfig, apply_defaults, parse_config
from tests.servers import replica_config


def settings(**mapping) -> natsb.NATSSettings:
    return natsb.settings_from_config(replica_config({"type": "nats", **mapping}))


def error(**mapping) -> str:
    with pytest.raises(ConfigError) as e:
        new_replica_client(replica_config({"type": "nats", **mapping}))
    return str(e.value)


# ------------------------------------------------------------------------------------------ URL, keys

def test_url_host_and_bucket():
    s = settings(url="nats://nats.example.com:4333/my-app-bucket")
    assert (s.url, s.bucket, s.server) == ("nats://nats.example.com:4333", "my-app-bucket",
                                           "nats://nats.example.com:4333")
    assert settings(url="nats://localhost/b").server == "nats://localhost"
    assert settings(url="nats://[::1]:4222/b").server == "nats://[::1]:4222"
    assert settings(url="nats://u:p@NATS.example.com/b").server == "nats://NATS.example.com"


def test_default_server_without_a_host():
    s = settings(bucket="b")
    assert (s.url, s.server) == ("", "nats://127.0.0.1:4222")
    assert settings(url="nats:///b").server == "nats://127.0.0.1:4222"


def test_url_bucket_beats_the_key_and_the_key_fills_an_empty_one():
    assert settings(url="nats://h/from-url", bucket="from-key").bucket == "from-url"
    assert settings(url="nats://h/", bucket="from-key").bucket == "from-key"
    # `nats://h` has path "." (path.Clean("")): no bucket there, so the key applies (the reference would
    # take "." as the bucket and fail at init).
    assert settings(url="nats://h", bucket="from-key").bucket == "from-key"


def test_bucket_required_message():
    assert error() == "bucket required for NATS replica"
    assert error(url="nats://127.0.0.1:4222/") == "bucket required for NATS replica"
    assert error(url="nats://127.0.0.1:4222") == "bucket required for NATS replica"


def test_a_sub_path_is_no_bucket_name():
    assert error(url="nats://h/a/b") == ('invalid NATS bucket name "a/b": only letters, digits, "-" and "_" are '
                                         "allowed (the URL path is the whole bucket name; NATS replicas have "
                                         "no sub-path)")
    assert error(bucket="a.b").startswith('invalid NATS bucket name "a.b"')


def test_client_cert_and_key_together():
    msg = "client-cert and client-key must both be specified for mutual TLS authentication"
    assert error(url="nats://h/b", **{"client-cert": "c.pem"}) == msg
    assert error(url="nats://h/b", **{"client-key": "k.pem"}) == msg
    s = settings(url="nats://h/b", **{"client-cert": "c.pem", "client-key": "k.pem"})
    assert (s.client_cert, s.client_key) == ("c.pem", "k.pem")


def test_scheme_must_be_nats():
    with pytest.raises(ConfigError) as e:
        natsb.settings_from_config(ReplicaConfig(type="nats", url="s3://bucket/x"))
    assert str(e.value) == "invalid scheme for NATS replica: s3"


def test_defaults_and_connection_keys():
    s = settings(bucket="b")
    assert (s.max_reconnects, s.reconnect_wait_s, s.timeout_s, s.tls, s.root_cas) == (-1, 2.0, 10.0, False, [])
    s = settings(bucket="b", **{"max-reconnects": 5, "reconnect-wait": "500ms", "timeout": "3s", "tls": True,
                                "root-cas": ["/a.pem", "/b.pem"]})
    assert (s.max_reconnects, s.reconnect_wait_s, s.timeout_s, s.tls, s.root_cas) == (5, 0.5, 3.0, True,
                                                                                       ["/a.pem", "/b.pem"])
    assert new_replica_client(replica_config({"type": "nats", "bucket": "b", "timeout": "3s"})).timeout_s == 3.0
    assert error(bucket="b", timeout="0s") == "timeout must be positive for NATS replica"


def test_url_userinfo_fills_empty_username_and_password():
    s = settings(url="nats://alice:s%40cret@h:4222/b")
    assert (s.username, s.password, s.url) == ("alice", "s@cret", "nats://h:4222")
    s = settings(url="nats://alice:one@h/b", username="bob", password="two")
    assert (s.username, s.password) == ("bob", "two")


def test_auth_precedence():
    seed = "SUAPO6NT5DW45YBAS6SVRXLBQPNLCIGFPA2E6AAVFWDISFQU43LHUSPJ5Q"
    every = {"jwt": "eyJ", "seed": seed, "creds": "/x.creds", "nkey": seed, "username": "u", "password": "p",
             "token": "t"}
    order = ["jwt", "creds", "nkey", "user", "token"]
    keys = {"jwt": ("jwt", "seed"), "creds": ("creds",), "nkey": ("nkey",), "user": ("username", "password"),
            "token": ("token",)}
    m = dict(every)
    for method in order:
        assert settings(bucket="b", **m).auth_method() == method
        for k in keys[method]:
            m.pop(k)
    assert settings(bucket="b").auth_method() == ""
    # One half of a pair does not count.
    assert settings(bucket="b", jwt="eyJ", token="t").auth_method() == "token"
    assert settings(bucket="b", username="u", token="t").auth_method() == "token"


def test_nkey_must_be_a_seed():
    assert error(bucket="b", nkey="UDXT7DQFKOGXQV77YA23JKNLSMV776USM2ZRCUNF5WW5RIB3TSGRYXQG") == (
        "nkey must be an nkey seed (SU...) or a file holding one: a public key alone cannot sign the server's "
        "challenge (nats: nkey defined without a signature handler)")


def test_nkey_seed_file(tmp_path):
    f = tmp_path / "user.nk"
    f.write_text("SUAPO6NT5DW45YBAS6SVRXLBQPNLCIGFPA2E6AAVFWDISFQU43LHUSPJ5Q\n")
    assert settings(bucket="b", nkey=str(f)).auth_method() == "nkey"


def test_global_nats_keys_are_inherited(monkeypatch):
    text = ("username: u\npassword: ${NATS_PASSWORD}\ntimeout: 4s\n"
            "dbs:\n  - path: /tmp/x.db\n    replica:\n      type: nats\n      url: nats://h/b\n")
    monkeypatch.setenv("NATS_PASSWORD", "from-env")
    rc = apply_defaults(parse_config(text, "<test>")).dbs[0].replica
    s = natsb.settings_from_config(rc)
    assert (s.username, s.password, s.timeout_s) == ("u", "from-env", 4.0)


def test_repr_hides_secrets():
    s = settings(url="nats://u:pw-secret@h/b", token="tok-secret", jwt="jwt-secret", seed="seed-secret")
    text = repr(s) + repr(natsb.NATSReplicaClient(s))
    for secret in ("pw-secret", "tok-secret", "jwt-secret", "seed-secret"):
        assert secret not in text


def test_path_is_ignored():
    assert settings(url="nats://h/b", path="some/prefix").ignored_path == "some/prefix"


# -------------------------------------------------------------------------------------- wire details

def test_object_names_and_meta_subject_encoding():
    assert natsb.ltx_name(0, 1, 1) == "ltx/0/0000000000000001-0000000000000001.ltx"
    assert natsb.ltx_name(9, 1, 0x5F) == "ltx/9/0000000000000001-000000000000005f.ltx"
    # base64url with padding, as nats.go's encodeName.
    assert natsb.encode_name("ltx/0/a.ltx") == "bHR4LzAvYS5sdHg="
    assert natsb.encode_name("a?>") == "YT8-"


def test_digest_round_trip():
    import hashlib

    sha = hashlib.sha256(b"abc").digest()
    value = natsb.digest_value(sha)
    assert value == "SHA-256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0="
    assert natsb.decode_digest(value) == sha
    assert natsb.decode_digest("sha-256=" + value.split("=", 1)[1]) == sha
    assert natsb.decode_digest("nonsense") is None


def test_ack_subjects_v1_and_v2():
    assert natsb.parse_ack("$JS.ACK.OBJ_b.c1.1.12.3.1796230017168096795.7") == natsb.AckMeta(
        12, 3, 1796230017168096795, 7)
    assert natsb.parse_ack("$JS.ACK.hub.ACCHASH.OBJ_b.c1.1.12.3.1796230017168096795.7.xyz") == natsb.AckMeta(
        12, 3, 1796230017168096795, 7)
    assert natsb.parse_ack("_INBOX.abc") is None


def test_timestamp_header_values():
    assert natsb.header_value({"Litestream-Timestamp": ["2025-11-24T16:00:00.123Z"]}, "litestream-timestamp") == \
        "2025-11-24T16:00:00.123Z"
    assert natsb.header_value({"Litestream-Timestamp": "x"}, natsb.HEADER_TIMESTAMP) == "x"
    assert natsb.header_value(None, natsb.HEADER_TIMESTAMP) is None
    from litestream.backends import s3common as sc

    assert sc.format_timestamp(1_764_000_000_123) == "2025-11-24T16:00:00.123Z"


# ------------------------------------------------------------------------------------ classification

def test_errors_are_classified_in_one_line():
    import nats.errors as ne

    c = natsb.NATSReplicaClient(settings(url="nats://h:4222/b", username="u", password="pw-secret"))
    e = c._error("connect to", ne.Error("nats: 'Authorization Violation'"))
    assert isinstance(e, AuthError) and str(e) == ("nats: connect to nats://h:4222/b: authorization violation; "
                                                   "check the replica's credentials (username/password)")
    e = c._error("list", natsb._ApiError(404, 10059, "stream not found"))
    assert isinstance(e, NotFoundError) and "bucket not found" in str(e)
    e = c._error("get", natsb._ApiError(404, 10037, "no message found"), "ltx/0/x.ltx")
    assert isinstance(e, NotFoundError) and str(e).endswith("object ltx/0/x.ltx: object not found (no message found)")
    e = c._error("list", ne.NoRespondersError())
    assert type(e) is BackendError and "JetStream is not enabled" in str(e)
    e = c._error("list", natsb._ApiError(503, 10039, "jetstream not enabled for account"))
    assert type(e) is BackendError and "-js" in str(e)
    e = c._error("list", TimeoutError())
    assert type(e) is BackendError and "timed out after 10s" in str(e)
    # A timeout right after the server reported a permissions violation is a permission problem.
    c._perm_error = (time.monotonic(), "nats: permissions violation for publish to \"$JS.API.STREAM.INFO.OBJ_b\"")
    e = c._error("list", TimeoutError())
    assert isinstance(e, AuthError) and "permission denied" in str(e)
    for msg in map(str, (e,)):
        assert "\n" not in msg and "pw-secret" not in msg


def test_calls_on_a_closed_client_fail_cleanly():
    c = natsb.NATSReplicaClient(settings(bucket="b"))
    c.close()
    with pytest.raises(BackendError, match="client is closed"):
        c._call(asyncio.sleep(0), "list")


def test_connect_refused_is_one_line_and_fast():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    c = new_replica_client(replica_config({"type": "nats", "url": f"nats://127.0.0.1:{port}/b", "timeout": "2s"}))
    t0 = time.monotonic()
    try:
        with pytest.raises(BackendError) as e:
            c.init()
    finally:
        c.close()
    assert time.monotonic() - t0 < 3
    assert str(e.value) == f"nats: connect to nats://127.0.0.1:{port}/b: connection refused"


def test_nats_is_imported_only_when_used():
    code = ("import sys\n"
            "from litestream.backends import new_replica_client\n"
            "from litestream.config import ReplicaConfig\n"
            "c = new_replica_client(ReplicaConfig(type='nats', url='nats://127.0.0.1:1/b'))\n"
            "assert 'nats' not in sys.modules, 'nats imported by building the client'\n"
            "import litestream.cli.main\n"
            "assert 'nats' not in sys.modules\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "litestream", "version"], capture_output=True,
                       text=True)
    assert p.returncode == 0
    assert not [ln for ln in p.stderr.splitlines() if ln.rstrip().endswith((" nats", " nats.aio"))]
