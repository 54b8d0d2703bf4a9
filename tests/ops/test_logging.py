"""Logging: the `logging:` section (level, type, stderr, source), LOG_LEVEL and `replicate -log-level`,
line by line against the reference (times and source positions aside); and secrets, which no log line
and no error message may print: the handler's safety net itself, then every backend type run with
distinctive fake credentials against servers that refuse them, at debug level, in text and JSON."""

from __future__ import annotations

import io
import json
import re
import signal
import textwrap
import time
from pathlib import Path

import pytest

from litestream import logs
from tests.cliutil import Background, make_db, run_ours, wait_for, write_config
from tests.ops import redactutil as ru
from tests.refbin import run_ref

# ------------------------------------------------------------------------------------------ line shapes

TEXT_TIME = r"time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d) "
JSON_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)"
PRETTY_TIME = r"\d\d:\d\d:\d\d "


def shape(line: str, log_type: str, source: bool = False) -> str:
    """A log line with its time and source position replaced by placeholders, after checking their form."""
    if log_type == "json":
        obj = json.loads(line)
        assert re.fullmatch(JSON_TIME, obj["time"]), line
        obj["time"] = "T"
        if "source" in obj:
            src = obj["source"]
            assert list(src) == ["function", "file", "line"] and isinstance(src["line"], int), line
            assert src["function"] and src["file"] and not src["file"].startswith("/"), line
            obj["source"] = "S"
        return json.dumps(obj)  # keeps the key order
    if log_type == "pretty":
        assert re.match(PRETTY_TIME, line), line
        line = "T " + line[len("00:00:00 "):]
        if source:
            assert re.match(r"T \S+ [\w./-]+:\d+ ", line), line
            line = re.sub(r"^T (\S+) \S+ ", r"T \1 S ", line)
        return line
    assert re.match(TEXT_TIME, line), line
    line = re.sub(r"^time=\S+ ", "T ", line)
    return re.sub(r" source=[\w./-]+:\d+ ", " source=S ", line)


def skip_config(work: Path, logging_yaml: str) -> Path:
    """A config whose one database exists, so `restore -if-db-not-exists` logs one INFO line and exits."""
    make_db(work / "app.db")
    return write_config(work / "c.yml", logging_yaml + textwrap.dedent(f"""
        dbs:
          - path: {work / 'app.db'}
            replica:
              url: file://{work / 'rep'}
        """))


def restore_skip(runner, work: Path, env: dict[str, str] | None = None):
    return runner("restore", "-if-db-not-exists", "-config", "c.yml", str(work / "app.db"), cwd=work,
                  env={"LOG_LEVEL": "", **(env or {})}, timeout=60)


@pytest.mark.parametrize("log_type", ["text", "json", "pretty", ""])
@pytest.mark.parametrize("stderr", [False, True])
@pytest.mark.parametrize("source", [False, True])
def test_types_streams_and_source_match_the_reference(tmp_path: Path, log_type: str, stderr: bool,
                                                      source: bool) -> None:
    skip_config(tmp_path, f"logging:\n  type: '{log_type}'\n  stderr: {str(stderr).lower()}\n"
                          f"  source: {str(source).lower()}\n")
    ours, ref = restore_skip(run_ours, tmp_path), restore_skip(run_ref, tmp_path)
    assert ours.returncode == ref.returncode == 0
    for proc in (ours, ref):
        logged, quiet = (proc.stderr, proc.stdout) if stderr else (proc.stdout, proc.stderr)
        assert quiet == "" and len(logged.splitlines()) == 1, (proc.stdout, proc.stderr)
    ours_line, ref_line = ((p.stderr if stderr else p.stdout).rstrip("\n") for p in (ours, ref))
    assert shape(ours_line, log_type or "text", source) == shape(ref_line, log_type or "text", source)
    assert ("cli/cmd_restore.py" in ours_line) == source


@pytest.mark.parametrize("level, env, shown", [
    ("", "", True),
    ("debug", "", True),
    ("warn", "", False),
    ("WARNING", "", False),
    ("error", "info", True),     # LOG_LEVEL wins over the config
    ("", "error", False),
    ("info", "Trace", True),
    ("bogus", "", True),         # an unknown name means INFO
])
def test_level_and_log_level_env_match_the_reference(tmp_path: Path, level: str, env: str, shown: bool) -> None:
    skip_config(tmp_path, f"logging:\n  level: '{level}'\n")
    ours, ref = (restore_skip(r, tmp_path, {"LOG_LEVEL": env}) for r in (run_ours, run_ref))
    assert bool(ref.stdout) is shown, ref.stdout
    assert shape(ours.stdout, "text") == shape(ref.stdout, "text") if shown else ours.stdout == ""


