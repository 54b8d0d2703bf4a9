"""Wrong credentials while replicating (the guide's "permission denied when accessing new replica
locations"): one clear ERROR line naming the replica and the operation, not one per retry, and never the
secret; the database keeps replicating once the config is fixed."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.cliutil import Background, add_rows, make_db
from tests.servers import config_text

SECRET_KEYS = ("secret-access-key", "account-key", "password", "token", "sas-token")


def test_wrong_credentials_are_reported_once_without_the_secret(server, prefix, tmp_path):
    bad = server.bad_credentials(prefix)
    if bad is None:
        pytest.skip(f"{server.name} accepts any credentials")
    secrets = [str(bad[k]) for k in SECRET_KEYS if bad.get(k)] + [str(v) for k, v in server.replica(prefix).items()
                                                                   if k in SECRET_KEYS and v]
    db = make_db(tmp_path / "app.db", ["a0"])
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(config_text([(str(db), {**bad, "sync-interval": "100ms"})]))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=server.env)
    try:
        for i in range(4):
            add_rows(db, [f"a{i + 1}"])
            time.sleep(1)
    finally:
        bg.signal()
        bg.finish(60)
    logs = bg.stdout + bg.stderr
    denied = [ln for ln in logs.splitlines() if "replica access denied" in ln]
    assert len(denied) == 1, logs[-3000:]
    assert "level=ERROR" in denied[0] and f"replica={server.replica_type}" in denied[0]
    assert "Traceback" not in logs
    for s in secrets:
        assert s not in logs, "a secret reached the log"
    yaml.safe_load(cfg.read_text())
