"""The migration guide to 0.5, step by step with its own configs, against real servers: file -> S3,
S3 -> NATS, S3 -> GCS, S3 -> Azure, and the zero-downtime move with the old and new replica side by
side while the application writes, then the switch-over and a rollback to the old config.

Each config is the guide's, plus only what a server on 127.0.0.1 needs (an endpoint, the emulator's
account); credentials come the way the guide sets them up (`aws configure`'s ~/.aws/credentials,
${AZURE_STORAGE_KEY}, ${NATS_PASSWORD})."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.cliutil import Background, add_rows, make_db, read_rows
from tests.conftest import run_ours
from tests.interop.workload import integrity_ok
from tests.refbin import run_ref
from tests.servers import SERVER_MODULES, load

pytestmark = pytest.mark.interop


def server_of_type(servers, rtype: str):
    for name in SERVER_MODULES:
        if rtype == load(name).REPLICA_TYPE and name != "rclone_oss":
            return servers.get(name)
    pytest.fail(f"no test server for {rtype} replicas")


class App:
    """The application's database and the rows it committed."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = make_db(tmp_path / "app.db", ["row-0"])
        self.rows = ["row-0"]

    def write(self, n: int, pause: float = 0.1) -> None:
        for _ in range(n):
            v = f"row-{len(self.rows)}"
            add_rows(self.db, [v])
            self.rows.append(v)
            time.sleep(pause)


def write_config(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    yaml.safe_load(text)  # the test's own YAML is valid
    return p


def replicate_while_writing(tmp_path: Path, cfg: Path, app: App, env: dict, n: int = 15,
                            check=None) -> str:
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path, env=env)
    try:
        app.write(n)
        if check is not None:
            check()
        time.sleep(1.5)
    finally:
        bg.signal()
        rc = bg.finish(60)
    assert rc == 0, bg.stderr
    assert "level=ERROR" not in bg.stderr, bg.stderr
    return bg.stderr


def restores_to(tmp_path: Path, cfg: Path, app: App, env: dict, tag: str, ref: bool = True,
                rows: list[str] | None = None) -> None:
    """Ours (and the reference) restore exactly `rows` (default: every committed row)."""
    rows = app.rows if rows is None else rows
    runs = [("ours", run_ours)] + ([("reference", run_ref)] if ref else [])
    for who, run in runs:
        out = tmp_path / f"{tag}-{who}.db"
        p = run("restore", "-config", str(cfg), "-o", str(out), str(app.db), env=env, timeout=120)
        assert p.returncode == 0, f"{who}: {p.stderr}"
        assert read_rows(out) == rows, who
        assert integrity_ok(out), who