def replicate_no_dbs(runner, work: Path, args: list[str], env: dict[str, str]) -> list[str]:
    """`replicate` on a config without databases, stopped by SIGTERM: its log lines without times."""
    bg = Background(["replicate", *args, "-config", "c.yml"], ref=runner is run_ref, cwd=work, env=env)
    try:
        assert wait_for(lambda: "no databases specified" in bg.output(), 15), bg.output()
        # Nothing is logged once it runs (at -log-level error): give it the time to open its empty store and
        # take over SIGTERM (ours does so only then, and a signal before that kills it).
        time.sleep(1)
        bg.signal(signal.SIGTERM)
        assert bg.finish(timeout=30) == 0
    finally:
        bg.kill()
    return [shape(ln, "text") for ln in bg.stdout.splitlines()]


@pytest.mark.parametrize("flag, env, config_level", [
    ("error", "debug", "info"),    # -log-level overrides LOG_LEVEL and the config
    ("debug", "error", "error"),
])
def test_replicate_log_level_flag_overrides_both(tmp_path: Path, flag: str, env: str, config_level: str) -> None:
    write_config(tmp_path / "c.yml", f"logging:\n  level: {config_level}\ndbs: []\n")
    ours = replicate_no_dbs(run_ours, tmp_path, ["-log-level", flag], {"LOG_LEVEL": env})
    ref = replicate_no_dbs(run_ref, tmp_path, ["-log-level", flag], {"LOG_LEVEL": env})
    if flag == "error":
        assert ref == ['T level=ERROR msg="no databases specified in configuration"']
        assert ours == ref
    else:
        # The reference logs more at INFO (its compaction monitors); the lines both print are the same.
        first = f'T level=INFO msg=litestream version=0.5.17 level={flag}'
        assert ours[0] == ref[0] == first
        assert [ln for ln in ref if ln in ours] == [ln for ln in ours if ln in ref]
        assert 'T level=ERROR msg="no databases specified in configuration"' in ours


def test_replicate_log_level_flag_on_the_command_line_form(tmp_path: Path) -> None:
    make_db(tmp_path / "app.db")
    firsts = []
    for ref in (False, True):
        bg = Background(["replicate", "-log-level", "debug", "app.db", f"file://{tmp_path / 'rep'}"], ref=ref,
                        cwd=tmp_path, env={"LOG_LEVEL": "error"})
        try:
            assert wait_for(lambda bg=bg: 'msg="replicating to"' in bg.output(), 15), bg.output()
            bg.signal(signal.SIGTERM)
            assert bg.finish(timeout=30) == 0
        finally:
            bg.kill()
        firsts.append(shape(bg.stdout.splitlines()[0], "text"))
    assert firsts[0] == firsts[1] == "T level=INFO msg=litestream version=0.5.17 level=debug"


def test_an_unknown_type_is_a_config_error(tmp_path: Path) -> None:
    skip_config(tmp_path, "logging:\n  type: xml\n")
    proc = restore_skip(run_ours, tmp_path)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "Error: logging.type: unknown log type 'xml' (use text, json or pretty)\n"


# ------------------------------------------------------------------------------- the handler's safety net


def render(log_type: str, fn) -> str:
    out = io.StringIO()
    handler = logs.SlogHandler(out, log_type, logs.DEBUG)
    logs._install(handler)
    try:
        fn(logs.get_logger("t"))
    finally:
        logs.init_log("stdout", "INFO", "text", False)
    return out.getvalue()


@pytest.mark.parametrize("log_type", ["text", "json", "pretty"])
def test_known_secret_values_are_masked_wherever_they_appear(log_type: str) -> None:
    secret = 'PW"with\\quote-zq8'
    logs.add_secret(secret)
    logs.add_secret("tiny")  # too short to mask inside words: only key and URL rules apply to it

    def emit(log) -> None:
        log.info(f"connect failed with {secret}", detail=f"server said {secret}", exc=OSError(f"bad {secret}"),
                 extra={"nested": [secret]}, note="tiny stays")
        log.info("url", where="https://h/x?sig=ABCzq8&se=1&X-Amz-Signature=DEFzq8", token="tok")

    out = render(log_type, emit)
    assert "zq8" not in out, out
    assert out.count("[REDACTED]") >= 5
    assert "tiny stays" in out and "se=1" in out


def test_secret_keys_include_nats_and_sas_names_as_whole_parts() -> None:
    for key in ("nkey", "seed", "jwt", "sas", "sig", "nats-nkey", "sas_token", "X-Amz-Signature", "webdav-password"):
        assert logs.is_secret_key(key), key
    for key in ("signal", "seeders", "key", "access-key-id", "key-path", "creds", "sync-interval", "sse-kms-key-id"):
        assert not logs.is_secret_key(key), key


