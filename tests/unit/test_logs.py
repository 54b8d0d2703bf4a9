"""slog-compatible logging (litestream.logs).

Expected lines are verbatim output of the reference binary (litestream 0.5.17,
/tmp/refvenv/bin/litestream), from litestream-0.5.17-outputs.txt or captured with
`litestream replicate -config c.yml` where c.yml set `logging: {level: ..., type: ...}`
(the "litestream" start-up line echoes logging.level, which let us feed it odd strings),
and for colours under a pseudo-terminal (`script -q -c ...`). Only the clock is pinned.
"""

from __future__ import annotations

import inspect
import io
import logging
import time

import pytest

from litestream import logs
from litestream.gofmt import Duration, parse_rfc3339_ns


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch):
    """Returns configure(ts, level, type, ...) -> StringIO capturing the log output."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("LOG_LEVEL", raising=False)

    def configure(ts: str, level: str = "trace", type: str = "text", source: bool = False,
                  color: bool | None = None) -> io.StringIO:
        ns = parse_rfc3339_ns(ts)[0]
        monkeypatch.setattr(logs, "_clock", lambda: ns)
        buf = io.StringIO()
        logs.init_log(buf, level, type, source, color=color)
        return buf

    yield configure
    monkeypatch.undo()
    time.tzset()
    logs.init_log("stdout", "INFO", "text", False)


STORE = logs.get_logger("store").with_attrs(system="store")
S15 = Duration(15 * 10**9)
M5 = Duration(300 * 10**9)


class _Err(Exception):
    pass


# ---------------------------------------------------------------------------
# text (slog.TextHandler)


def test_text_reference_lines(setup) -> None:
    buf = setup("2026-11-25T22:03:17.393901Z", level="info")
    logs.info("database already exists, skipping")
    assert buf.getvalue() == (
        'time=2026-11-25T22:03:17.393Z level=INFO msg="database already exists, skipping"\n')

    buf = setup("2026-11-25T22:03:11.428Z", level="info")
    logs.info("litestream", version="0.5.17", level="")
    logs.get_logger("server").with_attrs(system="server").info("control socket listening",
                                                              path="/srv/demo/ls.sock")
    logs.info("replicating to", "type", "file", "sync-interval", Duration(10**9), "path", "/srv/demo/replica")
    STORE.info("starting compaction monitor", level=2, interval=Duration(300 * 10**9))
    STORE.info("starting compaction monitor", level=9, interval=Duration(86400 * 10**9))
    STORE.info("starting L0 retention monitor", interval=S15, retention=M5)
    STORE.info("snapshot complete", db="app.db", txid="0000000000000001", size=1475)
    logs.info("signal received, litestream shutting down", signal="terminated")
    STORE.debug("not shown at info")
    assert buf.getvalue().splitlines() == [
        'time=2026-11-25T22:03:11.428Z level=INFO msg=litestream version=0.5.17 level=""',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="control socket listening" system=server '
        'path=/srv/demo/ls.sock',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="replicating to" type=file sync-interval=1s '
        'path=/srv/demo/replica',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="starting compaction monitor" system=store level=2 '
        'interval=5m0s',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="starting compaction monitor" system=store level=9 '
        'interval=24h0m0s',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="starting L0 retention monitor" system=store '
        'interval=15s retention=5m0s',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="snapshot complete" system=store db=app.db '
        'txid=0000000000000001 size=1475',
        'time=2026-11-25T22:03:11.428Z level=INFO msg="signal received, litestream shutting down" '
        'signal=terminated',
    ]


def test_text_trace_debug_and_errors(setup) -> None:
    buf = setup("2026-11-26T00:52:17.385999Z")
    STORE.trace("sync: skip", db="app.db", reason="no new wal pages")
    STORE.debug("db not ready, skipping", db="app.db", level=2, path="/tmp/gofl/tr/app.db",
                error=_Err("db not ready: page size not initialized"))
    logs.error("no databases specified in configuration")
    assert buf.getvalue().splitlines() == [
        'time=2026-11-26T00:52:17.385Z level=TRACE msg="sync: skip" system=store db=app.db '
        'reason="no new wal pages"',
        'time=2026-11-26T00:52:17.385Z level=DEBUG msg="db not ready, skipping" system=store db=app.db '
        'level=2 path=/tmp/gofl/tr/app.db error="db not ready: page size not initialized"',
        'time=2026-11-26T00:52:17.385Z level=ERROR msg="no databases specified in configuration"',
    ]


def test_text_quoting_matches_binary(setup) -> None:
    buf = setup("2026-11-26T00:40:20.401Z")
    # logging.level: "x\u00e9\ty\"z=\\\\w\x7f\u2028<&>\b\f" and "\x01\u00a0\u200b\U0001F600\ud7ff"
    logs.info("litestream", version="0.5.17", level='x\u00e9\ty"z=\\\\w\x7f\u2028<&>\b\f')
    logs.info("litestream", version="0.5.17", level="\x01\u00a0\u200b\U0001f600\ud7ff")
    assert buf.getvalue().splitlines() == [
        'time=2026-11-26T00:40:20.401Z level=INFO msg=litestream version=0.5.17 '
        'level="x\u00e9\\ty\\"z=\\\\\\\\w\\x7f\\u2028<&>\\b\\f"',
        'time=2026-11-26T00:40:20.401Z level=INFO msg=litestream version=0.5.17 '
        'level="\\x01\\u00a0\\u200b\U0001f600\\ud7ff"',
    ]


def test_text_value_kinds(setup) -> None:
    # slog rules: a lone backslash, DEL or "<&>" need no quotes; "=" , space, '"' and "" do;
    # floats use %g, booleans and ints are bare, nil is <nil>, []byte is always quoted.
    buf = setup("2026-01-02T03:04:05.006Z")
    logs.info("k", a="C:\\x", b="\x7f", c="<&>", d="a=b", e="", f=True, g=1.5, h=1e6, i=None, j=b"ab",
              k=[1, "x"], m=Duration(1500))
    assert buf.getvalue() == ('time=2026-01-02T03:04:05.006Z level=INFO msg=k a=C:\\x b=\x7f c=<&> '
                              'd="a=b" e="" f=true g=1.5 h=1e+06 i=<nil> j="ab" k="[1 x]" m=1.5\u00b5s\n')


def test_text_local_time_zone(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # TZ=Asia/Kolkata litestream restore -if-db-not-exists -o /etc/hostname file:///tmp/x
    buf = setup("2026-11-26T00:51:50.444Z", level="info")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    logs.info("database already exists, skipping")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    logs.info("database already exists, skipping")
    assert buf.getvalue().splitlines() == [
        'time=2026-11-26T06:21:50.444+05:30 level=INFO msg="database already exists, skipping"',
        'time=2026-11-25T19:51:50.444-05:00 level=INFO msg="database already exists, skipping"',
    ]


def test_text_source(setup) -> None:
    # Reference: `time=... level=INFO source=replicate.go:180 msg=litestream ...` (path relative to
    # the package, placed before msg).
    buf = setup("2026-11-26T00:45:43.905Z", level="info", source=True)
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    logs.info("litestream", version="0.5.17")
    assert buf.getvalue() == (f"time=2026-11-26T00:45:43.905Z level=INFO source=test_logs.py:{line} "
                              "msg=litestream version=0.5.17\n")


def test_stdlib_records_are_rendered(setup) -> None:
    buf = setup("2026-11-26T00:45:43.905Z", level="debug")
    logging.getLogger("litestream.somewhere").warning("plain %s call", "logging")
    logging.getLogger("litestream.somewhere").log(5, "trace via stdlib is below debug")
    assert buf.getvalue().endswith('level=WARN msg="plain logging call"\n')
    assert buf.getvalue().count("\n") == 1


# ---------------------------------------------------------------------------
# json (slog.JSONHandler)


def test_json_reference_lines(setup) -> None:
    buf = setup("2026-11-26T00:40:21.907864943Z", type="json")
    logs.info("litestream", version="0.5.17", level='x\u00e9\ty"z=\\\\w\x7f\u2028<&>\b\f')
    STORE.info("starting L0 retention monitor", interval=S15, retention=M5)
    logs.error("no databases specified in configuration")
    STORE.trace("sync: skip", db="app.db", reason="no new wal pages")
    STORE.debug("db not ready, skipping", db="app.db", level=1, path="/tmp/gofl/tr/app.db",
                error=_Err("db not ready: page size not initialized"))
    assert buf.getvalue().splitlines() == [
        '{"time":"2026-11-26T00:40:21.907864943Z","level":"INFO","msg":"litestream","version":"0.5.17",'
        '"level":"x\u00e9\\ty\\"z=\\\\\\\\w\x7f\\u2028<&>\\u0008\\u000c"}',
        '{"time":"2026-11-26T00:40:21.907864943Z","level":"INFO","msg":"starting L0 retention monitor",'
        '"system":"store","interval":15000000000,"retention":300000000000}',
        '{"time":"2026-11-26T00:40:21.907864943Z","level":"ERROR",'
        '"msg":"no databases specified in configuration"}',
        '{"time":"2026-11-26T00:40:21.907864943Z","level":"TRACE","msg":"sync: skip","system":"store",'
        '"db":"app.db","reason":"no new wal pages"}',
        '{"time":"2026-11-26T00:40:21.907864943Z","level":"DEBUG","msg":"db not ready, skipping",'
        '"system":"store","db":"app.db","level":1,"path":"/tmp/gofl/tr/app.db",'
        '"error":"db not ready: page size not initialized"}',
    ]


def test_json_time_trims_zeros_and_source_group(setup) -> None:
    # RFC3339Nano as in `{"time":"2026-11-26T00:52:21.36886989Z",...}` from the binary.
    buf = setup("2026-11-26T00:52:21.368869890Z", type="json", source=True)
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    logs.info("m", n=[1, "<&>"], t=None)
    assert buf.getvalue() == (
        '{"time":"2026-11-26T00:52:21.36886989Z","level":"INFO","source":{"function":"test_logs.'
        f'test_json_time_trims_zeros_and_source_group","file":"test_logs.py","line":{line}}},"msg":"m",'
        '"n":[1,"<&>"],"t":null}\n')


# ---------------------------------------------------------------------------
# pretty (tint)


def test_pretty_without_colour(setup) -> None:
    buf = setup("2026-11-26T00:52:23Z", type="pretty", color=False)
    logs.info("litestream", version="0.5.17", level="trace")
    STORE.info("starting L0 retention monitor", interval=S15, retention=M5)
    logs.error("no databases specified in configuration")
    STORE.trace("sync: skip", db="app.db", reason="no new wal pages")
    STORE.debug("db not ready, skipping", db="app.db", level=2,
                error=_Err("db not ready: page size not initialized"))
    logs.warn("w", v="a\x1b[31mb")
    assert buf.getvalue().splitlines() == [
        "00:52:23 INF litestream version=0.5.17 level=trace",
        "00:52:23 INF starting L0 retention monitor system=store interval=15s retention=5m0s",
        "00:52:23 ERR no databases specified in configuration",
        '00:52:23 TRACE sync: skip system=store db=app.db reason="no new wal pages"',
        '00:52:23 DBG db not ready, skipping system=store db=app.db level=2 '
        'error="db not ready: page size not initialized"',
        "00:52:23 WRN w v=ab",  # without colour tint strips escape sequences from values
    ]


def test_pretty_with_colour(setup) -> None:
    buf = setup("2026-11-26T00:52:28Z", type="pretty", color=True)
    logs.info("litestream", version="0.5.17", level="trace")
    STORE.trace("sync: skip", db="app.db", reason="no new wal pages")
    STORE.debug("scheduling retry for unready dbs", level=2)
    logs.warn("w")
    logs.error("e")
    assert buf.getvalue().splitlines() == [
        "\x1b[2m00:52:28\x1b[0m \x1b[92mINF\x1b[0m litestream \x1b[2mversion=\x1b[0m0.5.17 "
        "\x1b[2mlevel=\x1b[0mtrace",
        "\x1b[2m00:52:28\x1b[0m TRACE sync: skip \x1b[2msystem=\x1b[0mstore \x1b[2mdb=\x1b[0mapp.db "
        '\x1b[2mreason=\x1b[0m"no new wal pages"',
        "\x1b[2m00:52:28\x1b[0m DBG scheduling retry for unready dbs \x1b[2msystem=\x1b[0mstore "
        "\x1b[2mlevel=\x1b[0m2",
        # WRN/ERR colours from tint v1.1.3's handler.go.
        "\x1b[2m00:52:28\x1b[0m \x1b[93mWRN\x1b[0m w",
        "\x1b[2m00:52:28\x1b[0m \x1b[91mERR\x1b[0m e",
    ]


def test_pretty_source(setup) -> None:
    # Reference: "00:45:43 INF replicate.go:180 litestream version=0.5.17 level=trace".
    buf = setup("2026-11-26T00:45:43Z", type="pretty", source=True, color=False)
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    logs.info("litestream", version="0.5.17")
    assert buf.getvalue() == f"00:45:43 INF test_logs.py:{line} litestream version=0.5.17\n"


# ---------------------------------------------------------------------------
# levels and configuration


@pytest.mark.parametrize(("name", "level"), [
    ("trace", logs.TRACE), ("TRACE", logs.TRACE), ("debug", logs.DEBUG), ("Info", logs.INFO),
    ("warn", logs.WARN),
    ("WARNING", logs.WARN), ("error", logs.ERROR), ("", logs.INFO), (None, logs.INFO), ("verbose", logs.INFO),
    ("fatal", logs.INFO),
])
def test_parse_level(name: str | None, level: int) -> None:
    assert logs.parse_level(name) == level


def test_level_names() -> None:
    assert [logs.level_name(x) for x in (-8, -6, -4, 0, 2, 4, 8, 12)] == [
        "TRACE", "DEBUG-2", "DEBUG", "INFO", "INFO+2", "WARN", "ERROR", "ERROR+4"]


def test_level_filtering(setup) -> None:
    buf = setup("2026-11-26T00:00:00Z", level="warn")
    logs.trace("t")
    logs.debug("d")
    logs.info("i")
    logs.warn("w")
    logs.error("e")
    assert [line.split()[1] for line in buf.getvalue().splitlines()] == ["level=WARN", "level=ERROR"]
    assert logs.current_level() == logs.WARN
    assert STORE.enabled(logs.ERROR) and not STORE.enabled(logs.INFO)


def test_log_level_env_overrides_config(setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # LOG_LEVEL=error hides the INFO line of `restore -if-db-not-exists` in the binary;
    # LOG_LEVEL=debug shows DEBUG lines although main() asked for INFO.
    monkeypatch.setenv("LOG_LEVEL", "error")
    buf = setup("2026-11-26T00:00:00Z", level="info")
    monkeypatch.setenv("LOG_LEVEL", "error")
    logs.init_log(buf, "info")
    logs.info("database already exists, skipping")
    assert buf.getvalue() == ""
    monkeypatch.setenv("LOG_LEVEL", "debug")
    logs.init_log(buf, "error")
    logs.debug("finding ltx files for level")
    assert "level=DEBUG" in buf.getvalue()
    monkeypatch.setenv("LOG_LEVEL", "")  # empty means "not set"
    logs.init_log(buf, "error")
    assert logs.current_level() == logs.ERROR


def test_configure_streams_and_bad_type(setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup("2026-11-26T00:00:00Z")
    logs.configure(level="info", type="text", stderr=True)
    logs.info("to stderr")
    logs.configure(level=None, type="", stderr=False)  # "" is text
    logs.info("to stdout")
    out, err = capsys.readouterr()
    assert err.endswith('msg="to stderr"\n') and out.endswith('msg="to stdout"\n')
    for bad in ("JSON", "logfmt", "Text"):
        with pytest.raises(ValueError, match="invalid logging type"):
            logs.configure(level="info", type=bad)


def test_default_before_config_is_text_on_stdout(setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup("2026-11-25T22:03:17.393Z")
    logs.init_log("stdout", "INFO", "text", False)
    logs.info("database already exists, skipping")
    logs.debug("hidden")
    assert capsys.readouterr().out == (
        'time=2026-11-25T22:03:17.393Z level=INFO msg="database already exists, skipping"\n')


# ---------------------------------------------------------------------------
# attributes and redaction


def test_attribute_order_with_and_bad_keys(setup) -> None:
    buf = setup("2026-11-26T00:00:00Z")
    log = logs.get_logger("x").with_attrs("db", "app.db").with_attrs(replica="file")
    log.info("m", "txid.replica", "0000000000000001", logs.Attr("txid.db", "0000000000000002"), 7, "dangling",
             size=3)
    assert buf.getvalue() == (
        "time=2026-11-26T00:00:00.000Z level=INFO msg=m db=app.db replica=file txid.replica=0000000000000001 "
        "txid.db=0000000000000002 !BADKEY=7 !BADKEY=dangling size=3\n")


def test_secrets_are_redacted(setup) -> None:
    buf = setup("2026-11-26T00:00:00Z")
    logs.info("cfg", **{"secret-access-key": "s3cr3t", "access-key-id": "AKIA123", "password": "pw",
                        "sas-token": "tok", "account-key": "ak", "sse-customer-key": "ck",
                        "key": "ltx/0/a.ltx", "key-path": "/home/u/.ssh/id", "sse-kms-key-id": "kms-1",
                        "SecretAccessKey": "s"})
    logs.info("url", url="nats://user:p@ss@host:4222/b?x=1", plain="sftp://user@host/path",
              err=_Err("dial webdav://bob:hunter2@dav/x failed"))
    lines = buf.getvalue().splitlines()
    assert lines[0].endswith(
        "msg=cfg secret-access-key=[REDACTED] access-key-id=AKIA123 password=[REDACTED] sas-token=[REDACTED] "
        "account-key=[REDACTED] sse-customer-key=[REDACTED] key=ltx/0/a.ltx key-path=/home/u/.ssh/id "
        "sse-kms-key-id=kms-1 SecretAccessKey=[REDACTED]")
    assert lines[1].endswith(
        'msg=url url="nats://user:xxxxx@host:4222/b?x=1" plain=sftp://user@host/path '
        'err="dial webdav://bob:xxxxx@dav/x failed"')
    assert logs.is_secret_key("webdav_password") and not logs.is_secret_key("keys")
    assert logs.redact_url("s3://a:b@c/d and https://x:y@z") == "s3://a:xxxxx@c/d and https://x:xxxxx@z"