def aws_configure(tmp_path: Path, s3) -> dict:
    """What `aws configure` leaves: ~/.aws/credentials and ~/.aws/config; HOME points there."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {s3.env['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {s3.env['AWS_SECRET_ACCESS_KEY']}\n")
    (home / ".aws" / "config").write_text("[default]\nregion = us-east-1\n")
    return {"HOME": str(home)}


def s3_config(db: Path, s3, prefix: str) -> str:
    from tests.servers.seaweedfs import BUCKET

    return (f"dbs:\n  - path: {db}\n    replica:\n      url: s3://{BUCKET}/{prefix}/app\n"
            f"      region: us-east-1\n      endpoint: {s3.endpoint}\n")


def test_file_to_s3(servers, prefix, tmp_path):
    s3 = servers.get("seaweedfs")
    app = App(tmp_path)
    backup = tmp_path / "backup"
    old = write_config(tmp_path, "old.yml", f"dbs:\n  - path: {app.db}\n    replica:\n      type: file\n"
                                            f"      path: {backup}\n")
    replicate_while_writing(tmp_path, old, app, {})
    # Export: list the LTX files, restore the latest to a temporary file.
    p = run_ours("ltx", "-config", str(old), str(app.db))
    assert p.returncode == 0 and "0000000000000001" in p.stdout, p.stderr
    out = tmp_path / "app-backup.db"
    p = run_ours("restore", "-config", str(old), "-o", str(out), str(app.db))
    assert p.returncode == 0 and read_rows(out) == app.rows
    # Switch the config to S3 (credentials from `aws configure`), start again, verify.
    env = aws_configure(tmp_path, s3)
    new = write_config(tmp_path, "new.yml", s3_config(app.db, s3, prefix))
    replicate_while_writing(tmp_path, new, app, env)
    p = run_ours("databases", "-config", str(new), env=env)
    assert p.returncode == 0 and str(app.db) in p.stdout and "s3" in p.stdout, p.stdout + p.stderr
    restores_to(tmp_path, new, app, env, "s3")


def test_s3_to_gcs(servers, prefix, tmp_path):
    s3, gcs = servers.get("seaweedfs"), server_of_type(servers, "gs")
    app = App(tmp_path)
    env = {**aws_configure(tmp_path, s3), **gcs.env}
    old = write_config(tmp_path, "old.yml", s3_config(app.db, s3, prefix))
    replicate_while_writing(tmp_path, old, app, env)
    at_switch = list(app.rows)
    from tests.servers.fakegcs import BUCKET

    new = write_config(tmp_path, "new.yml", f"dbs:\n  - path: {app.db}\n    replica:\n"
                                            f"      url: gs://{BUCKET}/{prefix}/app\n")
    replicate_while_writing(tmp_path, new, app, env)
    restores_to(tmp_path, new, app, env, "gcs")
    restores_to(tmp_path, old, app, env, "s3-old", rows=at_switch)  # the old replica is kept as it was


def test_s3_to_azure_with_the_guides_url(servers, prefix, tmp_path):
    s3, abs_ = servers.get("seaweedfs"), server_of_type(servers, "abs")
    from tests.servers.azurite import ACCOUNT, CONTAINER, KEY

    app = App(tmp_path)
    env = {**aws_configure(tmp_path, s3), "AZURE_STORAGE_ACCOUNT": ACCOUNT, "AZURE_STORAGE_KEY": KEY}
    old = write_config(tmp_path, "old.yml", s3_config(app.db, s3, prefix))
    replicate_while_writing(tmp_path, old, app, env)
    new = write_config(tmp_path, "new.yml", (
        f"dbs:\n  - path: {app.db}\n    replica:\n      url: abs://{ACCOUNT}/{CONTAINER}/{prefix}/app\n"
        "      account-name: ${AZURE_STORAGE_ACCOUNT}\n      account-key: ${AZURE_STORAGE_KEY}\n"
        f"      endpoint: {abs_.endpoint}\n"))
    replicate_while_writing(tmp_path, new, app, env)
    restores_to(tmp_path, new, app, env, "abs", ref=False)  # the reference reads this URL form otherwise
    # The blobs are in container CONTAINER under <prefix>/app/, as the guide means.
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient(abs_.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY})
    names = [b.name for b in svc.get_container_client(CONTAINER).list_blobs(name_starts_with=f"{prefix}/app/")]
    assert any(n.startswith(f"{prefix}/app/ltx/0/") for n in names), names[:5]


@pytest.mark.parametrize("new_type", ["nats", "gs"])
def test_zero_downtime(servers, prefix, tmp_path, new_type):
    """Old (S3) and new replica side by side while the application writes, `databases` polled as `watch
    -n 5` would; both restore every row. Then the switch-over to the new one alone, and a rollback to
    the old config: the old replica catches up and restores every row too."""
    s3, new = servers.get("seaweedfs"), server_of_type(servers, new_type)
    app = App(tmp_path)
    env = {**aws_configure(tmp_path, s3), **new.env}
    new_replica = yaml.safe_dump(new.replica(f"{prefix}/new"), default_flow_style=False)
    new_entry = f"  - path: {app.db}\n    replica:\n" + "".join(f"      {ln}\n" for ln in new_replica.splitlines())
    old = write_config(tmp_path, "old.yml", s3_config(app.db, s3, prefix))
    both = write_config(tmp_path, "both.yml", s3_config(app.db, s3, prefix) + new_entry)
    only_new = write_config(tmp_path, "new.yml", "dbs:\n" + new_entry)

    replicate_while_writing(tmp_path, old, app, env, n=8)

    def watch_databases():
        for _ in range(3):
            p = run_ours("databases", "-config", str(both), env=env)
            assert p.returncode == 0 and p.stdout.count(str(app.db)) == 2, p.stdout + p.stderr
            app.write(3)

    replicate_while_writing(tmp_path, both, app, env, n=8, check=watch_databases)
    restores_to(tmp_path, old, app, env, "both-old")
    restores_to(tmp_path, only_new, app, env, "both-new")
    # Switch-over: the new replica alone.
    replicate_while_writing(tmp_path, only_new, app, env, n=10)
    restores_to(tmp_path, only_new, app, env, "switched")
    # Rollback to the old config: the old replica is behind and catches up.
    replicate_while_writing(tmp_path, old, app, env, n=10)
    restores_to(tmp_path, old, app, env, "rolled-back")


def test_s3_to_nats_with_the_guides_stream_step(servers, prefix, tmp_path):
    """The guide's order: S3 first; then `nats-server -js`, the new config (type nats, url, username,
    password ${NATS_PASSWORD}) and its `nats stream create BUCKET --subjects="BUCKET.>" ...` step."""
    from nats.js import api

    from tests.servers import nats as natss

    s3, ns = servers.get("seaweedfs"), server_of_type(servers, "nats")
    app = App(tmp_path)
    env = {**aws_configure(tmp_path, s3), "NATS_PASSWORD": natss.PASSWORD}
    old = write_config(tmp_path, "old.yml", s3_config(app.db, s3, prefix))
    replicate_while_writing(tmp_path, old, app, env)
    bucket = natss.bucket_for(f"{prefix}/my-app-bucket")

    async def guide_stream(_nc, js):
        await js.add_stream(name=bucket, subjects=[f"{bucket}.>"], storage=api.StorageType.FILE,
                            retention=api.RetentionPolicy.LIMITS, max_age=168 * 3600)

    ns.admin(guide_stream)
    new = write_config(tmp_path, "new.yml", (
        f"dbs:\n  - path: {app.db}\n    replica:\n      type: nats\n"
        f"      url: nats://localhost:{ns.port}/{bucket}\n      username: {natss.USER}\n"
        "      password: ${NATS_PASSWORD}\n"))
    replicate_while_writing(tmp_path, new, app, env)
    restores_to(tmp_path, new, app, env, "nats")
