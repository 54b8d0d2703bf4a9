"""Config loading (litestream.config): parse_config / apply_defaults / read_config_file.

Every expected value and message below was checked against the reference binary (litestream 0.5.17)
by putting the same YAML through `litestream databases -config FILE` (or `replicate -once`) and reading
its output or error. Where our loader deliberately differs (unknown keys and type errors are one-line
errors that name the key and its line; the reference ignores unknown keys and prints yaml.v2's
multi-line "unmarshal errors"), the test says so. Nothing here runs a binary."""

from __future__ import annotations

import os
import pwd

import pytest

from litestream.assemble import db_settings, replica_settings
from litestream.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    apply_defaults,
    config_path,
    expand_env,
    expand_path,
    parse_config,
    read_config_file,
)

S = 1_000_000_000
MS = 1_000_000
M = 60 * S
H = 60 * M


def load(text: str, expand: bool = True) -> Config:
    return apply_defaults(parse_config(text, "c.yml", expand))


def load_error(text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        load(text)
    msg = str(ei.value)
    assert "\n" not in msg, f"error must be one line: {msg!r}"
    return msg


DB = "dbs:\n  - path: /tmp/x.db\n    replica: {path: /tmp/r}\n"


# --------------------------------------------------------------------------------------------- defaults

def test_defaults_of_an_empty_config() -> None:
    for text in ("", "dbs: []\n", "# only a comment\n"):
        c = load(text)
        assert c.level_intervals() == [30 * S, 5 * M, 1 * H]
        assert (c.snapshot.interval, c.snapshot.retention) == (24 * H, 24 * H)
        assert c.l0_retention == 5 * M
        assert c.l0_retention_check_interval == 15 * S
        assert c.shutdown_sync_timeout == 30 * S
        assert c.shutdown_sync_interval == 500 * MS
        assert c.socket.enabled is False
        assert c.socket.path == "/var/run/litestream.sock"
        assert c.socket.permissions == 0o600
        assert (c.logging.level, c.logging.type, c.logging.stderr, c.logging.source) == ("", "", False, False)
        assert c.dbs == []
        assert c.exec == "" and c.addr == "" and c.heartbeat_url == ""


def test_empty_sections_keep_their_defaults() -> None:
    # ParseConfig restores snapshot interval/retention and the L0 retention settings after an empty
    # YAML section set them to nil.
    c = load("snapshot:\nl0-retention:\nl0-retention-check-interval:\ndbs:\n")
    assert (c.snapshot.interval, c.snapshot.retention) == (24 * H, 24 * H)
    assert (c.l0_retention, c.l0_retention_check_interval) == (5 * M, 15 * S)
    assert c.dbs == []
    c = load("snapshot:\n  interval: 1h\n")
    assert (c.snapshot.interval, c.snapshot.retention) == (1 * H, 24 * H)


def test_levels_replace_the_default_list() -> None:
    assert load("levels:\n  - interval: 10s\n").level_intervals() == [10 * S]
    assert load("levels: [{interval: 1s}, {interval: 2m}]\n").level_intervals() == [1 * S, 2 * M]
    # An empty list means no compaction levels at all (the reference starts only the L9 monitor).
    assert load("levels: []\n").level_intervals() == []


def test_null_levels_means_no_levels_like_the_reference() -> None:
    # `levels:` with no value: yaml.v2 sets the slice to nil and ParseConfig does not restore the
    # default, so the reference runs with no L1..L3 (its replicate logs only the level=9 compaction
    # monitor). We restore the three defaults instead.
    assert load("levels:\n").level_intervals() == []


def test_l0_retention_zero_is_allowed() -> None:
    assert load("l0-retention: 0\n").l0_retention == 0
    assert load("shutdown-sync-timeout: 0\n").shutdown_sync_timeout == 0


# ------------------------------------------------------------------------------------ env expansion

ENV = {"FOO": "foo", "FOO_BAR": "fb", "EMPTY": ""}


@pytest.mark.parametrize(("text", "want"), [
    ("/d/$FOO/a", "/d/foo/a"),
    ("/d/${FOO}b", "/d/foob"),
    ("/d/$FOOb", "/d/"),  # the name runs to the last [A-Za-z0-9_]
    ("/d/$FOO_BAR.x", "/d/fb.x"),
    ("/d/$UNSET_X/a", "/d//a"),
    ("/d/${UNSET_X}a", "/d/a"),
    ("/d/$EMPTY/a", "/d//a"),
    ("/d/${}x", "/d/x"),  # bad syntax: `${}` is eaten
    ("/d/$$x", "/d/x"),  # `$$` is the special variable "$" (unset)
    ("/d/$1x", "/d/x"),
    ("/d/${1}x", "/d/x"),
    ("/d/${12}x", "/d/x"),
    ("/d/$-x", "/d/x"),
    ("/d/$@y", "/d/y"),
    ("/d/${*}x", "/d/x"),
    ("/d/${FOO:-dflt}x", "/d/x"),  # no default syntax: a variable named "FOO:-dflt"
    ("/d/$", "/d/$"),
    ("/d/a$", "/d/a$"),
    ("/d/$.x", "/d/$.x"),
    ("/d/${FOO", "/d/FOO"),  # unterminated: `${` is eaten, the rest is kept
    ("/d/é$FOOé", "/d/éfooé"),
    ("no dollar", "no dollar"),
])
def test_expand_env_is_go_os_expand(text: str, want: str) -> None:
    assert expand_env(text, ENV.get) == want


def test_expand_env_pid() -> None:
    pid = str(os.getpid())
    assert expand_env("a-$PID-${PID}-b", {}.get) == f"a-{pid}-{pid}-b"


def test_expansion_runs_on_the_raw_text_before_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_REPLICA", "{path: /rr, sync-interval: 2s}")
    monkeypatch.setenv("LS_HASH", "abc #comment")
    monkeypatch.setenv("LS_DB", "/data/app.db")
    c = load("dbs:\n  - path: ${LS_DB}\n    replica: $LS_REPLICA\n  - path: /d/$LS_HASH\n    replica: {path: /r}\n")
    assert c.dbs[0].path == "/data/app.db"
    assert (c.dbs[0].replica.path, c.dbs[0].replica.sync_interval) == ("/rr", 2 * S)
    assert c.dbs[1].path == "/d/abc"  # the value's "#" starts a YAML comment


def test_no_expand_env_keeps_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_DIR", "/expanded")
    text = "dbs:\n  - path: /db/$LS_DIR.db\n    replica:\n      path: ${LS_DIR}/r\n      password: pa$$word\n"
    c = load(text, expand=False)
    assert c.dbs[0].path == "/db/$LS_DIR.db"
    assert c.dbs[0].replica.path == "${LS_DIR}/r"
    assert c.dbs[0].replica.password == "pa$$word"


def test_expansion_of_the_same_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_DIR", "/expanded")
    c = load("dbs:\n  - path: /db$LS_DIR.db\n    replica:\n      path: ${LS_DIR}/r\n      password: pa$$word\n")
    assert c.dbs[0].path == "/db/expanded.db"
    assert c.dbs[0].replica.path == "/expanded/r"
    assert c.dbs[0].replica.password == "paword"  # a secret with `$` needs -no-expand-env


def test_read_config_file_expands_unless_told_not_to(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LS_REPLICA_DIR", str(tmp_path / "rep"))
    p = tmp_path / "c.yml"
    p.write_text("dbs:\n  - path: /tmp/x.db\n    replica:\n      path: ${LS_REPLICA_DIR}\n")
    assert read_config_file(str(p)).dbs[0].replica.path == str(tmp_path / "rep")
    assert read_config_file(str(p), expand=False).dbs[0].replica.path == "${LS_REPLICA_DIR}"


# ---------------------------------------------------------------------------------------- durations

def _monitor(value: str) -> int | None:
    c = load(f"dbs:\n  - path: /tmp/x.db\n    monitor-interval: {value}\n    replica: {{path: /r}}\n")
    return c.dbs[0].monitor_interval


@pytest.mark.parametrize(("value", "ns"), [
    ("1s", S),
    ("1m30s", 90 * S),
    ("1h2m3.5s", H + 2 * M + 3500 * MS),
    (".5s", 500 * MS),
    ("50ms", 50 * MS),
    ('"30s"', 30 * S),
    ("'2h'", 2 * H),
    ("1000000000", S),  # a bare integer is nanoseconds
    ("0", 0),
    ("0x10", 16),  # Go integer syntax (yaml.v2)
    ("017", 15),  # YAML 1.1 octal
    ("1_000", 1000),
])
def test_durations(value: str, ns: int) -> None:
    assert _monitor(value) == ns


@pytest.mark.parametrize(("value", "ns"), [("1.5e9", 1_500_000_000), ("30e9", 30 * S), ("2.9", 2)])
def test_float_durations_are_truncated_nanoseconds(value: str, ns: int) -> None:
    # yaml.v2 stores a float into a time.Duration (an int64) by truncation: the reference reports
    # `heartbeat-interval: 1.5e9` as "must be at least 1 minute (got 1.5s)".
    assert _monitor(value) == ns


def test_float_duration_reaches_validation() -> None:
    assert load_error("heartbeat-interval: 30e9\n") == (
        "heartbeat-interval: heartbeat interval must be at least 1 minute (got 30s)")


@pytest.mark.parametrize("value", ["abc", "1m30", "true", "2001-02-03", "[1]", "{a: 1}"])
def test_bad_duration_names_key_and_line(value: str) -> None:
    msg = load_error(f"dbs:\n  - path: /tmp/x.db\n    replica: {{path: /r}}\n    busy-timeout: {value}\n")
    assert "dbs[0].busy-timeout" in msg
    assert "line 4" in msg


def test_bad_duration_message() -> None:
    msg = load_error("dbs:\n  - path: /tmp/x.db\n    monitor-interval: abc\n    replica: {path: /r}\n")
    assert msg == 'c.yml: line 3: dbs[0].monitor-interval: time: invalid duration "abc"'


# ------------------------------------------------------------------------------- scalars, YAML 1.1

TRUE_WORDS = ["yes", "Yes", "YES", "y", "Y", "on", "On", "ON", "true", "True", "TRUE"]
FALSE_WORDS = ["no", "No", "NO", "n", "N", "off", "Off", "OFF", "false", "False", "FALSE"]


@pytest.mark.parametrize("word", TRUE_WORDS + FALSE_WORDS)
def test_yaml_11_booleans(word: str) -> None:
    c = load(f"logging:\n  stderr: {word}\ndbs:\n  - dir: /d\n    watch: {word}\n    recursive: {word}\n"
             f"    pattern: '*.db'\n    replica: {{path: /r, auto-recover: {word}}}\n")
    want = word in TRUE_WORDS
    assert c.logging.stderr is want
    assert c.dbs[0].watch is want and c.dbs[0].recursive is want
    assert c.dbs[0].replica.auto_recover is want


@pytest.mark.parametrize("value", ["1", "0", '"yes"', "'true'", "maybe"])
def test_non_booleans_are_type_errors(value: str) -> None:
    msg = load_error(f"logging:\n  stderr: {value}\n")
    assert "logging.stderr" in msg and "line 2" in msg


@pytest.mark.parametrize(("value", "text"), [
    ("0123", "0123"), ("1e3", "1e3"), ("0x1F", "0x1F"), ("yes", "yes"), ("12.50", "12.50"),
    ("'0123'", "0123"), ('"007"', "007"), ("~", ""), ("null", ""), ("-5", "-5"),
])
def test_string_fields_keep_the_scalar_as_written(value: str, text: str) -> None:
    # yaml.v2 stores any resolved scalar's text in a string field: a numeric password stays "0123".
    c = load(f"password: {value}\ndbs:\n  - path: /tmp/x.db\n    replica:\n      path: /r\n      password: {value}\n")
    assert c.password == text
    assert c.dbs[0].replica.password == text


def test_numeric_path_is_text(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    c = load("dbs:\n  - path: 0123\n    replica: {path: 0777}\n  - path: yes\n    replica: {path: /r}\n")
    assert c.dbs[0].path == str(tmp_path / "0123")
    assert c.dbs[0].replica.path == "0777"
    assert c.dbs[1].path == str(tmp_path / "yes")


def test_socket_permissions_are_yaml_octal() -> None:
    c = load("socket:\n  enabled: true\n  path: /tmp/ls.sock\n  permissions: 0660\n")
    assert (c.socket.enabled, c.socket.path, c.socket.permissions) == (True, "/tmp/ls.sock", 0o660)


@pytest.mark.parametrize(("value", "n"), [("10", 10), ("0x10", 16), ("1_000", 1000)])
def test_integers(value: str, n: int) -> None:
    c = load(f"dbs:\n  - path: /tmp/x.db\n    truncate-page-n: {value}\n    replica: {{path: /r}}\n")
    assert c.dbs[0].truncate_page_n == n


@pytest.mark.parametrize(("value", "n"), [("1e3", 1000), ("2.5", 2)])
def test_float_into_integer_field_is_truncated(value: str, n: int) -> None:
    # yaml.v2: a float resolved for an int field is converted when it fits (the reference's `databases`
    # accepts `truncate-page-n: 1e3` and `max-sync-ltx-files: 1e2`).
    c = load(f"dbs:\n  - path: /tmp/x.db\n    truncate-page-n: {value}\n"
             f"    replica: {{path: /r, max-sync-ltx-files: {value}}}\n")
    assert c.dbs[0].truncate_page_n == n
    assert c.dbs[0].replica.max_sync_ltx_files == n


def test_quoted_number_in_integer_field_is_an_error() -> None:
    msg = load_error('dbs:\n  - path: /tmp/x.db\n    truncate-page-n: "10"\n    replica: {path: /r}\n')
    assert "dbs[0].truncate-page-n" in msg and "line 3" in msg


def test_byte_sizes() -> None:
    c = load("dbs:\n  - path: /tmp/x.db\n    replica: {path: /r, part-size: 5MiB}\n"
             "  - path: /tmp/y.db\n    replica: {path: /r2, part-size: 5MB}\n"
             "  - path: /tmp/z.db\n    replica: {path: /r3, part-size: 1234}\n")
    assert [d.replica.part_size for d in c.dbs] == [5 * 1024 * 1024, 5_000_000, 1234]


# ------------------------------------------------------------------------------------- database keys

def test_database_keys(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    c = load("""
dbs:
  - path: ./app.db
    meta-path: ./meta
    monitor-interval: 50ms
    checkpoint-interval: 0
    busy-timeout: 2s
    min-checkpoint-page-count: 10
    truncate-page-n: 20
    max-sync-wal-bytes: 4096
    restore-if-db-not-exists: true
    replica:
      path: ./rep
      sync-interval: 50ms
      max-sync-ltx-files: 7
      auto-recover: true
""")
    db = c.dbs[0]
    assert db.path == str(tmp_path / "app.db")
    assert db.meta_path == "./meta"
    assert (db.monitor_interval, db.checkpoint_interval, db.busy_timeout) == (50 * MS, 0, 2 * S)
    assert (db.min_checkpoint_page_count, db.truncate_page_n, db.max_sync_wal_bytes) == (10, 20, 4096)
    assert db.restore_if_db_not_exists is True
    settings = db_settings(db)
    assert settings.monitor_interval_s == pytest.approx(0.05)
    assert settings.checkpoint_interval_s == 0
    assert settings.busy_timeout_ms == 2000
    assert (settings.min_checkpoint_page_n, settings.truncate_page_n, settings.max_sync_wal_bytes) == (10, 20, 4096)
    assert settings.meta_path == str(tmp_path / "meta")  # relative to the working directory
    rs = replica_settings(db.replica)
    assert rs.sync_interval_s == pytest.approx(0.05)
    assert (rs.max_sync_ltx_files, rs.auto_recover) == (7, True)


def test_database_key_defaults() -> None:
    db = load(DB).dbs[0]
    s = db_settings(db)
    assert (s.monitor_interval_s, s.checkpoint_interval_s, s.busy_timeout_ms) == (1.0, 60.0, 1000)
    assert (s.min_checkpoint_page_n, s.truncate_page_n, s.max_sync_wal_bytes) == (1000, 121359, 64 << 20)
    assert s.meta_path is None
    rs = replica_settings(db.replica)
    assert (rs.sync_interval_s, rs.max_sync_ltx_files, rs.auto_recover) == (1.0, 256, False)


def test_truncate_page_n_zero_means_default() -> None:
    db = load("dbs:\n  - path: /tmp/x.db\n    truncate-page-n: 0\n    replica: {path: /r}\n").dbs[0]
    assert db_settings(db).truncate_page_n == 121359


def test_replica_and_replicas_forms() -> None:
    c = load("dbs:\n  - path: /tmp/a.db\n    replica: {path: /r1}\n"
             "  - path: /tmp/b.db\n    replicas:\n      - path: /r2\n      - url: file:///r3\n")
    assert [r.path for r in c.dbs[0].replica_configs()] == ["/r1"]
    assert [(r.path, r.url) for r in c.dbs[1].replica_configs()] == [("/r2", ""), ("", "file:///r3")]
    assert [r.replica_type() for r in c.dbs[1].replica_configs()] == ["file", "file"]


def test_replica_form_errors() -> None:
    c = load("dbs:\n  - path: /tmp/a.db\n  - path: /tmp/b.db\n    replica: {path: /r1}\n    replicas: [{path: /r2}]\n")
    with pytest.raises(ConfigError, match=r"^must specify replica for database$"):
        c.dbs[0].replica_configs()
    with pytest.raises(ConfigError, match=r"^cannot specify 'replica' and 'replicas' on a database$"):
        c.dbs[1].replica_configs()


def test_logging_section() -> None:
    c = load("logging:\n  level: debug\n  type: json\n  stderr: true\n  source: true\n")
    assert (c.logging.level, c.logging.type, c.logging.stderr, c.logging.source) == ("debug", "json", True, True)


# ------------------------------------------------------------------------------ global replica defaults

def test_global_replica_defaults_are_copied() -> None:
    c = load("""
sync-interval: 7s
validation-interval: 1m
max-sync-ltx-files: 9
auto-recover: true
access-key-id: AK
secret-access-key: SK
region: eu-west-1
endpoint: http://minio:9000
force-path-style: true
sign-payload: false
require-content-md5: false
skip-verify: true
storage-class: GLACIER
sse-kms-key-id: kms
account-name: acct
account-key: akey
sas-token: sas
host: sftp.example.com
user: bob
password: 0123
key-path: /k
concurrent-writes: false
token: tok
root-cas: [/ca.pem]
max-reconnects: 3
reconnect-wait: 4s
timeout: 5s
part-size: 10MiB
concurrency: 12
host-key: ssh-ed25519 AAAA
webdav-url: http://dav
webdav-username: u
webdav-password: p
dbs:
  - path: /tmp/a.db
    replica: {path: /r1}
  - path: /tmp/b.db
    replicas:
      - path: /r2
""")
    for r in (c.dbs[0].replica, c.dbs[1].replicas[0]):
        assert r.sync_interval == 7 * S
        assert r.validation_interval == 1 * M
        assert r.max_sync_ltx_files == 9
        assert r.auto_recover is True
        assert (r.access_key_id, r.secret_access_key, r.region) == ("AK", "SK", "eu-west-1")
        assert (r.endpoint, r.force_path_style, r.sign_payload) == ("http://minio:9000", True, False)
        assert (r.require_content_md5, r.skip_verify, r.storage_class) == (False, True, "GLACIER")
        assert r.sse_kms_key_id == "kms"
        assert (r.account_name, r.account_key, r.sas_token) == ("acct", "akey", "sas")
        assert (r.host, r.user, r.password, r.key_path) == ("sftp.example.com", "bob", "0123", "/k")
        assert r.concurrent_writes is False
        assert (r.token, r.root_cas, r.max_reconnects) == ("tok", ["/ca.pem"], 3)
        assert (r.reconnect_wait, r.timeout) == (4 * S, 5 * S)
        # Not copied by the reference's SetDefaults:
        assert r.part_size is None
        assert r.concurrency is None
        assert r.host_key == ""
        assert (r.webdav_url, r.webdav_username, r.webdav_password) == ("", "", "")


def test_replica_values_win_over_global_defaults() -> None:
    c = load("""
sync-interval: 7s
auto-recover: true
max-sync-ltx-files: 9
region: global
root-cas: [/g.pem]
skip-verify: false
dbs:
  - path: /tmp/a.db
    replica:
      path: /r1
      sync-interval: 50ms
      auto-recover: false
      max-sync-ltx-files: 0
      region: mine
      root-cas: [/m.pem]
      skip-verify: true
  - path: /tmp/b.db
    replica:
      path: /r2
      root-cas: []
""")
    r = c.dbs[0].replica
    assert (r.sync_interval, r.auto_recover, r.max_sync_ltx_files) == (50 * MS, False, 0)
    assert (r.region, r.root_cas, r.skip_verify) == ("mine", ["/m.pem"], True)
    assert c.dbs[1].replica.root_cas == ["/g.pem"]  # an empty list takes the default (len == 0)


# -------------------------------------------------------------------------------- snapshot hoisting

def test_db_snapshot_settings_are_hoisted() -> None:
    c = load("dbs:\n  - path: /tmp/a.db\n    snapshot: {interval: 2h, retention: 48h}\n    replica: {path: /r}\n"
             "  - path: /tmp/b.db\n    snapshot: {interval: 2h}\n    replica: {path: /r2}\n")
    assert (c.snapshot.interval, c.snapshot.retention) == (2 * H, 48 * H)


def test_explicit_global_snapshot_is_not_overridden() -> None:
    c = load("snapshot: {interval: 1h}\ndbs:\n  - path: /tmp/a.db\n    snapshot: {interval: 2h, retention: 3h}\n"
             "    replica: {path: /r}\n")
    assert (c.snapshot.interval, c.snapshot.retention) == (1 * H, 3 * H)


def test_conflicting_db_snapshot_intervals() -> None:
    # The paths are the raw text (hoisting happens before path expansion).
    base = ("dbs:\n  - path: ./a.db\n    snapshot: {%s: %s}\n    replica: {path: /r}\n"
            "  - path: ./b.db\n    snapshot: {%s: %s}\n    replica: {path: /r2}\n")
    assert load_error(base % ("interval", "1h", "interval", "2h")) == (
        "conflicting database snapshot intervals: ./a.db has 1h0m0s, ./b.db has 2h0m0s")
    assert load_error(base % ("retention", "1h", "retention", "90m")) == (
        "conflicting database snapshot retentions: ./a.db has 1h0m0s, ./b.db has 1h30m0s")
    # ... even when the global value is set explicitly.
    assert load_error("snapshot: {interval: 3h}\n" + base % ("interval", "1h", "interval", "2h")) == (
        "conflicting database snapshot intervals: ./a.db has 1h0m0s, ./b.db has 2h0m0s")


# -------------------------------------------------------------------------------------- validation

@pytest.mark.parametrize(("text", "message"), [
    ("snapshot:\n  interval: 0s\n", "snapshot.interval: snapshot interval must be greater than 0 (got 0s)"),
    ("snapshot:\n  retention: -5m\n", "snapshot.retention: snapshot retention must be greater than 0 (got -5m0s)"),
    ("l0-retention: -90s\n", "l0-retention: l0 retention must not be negative (got -1m30s)"),
    ("l0-retention-check-interval: 0s\n",
     "l0-retention-check-interval: l0 retention check interval must be greater than 0 (got 0s)"),
    ("shutdown-sync-timeout: -1s\n", "shutdown-sync-timeout: shutdown-sync-timeout must be >= 0 (got -1s)"),
    ("shutdown-sync-interval: 0\n", "shutdown-sync-interval: shutdown sync interval must be greater than 0 (got 0s)"),
    ("heartbeat-url: ftp://x\n", "heartbeat-url: heartbeat URL must be a valid HTTP or HTTPS URL (got ftp://x)"),
    ("heartbeat-url: HTTP://x\n", "heartbeat-url: heartbeat URL must be a valid HTTP or HTTPS URL (got HTTP://x)"),
    ("heartbeat-url: http:/x\n", "heartbeat-url: heartbeat URL must be a valid HTTP or HTTPS URL (got http:/x)"),
    ("heartbeat-url: localhost:8080\n",
     "heartbeat-url: heartbeat URL must be a valid HTTP or HTTPS URL (got localhost:8080)"),
    ("heartbeat-interval: 30s\n", "heartbeat-interval: heartbeat interval must be at least 1 minute (got 30s)"),
    ("heartbeat-interval: 59999999999\n",
     "heartbeat-interval: heartbeat interval must be at least 1 minute (got 59.999999999s)"),
    ("levels:\n  - interval: 10s\n  - interval: 0s\n",
     "levels[1].interval: compaction interval must be greater than 0 (got 0s)"),
    (DB + "  - path: /tmp/y.db\n    dir: /tmp\n    replica: {path: /r}\n",
     "database config #2: cannot specify both 'path' and 'dir'"),
    ("dbs:\n  - replica: {path: /tmp/r}\n", "database config #1: must specify either 'path' or 'dir'"),
    ("dbs:\n  - dir: /tmp/dd\n    replica: {path: /tmp/r}\n",
     "database config #1: 'pattern' is required when using 'dir'"),
    ("dbs:\n  - path: /tmp/x.db\n    watch: true\n    replica: {path: /tmp/r}\n",
     "database config #1: 'watch' can only be enabled with a directory"),
    ("dbs:\n  - path: /tmp/x.db\n    meta-dir: /tmp/m\n    replica: {path: /tmp/r}\n",
     "database config #1: 'meta-dir' can only be used with a directory"),
    ("dbs:\n  - dir: /tmp/dd\n    pattern: '*.db'\n    meta-path: /m\n    meta-dir: /m2\n    replica: {path: /r}\n",
     "database config #1: cannot specify both 'meta-path' and 'meta-dir'"),
    # A db's snapshot settings are hoisted to the global ones first, so they fail as the global key...
    ("dbs:\n  - path: /tmp/x.db\n    snapshot: {interval: 0s}\n    replica: {path: /tmp/r}\n",
     "snapshot.interval: snapshot interval must be greater than 0 (got 0s)"),
    ("dbs:\n  - path: /tmp/x.db\n    snapshot: {retention: -1h}\n    replica: {path: /tmp/r}\n",
     "snapshot.retention: snapshot retention must be greater than 0 (got -1h0m0s)"),
    # ... unless the global one is set; then the message names the db by its expanded path.
    ("snapshot: {interval: 1h}\ndbs:\n  - path: /tmp/./x.db\n    snapshot: {interval: 0s}\n    replica: {path: /r}\n",
     "dbs[/tmp/x.db].snapshot.interval: snapshot interval must be greater than 0 (got 0s)"),
    ("snapshot: {retention: 1h}\ndbs:\n  - path: /tmp/x.db\n    snapshot: {retention: -1s}\n    replica: {path: /r}\n",
     "dbs[/tmp/x.db].snapshot.retention: snapshot retention must be greater than 0 (got -1s)"),
    ("dbs:\n  - path: /tmp/x.db\n    replica: {path: /tmp/r, sync-interval: -5ms}\n",
     "dbs[/tmp/x.db].replica.sync-interval: sync interval must be greater than 0 (got -5ms)"),
    ("dbs:\n  - path: /tmp/x.db\n    replicas:\n      - path: /tmp/r\n"
     "      - path: /tmp/r2\n        sync-interval: 0s\n",
     "dbs[/tmp/x.db].replicas[1].sync-interval: sync interval must be greater than 0 (got 0s)"),
    ("dbs:\n  - dir: ./d\n    pattern: '*.db'\n    replica: {path: /tmp/r, sync-interval: 0}\n",
     "dbs[./d].replica.sync-interval: sync interval must be greater than 0 (got 0s)"),
    ("sync-interval: 0s\n" + DB,  # a global default is validated once copied into the replica
     "dbs[/tmp/x.db].replica.sync-interval: sync interval must be greater than 0 (got 0s)"),
])
def test_validation_messages(text: str, message: str) -> None:
    assert load_error(text) == message


def test_validation_order_first_failure_wins() -> None:
    assert load_error("l0-retention: -1s\nsnapshot: {interval: 0s}\n").startswith("snapshot.interval:")
    assert load_error("heartbeat-interval: 1s\nshutdown-sync-interval: 0s\n").startswith("shutdown-sync-interval:")


@pytest.mark.parametrize("url", ["http://", "https://", "http://localhost:1/x"])
def test_heartbeat_url_prefix_is_enough(url: str) -> None:
    # isValidHeartbeatURL is strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://"):
    # the reference accepts `heartbeat-url: "https://"`.
    assert load(f'heartbeat-url: "{url}"\nheartbeat-interval: 1m\n').heartbeat_url == url


def test_the_same_path_twice_is_accepted() -> None:
    # The reference rejects it ('database config #2: duplicate path "..." ...'); we run one database with
    # several replicas.
    c = load(DB + "  - path: /tmp/./x.db\n    replica: {path: /tmp/r2}\n")
    assert [d.path for d in c.dbs] == ["/tmp/x.db", "/tmp/x.db"]
    assert [d.replica.path for d in c.db_configs("/tmp/x.db")] == ["/tmp/r", "/tmp/r2"]


# ------------------------------------------------------------------------- unknown keys, types, syntax

@pytest.mark.parametrize(("text", "key", "line"), [
    ("bogus: 1\n" + DB, "bogus", 1),
    ("dbs:\n  - path: /tmp/x.db\n    monitor-intervall: 1s\n    replica: {path: /r}\n",
     "dbs[0].monitor-intervall", 3),
    ("dbs:\n  - path: /tmp/x.db\n    replica:\n      path: /r\n      bogus-key: 1\n", "dbs[0].replica.bogus-key", 5),
    (DB + "  - path: /tmp/y.db\n    replicas:\n      - path: /r1\n      - path: /r2\n        sync-intervl: 1s\n",
     "dbs[1].replicas[1].sync-intervl", 8),
    ("logging:\n  level: info\n  colour: true\n", "logging.colour", 3),
    ("access-key-secret: x\n", "access-key-secret", 1),  # the docs' key for OSS, which the reference ignores
])
def test_unknown_keys_name_the_key_and_line(text: str, key: str, line: int) -> None:
    msg = load_error(text)
    assert msg == f"c.yml: line {line}: {key}: unknown key"


@pytest.mark.parametrize(("text", "key", "line"), [
    ("dbs: 5\n", "dbs", 1),
    ("dbs:\n  - path: [a, b]\n    replica: {path: /r}\n", "dbs[0].path", 2),
    ("dbs:\n  - path: /tmp/x.db\n    replica: /r\n", "dbs[0].replica", 3),
    ("logging: yes\n", "logging", 1),
    ("levels:\n  - 10s\n", "levels[0]", 2),
    ("socket:\n  permissions: rw\n", "socket.permissions", 2),
])
def test_wrong_types_name_the_key_and_line(text: str, key: str, line: int) -> None:
    msg = load_error(text)
    assert msg.startswith(f"c.yml: line {line}: {key}: "), msg


@pytest.mark.parametrize("text", [
    "dbs:\n  - path: ./f.db\n    replica:\n      path: [a\n",
    "dbs:\n  - path: ./f.db\n    replica:\n      path: ./r\n\tbad: 1\n",
    "dbs:\n  - path: 'unterminated\n",
    "a: b: c\n",
    "dbs: [\n",
])
def test_bad_yaml_is_one_line_with_the_line_number(text: str) -> None:
    msg = load_error(text)
    assert msg.startswith("c.yml: yaml: line "), msg


def test_top_level_must_be_a_mapping() -> None:
    msg = load_error("- a\n- b\n")
    assert msg.startswith("c.yml: line 1: ")


# ------------------------------------------------------------------------------------- path expansion

def test_path_expansion(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    home = os.path.expanduser("~")
    c = load("dbs:\n"
             "  - path: ~/x.db\n    replica: {path: /r}\n"
             "  - path: sqlite3://rel.db\n    replica: {path: /r}\n"
             "  - path: sqlite://~/y.db\n    replica: {path: /r}\n"
             "  - path: ~x/y.db\n    replica: {path: /r}\n"
             "  - path: sqlite:///abs/./z.db\n    replica: {path: /r}\n"
             "  - path: sub/../w.db\n    replica: {path: /r}\n"
             "  - path: \"~\"\n    replica: {path: /r}\n")
    assert [d.path for d in c.dbs] == [
        f"{home}/x.db", str(tmp_path / "rel.db"), f"{home}/y.db", str(tmp_path / "~x" / "y.db"),
        "/abs/z.db", str(tmp_path / "w.db"), home,
    ]


def test_tilde_is_the_account_home_not_HOME(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The reference expands `~` with os/user.Current(), which reads /etc/passwd (the binary is built
    # with CGO_ENABLED=0), so $HOME does not matter: with HOME=/tmp/fakehome, `~/x.db` is still
    # /root/x.db for root (checked with `databases`).
    passwd_home = pwd.getpwuid(os.getuid()).pw_dir
    monkeypatch.setenv("HOME", str(tmp_path / "fakehome"))
    assert expand_path("~/x.db") == os.path.join(passwd_home, "x.db")
    assert expand_path("~") == passwd_home


# --------------------------------------------------------------------------------- config file path

def test_config_path_resolution(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITESTREAM_CONFIG", raising=False)
    assert config_path(None) == DEFAULT_CONFIG_PATH
    assert config_path("") == DEFAULT_CONFIG_PATH
    assert config_path("my.yml") == str(tmp_path / "my.yml")
    monkeypatch.setenv("LITESTREAM_CONFIG", "env.yml")
    assert config_path(None) == str(tmp_path / "env.yml")
    assert config_path("flag.yml") == str(tmp_path / "flag.yml")  # -config wins
    monkeypatch.setenv("LITESTREAM_CONFIG", "")
    assert config_path(None) == DEFAULT_CONFIG_PATH


def test_read_config_file_sources(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flag.yml").write_text("dbs:\n  - path: /flag.db\n    replica: {path: /r}\n")
    (tmp_path / "env.yml").write_text("dbs:\n  - path: /env.db\n    replica: {path: /r}\n")
    monkeypatch.setenv("LITESTREAM_CONFIG", str(tmp_path / "env.yml"))
    assert read_config_file(None).dbs[0].path == "/env.db"
    assert read_config_file("flag.yml").dbs[0].path == "/flag.db"


def test_missing_config_files(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITESTREAM_CONFIG", raising=False)
    with pytest.raises(ConfigError) as ei:
        read_config_file("nope.yml")
    assert str(ei.value) == f"config file not found: {tmp_path}/nope.yml"
    monkeypatch.setenv("LITESTREAM_CONFIG", "missing-env.yml")
    with pytest.raises(ConfigError) as ei:
        read_config_file(None)
    assert str(ei.value) == f"config file not found: {tmp_path}/missing-env.yml"
    if os.path.exists(DEFAULT_CONFIG_PATH):
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this machine")
    monkeypatch.delenv("LITESTREAM_CONFIG")
    with pytest.raises(ConfigError) as ei:
        read_config_file(None)
    assert str(ei.value) == "config file not found: /etc/litestream.yml"


def test_config_errors_name_the_file(tmp_path) -> None:
    p = tmp_path / "bad.yml"
    p.write_text("dbs:\n  - path: /tmp/x.db\n    replica: {path: /r, bogus: 1}\n")
    with pytest.raises(ConfigError) as ei:
        read_config_file(str(p))
    assert str(ei.value) == f"{p}: line 3: dbs[0].replica.bogus: unknown key"
