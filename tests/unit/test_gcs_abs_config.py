"""The gs and abs backends without a server: how config keys and URLs become a client (messages checked
against the reference binary, `litestream ltx -config FILE DB`), the object layout, credentials and
their priority, how SDK failures are classified, and that the SDKs load only when a replica is used."""

from __future__ import annotations

import base64
import calendar
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from litestream.backends import AuthError, BackendError, NotFoundError, gcs
from litestream.backends import abs as absb
from tests.unit.configutil import client, error

KEY = base64.b64encode(b"k" * 64).decode()


def _ns(utc: str, ms: int = 0) -> int:
    return calendar.timegm(time.strptime(utc, "%Y-%m-%dT%H:%M:%S")) * 1_000_000_000 + ms * 1_000_000


# ------------------------------------------------------------------------------------------------ gs


def test_gs_url_and_keys():
    c = client(url="gs://my-bucket/some/path")
    assert (c.type, c.bucket_name, c.path) == ("gs", "my-bucket", "some/path")
    c = client(url="gs://my-bucket")
    assert (c.bucket_name, c.path) == ("my-bucket", ".")  # path.Clean(""), as the reference
    c = client(type="gs", bucket="b", path="p/q")
    assert (c.bucket_name, c.path) == ("b", "p/q")


@pytest.mark.parametrize(("mapping", "msg"), [
    ({"type": "gs", "path": "x"}, "bucket required for gs replica"),
    ({"url": "gs:///x"}, "bucket required for gs replica"),
    ({"url": "gs://b/x", "path": "y"}, "cannot specify url & path for gs replica"),
    ({"url": "gs://b/x", "bucket": "y"}, "cannot specify url & bucket for gs replica"),
])
def test_gs_errors(mapping, msg):
    assert error(**mapping) == msg


def test_gcs_scheme_is_not_gs():
    assert error(url="gcs://b/x") == 'unknown replica type in config: "gcs"'


def test_layout_is_path_join():
    # Go's path.Join: cleaned, a leading slash kept, "." and "" at the root.
    assert gcs.ltx_key("a/b", 0, 1, 2) == "a/b/ltx/0/0000000000000001-0000000000000002.ltx"
    assert gcs.ltx_key(".", 9, 1, 255) == "ltx/9/0000000000000001-00000000000000ff.ltx"
    assert gcs.ltx_key("", 1, 3, 3) == "ltx/1/0000000000000003-0000000000000003.ltx"
    assert gcs.ltx_key("/x//y/", 2, 1, 1) == "/x/y/ltx/2/0000000000000001-0000000000000001.ltx"
    assert gcs.level_dir("a", 3) == "a/ltx/3"


def test_delete_all_prefix():
    assert gcs.replica_prefix("a/b") == "a/b/"
    assert gcs.replica_prefix("a/b/") == "a/b/"
    # At the root only litestream's part, never the whole bucket or container.
    assert gcs.replica_prefix(".") == "ltx/"
    assert gcs.replica_prefix("") == "ltx/"


def test_emulator_host_forms(monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert gcs.emulator_endpoint() is None
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")  # the Go SDK's form
    assert gcs.emulator_endpoint() == "http://127.0.0.1:4443"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "https://emu:9000")
    assert gcs.emulator_endpoint() == "https://emu:9000"


def test_gs_error_classes():
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    c = gcs.GCSReplicaClient("bkt", "p")
    e = c._error("read", gexc.NotFound("No such object: bkt/p/x"), "p/x")
    assert isinstance(e, NotFoundError) and "'bkt'" in str(e)
    for exc in (gexc.Forbidden("caller does not have storage.objects.create access"),
                gexc.Unauthorized("Invalid Credentials")):
        e = c._error("write", exc, "p/x")
        assert type(e) is AuthError and "bucket 'bkt'" in str(e) and "write 'p/x'" in str(e)
    assert type(c._error("create client", DefaultCredentialsError("none found"))) is AuthError
    e = c._error("list", gexc.ServiceUnavailable("backend\nerror\n" + "x" * 1000))
    assert type(e) is BackendError and "\n" not in str(e) and len(str(e)) < 400


