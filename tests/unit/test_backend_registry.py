"""The backend registry: every replica type maps to a module that builds it, SDKs load only when a
replica of their type is used, and a missing SDK is one line naming the extra that installs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from litestream.backends import REGISTRY, new_replica_client
from litestream.backends.base import require_sdk
from litestream.config import REPLICA_TYPES, ConfigError, ReplicaConfig

SDKS = ("boto3", "botocore", "google", "azure", "nats", "paramiko", "httpx", "oss2")


def test_every_type_has_a_module_with_from_config():
    import importlib

    assert set(REGISTRY) == set(REPLICA_TYPES)
    for rtype, module in REGISTRY.items():
        assert callable(importlib.import_module(module).from_config), rtype


def test_missing_sdk_names_the_extra():
    with pytest.raises(ConfigError) as e:
        require_sdk("no_such_sdk_module", "s3", "s3")
    assert str(e.value) == ("s3 replicas need the no_such_sdk_module package, which is not installed: "
                            "pip install 'litestream-py[s3]'")


def test_unknown_type_is_the_references_error():
    with pytest.raises(ConfigError, match='unknown replica type in config: "ftp"'):
        new_replica_client(ReplicaConfig(type="ftp"))


@pytest.mark.parametrize("args", [["version"], ["restore", "-o", "{out}", "file://{replica}"]])
def test_version_and_file_restore_load_no_cloud_sdk(tmp_path, args):
    from tests.cliutil import make_db

    db = make_db(tmp_path / "app.db")
    replica = tmp_path / "replica"
    subprocess.run([sys.executable, "-m", "litestream", "replicate", "-once", str(db), f"file://{replica}"],
                   check=True, capture_output=True)
    argv = [a.format(out=tmp_path / "out.db", replica=replica) for a in args]
    code = ("import sys; from litestream.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})\n"
            "print('LOADED', loaded)")
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in p.stdout, p.stdout + p.stderr