def test_redact_text_masks_urls_queries_and_known_values() -> None:
    logs.add_secret("KNOWNVALUEzq8")
    assert logs.redact_text("dial nats://u:pw@h:4222/b and sftp://u@h/p: KNOWNVALUEzq8; "
                            "GET /c?restype=container&sig=S1G&sp=r") == (
        "dial nats://u:xxxxx@h:4222/b and sftp://u@h/p: [REDACTED]; GET /c?restype=container&sig=REDACTED&sp=r")


# --------------------------------------------------------------------------- every backend, refused


@pytest.fixture(scope="module")
def refuser():
    server = ru.Refuser()
    yield server
    server.close()


def backend_env(work: Path, backend: str, http_port: int) -> dict[str, str]:
    # No real credentials of this machine may take part (nor be printed): HOME and the SDKs' variables.
    env = {"HOME": str(work), "LOG_LEVEL": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
           "AWS_CONFIG_FILE": str(work / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
           "GOOGLE_APPLICATION_CREDENTIALS": "", "STORAGE_EMULATOR_HOST": ""}
    if backend == "gs":
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(ru.gs_credentials(work, http_port))
    return env


def assert_no_secret(text: str) -> None:
    leaked = [s for s in ru.must_not_appear() if s in text]
    assert not leaked, f"secrets {leaked} printed:\n" + "\n".join(
        ln for ln in text.splitlines() if any(s in ln for s in leaked))


def run_backend_commands(work: Path, backend: str, log_type: str, http_port: int, dead_port: int) -> str:
    """replicate (until it has logged a replica error), restore and ltx with the backend's config; all output."""
    ru.write_config(work, backend, log_type, http_port, dead_port)
    make_db(work / "app.db")
    env = backend_env(work, backend, http_port)
    bg = Background(["replicate", "-config", "c.yml"], ref=False, cwd=work, env=env)
    try:
        assert wait_for(lambda: "cannot check replicas" in bg.output(), 20), bg.output()
        bg.signal(signal.SIGTERM)
        assert bg.finish(timeout=30) == 0, bg.stdout + bg.stderr
    finally:
        bg.kill()
    out = [bg.stdout, bg.stderr]
    for args in (["restore", "-config", "c.yml", "-o", str(work / "out.db"), str(work / "app.db")],
                 ["ltx", "-config", "c.yml", str(work / "app.db")]):
        proc = run_ours(*args, cwd=work, env=env, timeout=60)
        assert proc.returncode == 1 and proc.stderr.startswith("Error: "), (proc.stdout, proc.stderr)
        out += [proc.stdout, proc.stderr]
    text = "".join(out)
    if log_type == "json":
        for line in (bg.stdout + out[2] + out[4]).splitlines():
            json.loads(line)  # every log line is JSON
    return text


@pytest.mark.parametrize("log_type", ["text", "json"])
@pytest.mark.parametrize("backend", ru.BACKENDS)
def test_no_backend_prints_its_secrets(tmp_path: Path, refuser, backend: str, log_type: str) -> None:
    assert_no_secret(run_backend_commands(tmp_path, backend, log_type, refuser.port, ru.free_port()))


@pytest.mark.parametrize("url", [
    f"nats://natsuser:{ru.SECRETS['nats-url-pass']}@127.0.0.1:{{dead}}/bucket",
    f"sftp://sftpuser:{ru.SECRETS['sftp-url-pass']}@127.0.0.1:{{dead}}/backup",
    f"webdav://davuser:{ru.SECRETS['webdav-url-pass']}@127.0.0.1:{{http}}/dav",
    f"sftp://sftpuser:{ru.SECRETS['sftp-url-pass']}@127.0.0.1:bad/backup",
])
def test_command_line_urls_with_passwords(tmp_path: Path, refuser, url: str) -> None:
    url = url.format(dead=ru.free_port(), http=refuser.port)
    for args in (["restore", "-o", str(tmp_path / "out.db"), url], ["ltx", url]):
        proc = run_ours(*args, cwd=tmp_path, env=backend_env(tmp_path, "", 0), timeout=60)
        assert proc.returncode == 1 and proc.stderr.startswith("Error: "), proc.stderr
        assert_no_secret(proc.stdout + proc.stderr)


@pytest.mark.parametrize("replica", [
    "url: s3://b/p\n      sse-customer-key: NOTBASE64zq1!!!",
    "url: s3://b/p\n      sse-customer-key: c2hvcnRrZXl6cTE=",  # base64 of "shortkeyzq1"
    "url: abs://acct@c/p\n      account-key: NOTBASE64zq2!!!",
    "url: nats://127.0.0.1:1/b\n      nkey: BADNKEYzq3",
    "url: sftp://u:SFTP%2Fzq4@127.0.0.1:1/p",
])
def test_malformed_secrets_are_not_quoted_in_errors(tmp_path: Path, replica: str) -> None:
    make_db(tmp_path / "app.db")
    (tmp_path / "c.yml").write_text(f"dbs:\n  - path: {tmp_path / 'app.db'}\n    replica:\n      {replica}\n")
    proc = run_ours("ltx", "-config", "c.yml", str(tmp_path / "app.db"), cwd=tmp_path,
                    env=backend_env(tmp_path, "", 0), timeout=60)
    assert proc.returncode == 1 and "Error: " in proc.stderr, proc.stderr
    for value in ("NOTBASE64zq1", "c2hvcnRrZXl6cTE", "shortkeyzq1", "NOTBASE64zq2", "BADNKEYzq3", "SFTP%2Fzq4",
                  "SFTP/zq4"):
        assert value not in proc.stdout + proc.stderr


# -------------------------------------------------------------------- real servers refusing credentials


def _launch(module: str, work: Path):
    from tests.servers import ServerNotInstalled, load

    try:
        return load(module).start(work)
    except ServerNotInstalled as e:
        pytest.fail(f"{module} is not installed ({e}): run `bash ci/servers/{module}.sh`", pytrace=False)


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    server = _launch("nats", tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory):
    server = _launch("sshd", tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def run_against(work: Path, replica_yaml: str, log_type: str) -> str:
    make_db(work / "app.db")
    (work / "c.yml").write_text(textwrap.dedent(f"""
        logging:
          level: debug
          type: {log_type}
        shutdown-sync-timeout: 0s
        dbs:
          - path: {work / 'app.db'}
            replica:
        """).lstrip("\n") + textwrap.indent(textwrap.dedent(replica_yaml).strip("\n"), " " * 6) + "\n")
    env = backend_env(work, "", 0)
    bg = Background(["replicate", "-config", "c.yml"], ref=False, cwd=work, env=env)
    try:
        assert wait_for(lambda: "cannot check replicas" in bg.output(), 20), bg.output()
        bg.signal(signal.SIGTERM)
        assert bg.finish(timeout=30) == 0
    finally:
        bg.kill()
    proc = run_ours("ltx", "-config", "c.yml", str(work / "app.db"), cwd=work, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout
    return bg.stdout + bg.stderr + proc.stdout + proc.stderr


@pytest.mark.parametrize("log_type", ["text", "json"])
@pytest.mark.parametrize("auth", ["url", "password", "token", "nkey", "jwt"])
def test_real_nats_server_refusing_credentials(tmp_path: Path, nats_server, auth: str, log_type: str) -> None:
    s = ru.SECRETS
    host = f"127.0.0.1:{nats_server.port}"
    replica = {
        "url": f"url: nats://litestream:{s['nats-url-pass']}@{host}/bucket",
        "password": f"url: nats://{host}/bucket\nusername: litestream\npassword: {s['nats-password']}",
        "token": f"url: nats://{host}/bucket\ntoken: {s['nats-token']}",
        "nkey": f"url: nats://{host}/bucket\nnkey: {s['nats-nkey']}",
        "jwt": f"url: nats://{host}/bucket\njwt: {s['nats-jwt']}\nseed: {s['nats-seed']}",
    }[auth]
    text = run_against(tmp_path, replica + "\nmax-reconnects: 0\ntimeout: 2s", log_type)
    assert_no_secret(text)
    assert "authorization violation" in text  # the server did check (and refuse) the credentials


@pytest.mark.parametrize("log_type", ["text", "json"])
@pytest.mark.parametrize("form", ["url", "key"])
def test_real_sshd_refusing_a_password(tmp_path: Path, sshd_server, form: str, log_type: str) -> None:
    from tests.servers.sshd import PASSWORD_USER

    s = ru.SECRETS
    host = f"127.0.0.1:{sshd_server.port}"
    replica = (f"url: sftp://{PASSWORD_USER}:{s['sftp-url-pass']}@{host}/backup" if form == "url" else
               f"url: sftp://{PASSWORD_USER}@{host}/backup\npassword: {s['sftp-password']}")
    text = run_against(tmp_path, replica, log_type)
    assert_no_secret(text)
    assert "authentication failed" in text  # sshd did check (and refuse) the password


def test_environment_credentials_are_masked(tmp_path: Path) -> None:
    # A credential the process read from its environment, in a message that echoes it, is still masked.
    secret = "ENVSECRETzq8value"
    (tmp_path / secret).mkdir()
    proc = run_ours("restore", "-o", str(tmp_path / secret), f"file://{tmp_path / 'rep'}", cwd=tmp_path,
                    env={"AWS_SECRET_ACCESS_KEY": secret}, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, f"Error: cannot restore, output path is a directory: "
                                                 f"{tmp_path}/[REDACTED]\n")