def test_gs_created_at():
    meta = SimpleNamespace(metadata={"litestream-timestamp": "2026-11-25T21:55:41.36Z"}, time_created=None)
    assert gcs.created_at_ns(meta) == _ns('2026-11-25T21:55:41', 360)
    from datetime import UTC, datetime

    made = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    for m in ({}, {"litestream-timestamp": "garbage"}, None):
        assert gcs.created_at_ns(SimpleNamespace(metadata=m, time_created=made)) == _ns('2026-01-02T03:04:05', 6)


# ------------------------------------------------------------------------------------------------ abs


def test_abs_reference_url_form():
    c = client(url="abs://acct@container/some/path")
    assert (c.type, c.account_name, c.container, c.path) == ("abs", "acct", "container", "some/path")
    c = client(url="abs://container/p")
    assert (c.account_name, c.container, c.path) == ("", "container", "p")
    # account-name beats the URL's user part, as in the reference.
    c = client(url="abs://other@container/p", **{"account-name": "acct"})
    assert (c.account_name, c.container, c.path) == ("acct", "container", "p")
    c = client(url="abs://acct@container")
    assert (c.container, c.path) == ("container", ".")


def test_abs_migration_guide_url_form():
    # abs://<account>/<container>/<path> with account-name = the host: as the guide means it.
    c = client(url="abs://storage-account/container/app", **{"account-name": "storage-account",
                                                             "account-key": KEY})
    assert (c.account_name, c.container, c.path) == ("storage-account", "container", "app")
    c = client(url="abs://storage-account/container/a//b/", **{"account-name": "storage-account"})
    assert (c.container, c.path) == ("container", "a/b")
    c = client(url="abs://storage-account/container", **{"account-name": "storage-account"})
    assert (c.container, c.path) == ("container", "")
    # Only the host alone: nothing names another container, so the reference's reading stays.
    c = client(url="abs://storage-account", **{"account-name": "storage-account"})
    assert (c.container, c.path) == ("storage-account", ".")
    # A host that is not the configured account is a container, as in the reference.
    c = client(url="abs://container/app", **{"account-name": "storage-account"})
    assert (c.account_name, c.container, c.path) == ("storage-account", "container", "app")


def test_abs_keys():
    c = client(type="abs", bucket="c", path="p", endpoint="http://127.0.0.1:1/dev", **{"account-name": "dev"})
    assert (c.container, c.path, c.endpoint, c.account_name) == ("c", "p", "http://127.0.0.1:1/dev", "dev")


@pytest.mark.parametrize(("mapping", "msg"), [
    ({"type": "abs", "path": "x"}, "bucket required for abs replica"),
    ({"url": "abs:///x"}, "bucket required for abs replica"),
    ({"url": "abs://c/x", "path": "y"}, "cannot specify url & path for abs replica"),
    ({"url": "abs://c/x", "bucket": "y"}, "cannot specify url & bucket for abs replica"),
])
def test_abs_errors(mapping, msg):
    assert error(**mapping) == msg


def test_abs_account_name_rule():
    c = client(url="abs://c/x")
    with pytest.raises(BackendError) as e:
        c.init()
    assert str(e.value) == "abs: account name is required when endpoint is not specified"


def test_abs_bad_account_key_is_not_echoed():
    c = client(url="abs://acct@c/x", **{"account-key": "not base64!"})
    with pytest.raises(BackendError) as e:
        c.init()
    assert str(e.value) == ("abs: cannot create shared key credential: decode account key: illegal base64 "
                            "data at input byte 3")


def test_abs_credential_priority(monkeypatch):
    monkeypatch.delenv("LITESTREAM_AZURE_SAS_TOKEN", raising=False)
    monkeypatch.delenv("LITESTREAM_AZURE_ACCOUNT_KEY", raising=False)

    def cred(**kw):
        return absb.ABSReplicaClient("c", "p", account_name="acct", endpoint="http://e", **kw)._credential()

    # SAS > shared key; the leading "?" goes.
    assert cred(sas_token="?sv=1&sig=abc", account_key=KEY) == ("sv=1&sig=abc", "SAS token")
    assert cred(account_key=KEY) == ({"account_name": "acct", "account_key": KEY}, "shared key")
    monkeypatch.setenv("LITESTREAM_AZURE_ACCOUNT_KEY", KEY)
    assert cred()[1] == "shared key"
    monkeypatch.setenv("LITESTREAM_AZURE_SAS_TOKEN", "sv=2&sig=def")
    assert cred() == ("sv=2&sig=def", "SAS token")
    assert cred(sas_token="sv=3")[0] == "sv=3"  # the key wins over the environment
    monkeypatch.delenv("LITESTREAM_AZURE_SAS_TOKEN")
    monkeypatch.delenv("LITESTREAM_AZURE_ACCOUNT_KEY")
    # A key without an account name: the default chain, as the reference.
    c = absb.ABSReplicaClient("c", "p", account_key=KEY, endpoint="http://e")
    assert c._credential()[1] == "default credential chain"


def test_abs_error_classes_never_name_secrets():
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

    c = absb.ABSReplicaClient("cont", "p", account_name="acct", account_key=KEY, sas_token="sv=1&sig=S3CR3TSIG",
                              endpoint="http://e")

    def resp(status):
        return SimpleNamespace(status_code=status, reason="x", headers={}, text=lambda: "")

    e = ResourceNotFoundError(message="The specified blob does not exist.", response=None)
    e.status_code, e.error_code = 404, "BlobNotFound"
    assert isinstance(c._error("read", e, "p/k"), NotFoundError)
    e = ClientAuthenticationError(message=f"Server failed to authenticate.\nsig=S3CR3TSIG key {KEY}")
    e.status_code, e.error_code = 403, "AuthenticationFailed"
    got = c._error("write", e, "p/k")
    assert type(got) is AuthError
    assert str(got) == "abs: write 'p/k' in container 'cont': access denied (HTTP 403 AuthenticationFailed)"
    e = HttpResponseError(message=f"boom https://e/cont/x?sv=1&sig=S3CR3TSIG\nmore {KEY}")
    e.status_code, e.error_code = 500, "InternalError"
    got = c._error("list", e)
    assert type(got) is BackendError and "S3CR3TSIG" not in str(got) and KEY not in str(got)
    assert "\n" not in str(got)
    got = c._error("list", OSError("connection to https://e/cont?sv=1&sig=S3CR3TSIG failed"))
    assert "S3CR3TSIG" not in str(got) and "REDACTED" in str(got)
    # A SAS of another request (not the configured one) loses its signature all the same.
    got = c._error("list", OSError("GET https://e/cont?sv=9&sig=0THER&se=1 failed"))
    assert "0THER" not in str(got) and "sig=REDACTED&se=1" in str(got)
    assert KEY not in repr(c) and "S3CR3TSIG" not in repr(c)


def test_abs_created_at():
    from datetime import UTC, datetime

    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    p = SimpleNamespace(metadata={"litestreamtimestamp": "2026-11-25T21:55:41.36Z"}, creation_time=made)
    assert absb.created_at_ns(p) == _ns('2026-11-25T21:55:41', 360)
    p = SimpleNamespace(metadata={"LitestreamTimestamp": "2026-11-25T21:55:41Z"}, creation_time=made)
    assert absb.created_at_ns(p) == _ns('2026-11-25T21:55:41')
    assert absb.created_at_ns(SimpleNamespace(metadata=None, creation_time=made)) == _ns('2026-01-02T03:04:05')


# ------------------------------------------------------------------------------------------------ both


def test_modules_import_no_sdk():
    """`litestream version` (and building a client) never loads google-cloud-storage or azure."""
    code = ("import sys, litestream.backends.gcs, litestream.backends.abs\n"
            "from litestream.backends import new_replica_client\n"
            "from tests.servers import replica_config\n"
            "new_replica_client(replica_config({'url': 'gs://b/p'}))\n"
            "new_replica_client(replica_config({'url': 'abs://a@c/p'}))\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('google', 'azure', 'requests')]\n"
            "assert not bad, bad\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
