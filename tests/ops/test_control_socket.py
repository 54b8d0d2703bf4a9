"""The control socket and its commands (reference §1.2, §1.3, §1.4, §3.9): `info`, `list`, `start`, `stop`,
`sync`, `register`, `unregister` against a running `replicate -config` with `socket:` enabled.

The same HTTP requests and the same command sequence run against our daemon and the reference binary's,
compared byte for byte where nothing varies (errors, 404/405/301 answers, texts) and by shape where it
does (times, pids, TXIDs). Then what only a real daemon shows: `sync -wait` rides on the one upload a
change makes, stop/start/unregister/register of one database while another keeps replicating (a
registered database restores to its rows), the socket's start-up checks, the client's connection errors."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cliutil import Background, add_rows, l0_files, log_line, make_db, read_rows, restore, wait_for
from tests.conftest import run_ours
from tests.ops.metricsutil import metrics, value
from tests.refbin import run_ref
from tests.servers import free_port

FAST = "monitor-interval: 100ms"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


# ------------------------------------------------------------------------------------------- helpers

def _config(d: Path, dbs: dict[str, list[str]], extra: str = "", db_extra: str = FAST) -> Path:
    """A config with the socket at d/ls.sock and each database (name -> replica dir names) in d."""
    lines = ["socket:", "  enabled: true", f"  path: {d}/ls.sock"]
    lines += [extra] if extra else []
    lines.append("dbs:")
    for name, reps in dbs.items():
        lines.append(f"  - path: {d}/{name}")
        if db_extra:
            lines.append(f"    {db_extra}")
        if len(reps) == 1:
            lines += ["    replica:", f"      url: file://{d}/{reps[0]}"]
        else:
            lines.append("    replicas:")
            lines += [f"      - url: file://{d}/{r}" for r in reps]
    cfg = d / "litestream.yml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def _http(sock: str | Path, method: str, target: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 request over the unix socket: (status, headers, body). The request goes out in one
    write, so a server that answers without reading the body (Go's redirect) does not break it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(str(sock))
        hdrs = {"Host": "localhost", "Connection": "close", **(headers or {})}
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        s.sendall(head.encode() + (body or b""))
        r = http.client.HTTPResponse(s, method=method)
        r.begin()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        s.close()


def _txid(sock: Path, path: str) -> int:
    """The database's TXID through the socket (-1: not there, or the socket does not answer yet)."""
    try:
        status, _, body = _http(sock, "GET", f"/txid?path={path}")
    except OSError:
        return -1
    return json.loads(body)["txid"] if status == 200 else -1


@contextlib.contextmanager
def _running(d: Path, cfg: Path, ref: bool, ready: tuple[str, ...] = ("a.db",)) -> Iterator[Background]:
    """`replicate -config cfg` in d until the block ends (SIGTERM); the socket answers and the `ready`
    databases have synced once when the block starts."""
    bg = Background(["replicate", "-config", str(cfg)], ref=ref, cwd=d)
    try:
        sock = d / "ls.sock"
        assert wait_for(lambda: sock.exists() or bg.proc.poll() is not None, 30), bg.output()
        for name in ready:
            assert wait_for(lambda name=name: _txid(sock, str(d / name)) >= 1, 30), bg.output()
        yield bg
    finally:
        if bg.proc.poll() is None:
            bg.signal()
        try:
            rc = bg.finish(timeout=60)
        except BaseException:
            bg.kill()
            raise
    assert rc == 0, bg.stdout + bg.stderr
    logged = bg.stdout + bg.stderr
    assert "Traceback" not in logged, logged[logged.find("Traceback") - 200:]


def _cli(ref: bool, *args: str, cwd: Path):
    return (run_ref if ref else run_ours)(*args, cwd=cwd, timeout=120)


def _norm(text: str, d: Path) -> str:
    """Text output without what differs between two runs: the directory, times, pids, uptimes, TXIDs."""
    text = text.replace(str(d), "DIR")
    text = _TIME.sub("TIME", text)
    text = re.sub(r"(PID|Uptime): +\S+", r"\1: X", text)
    text = re.sub(r"(txid|replica_txid|final_txid|duration_ms): \d+", r"\1: N", text)
    return text


def _shape(v, d: Path):
    """A JSON value with numbers replaced by their type and strings normalised (key order kept)."""
    if isinstance(v, dict):
        return {k: _shape(x, d) for k, x in v.items()}
    if isinstance(v, list):
        return [_shape(x, d) for x in v]
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return _norm(v, d)


# ------------------------------------------------------------------------------- HTTP vs reference

# Requests whose answers do not vary: compared byte for byte (status, headers that matter, body).
EXACT = [
    ("POST", "/list", None), ("GET", "/start", None), ("DELETE", "/sync", None), ("OPTIONS", "/list", None),
    ("GET", "/nope", None), ("GET", "/list/", None), ("GET", "/LIST", None), ("GET", "/debug/sync-status/", None),
    ("GET", "//list", None), ("GET", "/a/../list?x=1", None), ("POST", "//sync", b"{}"),
    ("GET", "/txid", None), ("GET", "/txid?path=/nonexistent.db", None),
    ("GET", "/debug/sync-status?path=/nonexistent.db", None),
    ("POST", "/start", b"{bad"), ("POST", "/start", b""), ("POST", "/start", b"  "), ("POST", "/start", b"{}"),
    ("POST", "/start", b'{"path":"/x.db"'), ("POST", "/start", b'{"path":null}'), ("POST", "/start", b"null"),
    ("POST", "/start", b'{"path":"/x.db"}'), ("POST", "/start", b'{"PATH":"/x.db"}'),
    ("POST", "/start", b'{"path":"/x.db"} trailing'), ("POST", "/start", b'{"path":123}'),
    ("POST", "/start", b'{"path":"/x.db","timeout":"a"}'), ("POST", "/start", b'{"path":"/x.db","timeout":1.5}'),
    ("POST", "/start", b'{"path":"/x.db","timeout":1e99}'), ("POST", "/start", b"[1]"), ("POST", "/start", b'"s"'),
    ("POST", "/start", b"nul"), ("POST", "/start", b'{"path" 1}'), ("POST", "/start", b'{"path":"a" "b"}'),
    ("POST", "/start", b'{"path":tru}'), ("POST", "/start", b'{"path":"a\x01"}'), ("POST", "/start", b"x"),
    ("POST", "/start", b'{"path":"\\q"}'), ("POST", "/start", b"{,}"), ("POST", "/start", b'{"a":1,}'),
    ("POST", "/start", b'{"path":01}'), ("POST", "/start", b'{"path":-}'), ("POST", "/start", b'{"path":"\\ud800"}'),
    ("POST", "/stop", b'{"path":"/x.db"}'), ("POST", "/stop", b"{"),
    ("POST", "/sync", b'{"path":"/x.db"}'), ("POST", "/sync", b'{"path":"/x.db","wait":1}'),
    ("POST", "/sync", b'{"path":"~/no/such.db"}'),
    ("POST", "/register", b'{"path":"/x.db"}'), ("POST", "/register", b'{"path":"","replica_url":""}'),
    ("POST", "/register", b'{"path":"/x.db","replica_url":"bogus://x"}'),
    ("POST", "/register", b'{"path":"/x.db","replica_url":"nourl"}'),
    ("POST", "/register", b'{"path":"/x.db","replica_url":"s3://"}'),
    ("POST", "/register", b'{"path":"a.db","replica_url":"bogus://x"}'),  # registered already: no URL check
    ("POST", "/unregister", b'{"path":"/x.db"}'), ("POST", "/unregister", b'{"path":"/x.db","timeout":"x"}'),
]
HEADERS = ("content-type", "allow", "location", "x-content-type-options", "content-length")

# Every key the reference's /debug/sync-status may give a database (ours gives those it tracks).
SYNC_STATUS_KEYS = {"path", "active", "operation", "phase", "started_at", "updated_at", "elapsed_seconds", "txid",
                    "wal_size", "last_synced_wal_offset", "snapshotting", "checkpoint_mode", "reason", "error",
                    "executor_waiter_count", "executor_wait_started_at", "executor_wait_seconds"}


def _answers(d: Path, ref: bool) -> dict:
    make_db(d / "a.db")
    out: dict = {}
    with _running(d, _config(d, {"a.db": ["rep"]}), ref):
        sock = d / "ls.sock"
        for method, target, body in EXACT:
            status, headers, data = _http(sock, method, target, body)
            out[(method, target, body)] = (status, {h: headers.get(h) for h in HEADERS}, data)
        a = str(d / "a.db")
        for name, (method, target, body) in {
            "list": ("GET", "/list", None), "info": ("GET", "/info", None), "txid": ("GET", f"/txid?path={a}", None),
            "txid-relative": ("GET", "/txid?path=a.db", None),
            "sync": ("POST", "/sync", json.dumps({"path": a}).encode()),
            "sync-wait": ("POST", "/sync", json.dumps({"path": "a.db", "wait": True, "timeout": 10}).encode()),
            "sync-status": ("GET", "/debug/sync-status", None),
            "sync-status-one": ("GET", "/debug/sync-status?path=sqlite://a.db", None),
            "already-registered": ("POST", "/register", json.dumps({"path": a, "replica_url": "file:///x"}).encode()),
        }.items():
            status, headers, data = _http(sock, method, target, body)
            out[name] = (status, headers.get("content-type"), data)
        out["head"] = _http(sock, "HEAD", "/list")
    return out


def test_http_answers_match_reference(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    ours = _answers(tmp_path / "ours", ref=False)
    ref = _answers(tmp_path / "ref", ref=True)
    for req in EXACT:
        o_status, o_headers, o_body = ours[req]
        r_status, r_headers, r_body = ref[req]
        # Relative paths expand to the daemon's directory: the only thing that differs.
        assert o_headers.pop("content-length") == str(len(o_body)), req
        assert r_headers.pop("content-length") == str(len(r_body)), req
        o_body = o_body.replace(str(tmp_path / "ours").encode(), b"DIR")
        r_body = r_body.replace(str(tmp_path / "ref").encode(), b"DIR")
        assert (o_status, o_headers, o_body) == (r_status, r_headers, r_body), req
    assert ref[EXACT[0]][0] == 405 and ref[("GET", "//list", None)][0] == 301  # the list is not all 200s

    def body(which: dict, key: str, d: Path):
        status, ctype, data = which[key]
        assert status == 200 and ctype == "application/json", (key, data)
        assert data.endswith(b"}\n") and b"\n" not in data[:-1] and b": " not in data  # json.Encoder form
        return json.loads(data)

    for key in ("list", "info", "txid", "txid-relative", "sync", "sync-wait", "already-registered"):
        o, r = body(ours, key, tmp_path / "ours"), body(ref, key, tmp_path / "ref")
        assert json.dumps(_shape(o, tmp_path / "ours")) == json.dumps(_shape(r, tmp_path / "ref")), key
    o = body(ours, "sync-wait", tmp_path / "ours")
    assert o["status"] == "no_change" and o["replicated_txid"] >= o["txid"] >= 1
    assert body(ours, "info", tmp_path / "ours")["version"] == "0.5.17"
    for key in ("sync-status", "sync-status-one"):
        o, r = body(ours, key, tmp_path / "ours"), body(ref, key, tmp_path / "ref")
        assert len(o["databases"]) == len(r["databases"]) == 1
        keys = set(o["databases"][0])
        assert {"path", "active"} <= keys <= SYNC_STATUS_KEYS, keys
        assert o["databases"][0]["path"] == str(tmp_path / "ours" / "a.db")
        assert o["databases"][0]["txid"] >= 1  # a number, as the reference's
    o_status, o_headers, o_data = ours["head"]
    r_status, r_headers, r_data = ref["head"]
    assert (o_status, o_headers["content-type"], o_data) == (r_status, r_headers["content-type"], r_data) == (
        200, "application/json", b"")
    assert int(o_headers["content-length"]) > 0


def test_keep_alive_and_chunked_body(tmp_path: Path) -> None:
    """Several requests on one connection (as Go's client reuses them), and a chunked request body."""
    make_db(tmp_path / "a.db")
    with _running(tmp_path, _config(tmp_path, {"a.db": ["rep"]}), ref=False):
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.sock.connect(str(tmp_path / "ls.sock"))
        for _ in range(3):
            conn.request("GET", "/info")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["database_count"] == 1
        conn.request("POST", "/sync", body=iter([b'{"path":', b'"a.db"}']), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["path"] == str(tmp_path / "a.db")
        conn.close()
        # Clients that reset the connection right after asking: the daemon's writes get EPIPE (a SIGPIPE
        # would end it silently), and it goes on answering.
        for _ in range(30):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(tmp_path / "ls.sock"))
            s.sendall(b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n")
            s.close()
        status, _, body = _http(tmp_path / "ls.sock", "GET", "/info")
        assert status == 200 and json.loads(body)["database_count"] == 1


# -------------------------------------------------------------------------------- CLI vs reference

def _sequence(d: Path, ref: bool) -> list[tuple[list[str], int, str, str]]:
    make_db(d / "a.db")
    make_db(d / "b.db")
    S = ["-socket", str(d / "ls.sock")]
    a, b = str(d / "a.db"), str(d / "b.db")
    out = []

    def run(*args: str) -> None:
        p = _cli(ref, *args, cwd=d)
        out.append((list(args), p.returncode, p.stdout, p.stderr))

    with _running(d, _config(d, {"a.db": ["rep"]}), ref):
        run("sync", *S, "-wait", a)  # a first upload: `list` shows a last sync on both
        run("list", *S)
        run("list", *S, "-json")
        run("info", *S)
        run("info", *S, "-json")
        run("sync", *S, a)
        run("sync", *S, "-json", "a.db")
        run("sync", *S, "-wait", "-json", a)
        run("stop", *S, a)
        run("stop", *S, "-json", a)
        run("sync", *S, a)
        run("list", *S)
        run("list", *S, "-json")
        run("start", *S, "-json", a)
        run("start", *S, a)
        run("register", *S, "-replica", f"file://{d}/replica2", b)
        assert wait_for(lambda: _txid(d / "ls.sock", b) >= 1, 30)
        run("sync", *S, "-wait", b)
        run("register", *S, "-json", "-replica", f"file://{d}/replica2", b)
        run("register", *S, "-replica", "file:///elsewhere", a)
        run("list", *S, "-json")
        run("info", *S, "-json")
        run("unregister", *S, "-dry-run", b)
        run("unregister", *S, b)
        run("unregister", *S, "-json", b)
        run("unregister", *S, b)
        run("list", *S)
        for cmd in ("start", "stop", "sync", "unregister"):
            run(cmd, *S, "/nonexistent.db")
        run("register", *S, "-replica", "bogus://x", str(d / "q.db"))
        run("register", *S, "-replica", "nourl", str(d / "q.db"))
        run("start", *S, "")
        run("list", *S, "-timeout", "1", "extra")
        run("sync", *S, "-timeout", "0", a)
        run("start", *S, "-timeout", "0", a)  # start does not check it: 0 is no limit
    return out


def test_cli_sequence_matches_reference(tmp_path: Path) -> None:
    (tmp_path / "ours").mkdir()
    (tmp_path / "ref").mkdir()
    ours = _sequence(tmp_path / "ours", ref=False)
    ref = _sequence(tmp_path / "ref", ref=True)
    assert len(ours) == len(ref)
    for (args, o_rc, o_out, o_err), (_, r_rc, r_out, r_err) in zip(ours, ref, strict=True):
        od, rd = tmp_path / "ours", tmp_path / "ref"
        shown = " ".join(args).replace(str(od), "DIR")
        assert o_rc == r_rc, (shown, o_out, o_err, r_out, r_err)
        assert _norm(o_err, od) == _norm(r_err, rd), shown
        if "-json" in args and o_rc == 0:
            assert o_out.endswith("\n") and o_out.startswith("{\n  ")  # MarshalIndent, two spaces
            o, r = json.loads(o_out), json.loads(r_out)
            assert json.dumps(_shape(o, od)) == json.dumps(_shape(r, rd)), (shown, o_out, r_out)
        else:
            assert _norm(o_out, od) == _norm(r_out, rd), (shown, o_out, r_out)
    by_cmd = {" ".join(a).replace(str(tmp_path / "ours"), "DIR"): (rc, out, err) for a, rc, out, err in ours}
    # A few exact values of ours, beyond the shapes: TXIDs in decimal, the socket, the states, stderr.
    _, out, _ = by_cmd["stop -socket DIR/ls.sock DIR/a.db"]
    assert re.fullmatch(r"status: stopped\ndb_path: DIR/a.db\nstate: stopped\ntxid: [1-9]\d*\n"
                        r"socket: DIR/ls.sock\n", out.replace(str(tmp_path / "ours"), "DIR")), out
    assert next(e for a, rc, _, e in ours if a[0] == "sync" and rc == 1) == \
        f"Error: sync failed: database not open: {tmp_path / 'ours' / 'a.db'}\n"
    _rc, out, _ = by_cmd["list -socket DIR/ls.sock"]
    assert re.fullmatch(r"DIR/a.db \[replicating\] \(last sync: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)\n",
                        out.replace(str(tmp_path / "ours"), "DIR")), out
    assert by_cmd["start -socket DIR/ls.sock /nonexistent.db"][2] == \
        "Error: start failed: database not found: /nonexistent.db\n"
    assert by_cmd["sync -socket DIR/ls.sock -timeout 0 DIR/a.db"][2] == "Error: timeout must be greater than 0\n"


# ---------------------------------------------------------------------- sync -wait and its uploads

def _replica_files(rep: Path) -> set[str]:
    return {str(p.relative_to(rep)) for p in rep.rglob("*.ltx")}


def _puts(port: int) -> int:
    return int(value(metrics(port), "litestream_replica_operation_total", operation="PUT") or 0)


def test_sync_wait_uploads_only_what_changed(tmp_path: Path) -> None:
    """`sync -wait` makes one L0 file and waits for its one upload; with nothing new it uploads nothing.
    A long monitor-interval keeps the background syncs out of the way: the change waits for our sync."""
    make_db(tmp_path / "a.db")
    port = free_port()
    cfg = _config(tmp_path, {"a.db": ["rep"]}, extra=f"addr: 127.0.0.1:{port}\nlevels:\n  - interval: 1h",
                  db_extra="monitor-interval: 1h")
    rep, a, sock = tmp_path / "rep", str(tmp_path / "a.db"), tmp_path / "ls.sock"
    with _running(tmp_path, cfg, ref=False):
        # Settle: the first L0 and the replica's first snapshot are uploaded.
        assert wait_for(lambda: "ltx/0/0000000000000001-0000000000000001.ltx" in _replica_files(rep)
                        and any(f.startswith("ltx/9/") for f in _replica_files(rep)), 20)
        assert wait_for(lambda: _puts(port) == len(_replica_files(rep)), 10)
        files, puts = _replica_files(rep), _puts(port)
        add_rows(a, ["d", "e"])
        p = run_ours("sync", "-socket", str(sock), "-wait", "-json", a, timeout=60)
        assert p.returncode == 0, p.stderr
        r = json.loads(p.stdout)
        assert list(r) == ["db_path", "txid", "replica_txid", "duration_ms"]
        assert r["replica_txid"] >= r["txid"] == 2
        new = _replica_files(rep) - files
        assert new == {"ltx/0/0000000000000002-0000000000000002.ltx"}
        assert _puts(port) == puts + 1
        files, puts = _replica_files(rep), _puts(port)
        for _ in range(2):
            status, _, body = _http(sock, "POST", "/sync", json.dumps({"path": a, "wait": True}).encode())
            assert (status, json.loads(body)) == (200, {"status": "no_change", "path": a, "txid": 2,
                                                        "replicated_txid": 2})
        p = run_ours("sync", "-socket", str(sock), "-wait", a, timeout=60)
        assert re.fullmatch(r"db_path: .*\ntxid: 2\nreplica_txid: 2\nduration_ms: \d+\n", p.stdout), p.stdout
        assert _replica_files(rep) == files and _puts(port) == puts
        # Without -wait: the L0 file now, its upload by the usual path (once).
        add_rows(a, ["f"])
        status, _, body = _http(sock, "POST", "/sync", json.dumps({"path": a}).encode())
        assert status == 200 and json.loads(body)["status"] == "synced_local" and json.loads(body)["txid"] == 3
        assert wait_for(lambda: _puts(port) == puts + 1, 10)
        assert _replica_files(rep) - files == {"ltx/0/0000000000000003-0000000000000003.ltx"}
        status, _, body = _http(sock, "POST", "/sync", json.dumps({"path": a, "wait": True}).encode())
        assert json.loads(body)["status"] == "no_change" and _puts(port) == puts + 1


# ----------------------------------------------------------- stop/start/unregister/register at runtime

def _ctl(sock: Path, *args: str) -> str:
    p = run_ours(*args[:1], "-socket", str(sock), *args[1:], timeout=60)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout


def test_runtime_changes_while_another_database_replicates(tmp_path: Path) -> None:
    d = tmp_path
    make_db(d / "a.db")
    make_db(d / "b.db")
    a, b, sock = str(d / "a.db"), str(d / "b.db"), d / "ls.sock"
    with _running(d, _config(d, {"a.db": ["rep-a"], "b.db": ["rep-b"]}), ref=False, ready=("a.db", "b.db")):
        def b_replicates(row: str) -> None:
            before = len(l0_files(d / "rep-b"))
            add_rows(b, [row])
            assert wait_for(lambda: len(l0_files(d / "rep-b")) > before, 10), row

        assert _ctl(sock, "stop", a).startswith("status: stopped\n")
        listed = _ctl(sock, "list").splitlines()
        assert len(listed) == 2
        assert re.fullmatch(rf"{re.escape(a)} \[stopped\] \(last sync: \S+Z\)", listed[0]), listed
        assert re.fullmatch(rf"{re.escape(b)} \[replicating\] \(last sync: \S+Z\)", listed[1]), listed
        stopped_files = l0_files(d / "rep-a")
        add_rows(a, ["while-stopped"])
        b_replicates("b1")
        p = run_ours("sync", "-socket", str(sock), a)
        assert (p.returncode, p.stderr) == (1, f"Error: sync failed: database not open: {a}\n")
        assert l0_files(d / "rep-a") == stopped_files  # nothing replicated while stopped

        out = _ctl(sock, "start", "-json", a)
        assert json.loads(out)["status"] == "started" and json.loads(out)["state"] == "running"
        assert wait_for(lambda: len(l0_files(d / "rep-a")) > len(stopped_files), 10)
        assert json.loads(_ctl(sock, "start", "-json", a))["status"] == "already_running"

        out = json.loads(_ctl(sock, "unregister", "-json", a))
        assert out["status"] == "unregistered" and out["final_txid"] >= 2
        assert [x["path"] for x in json.loads(_ctl(sock, "list", "-json"))["databases"]] == [b]
        gone = l0_files(d / "rep-a")
        add_rows(a, ["after-unregister"])
        b_replicates("b2")
        assert l0_files(d / "rep-a") == gone
        assert json.loads(_ctl(sock, "info", "-json"))["database_count"] == 1

        out = _ctl(sock, "register", "-replica", f"file://{d}/rep-a2", a)
        assert out == f"status: registered\ndb_path: {a}\nreplica: file://{d}/rep-a2\nsocket: {sock}\n"
        add_rows(a, ["registered"])
        r = json.loads(_ctl(sock, "sync", "-wait", "-json", a))
        assert r["replica_txid"] >= r["txid"] >= 1
        listed = json.loads(_ctl(sock, "list", "-json"))["databases"]
        assert [(x["path"], x["status"]) for x in listed] == [(b, "replicating"), (a, "replicating")]
        b_replicates("b3")
        restored = d / "restored-a.db"
        p = restore(d / "rep-a2", restored)
        assert p.returncode == 0, p.stderr
        assert read_rows(restored) == read_rows(a) == ["a", "b", "c", "while-stopped", "after-unregister",
                                                      "registered"]
        _ctl(sock, "sync", "-wait", b)
        p = restore(d / "rep-b", d / "restored-b.db")
        assert p.returncode == 0, p.stderr
        assert read_rows(d / "restored-b.db") == read_rows(b)


def test_registered_database_whose_file_is_missing(tmp_path: Path) -> None:
    """As in the reference: registered and listed as replicating, `sync` has nothing to do, `sync -wait` fails;
    once the file appears it replicates."""
    make_db(tmp_path / "a.db")
    sock, later = tmp_path / "ls.sock", str(tmp_path / "later.db")
    with _running(tmp_path, _config(tmp_path, {"a.db": ["rep"]}), ref=False):
        assert _ctl(sock, "register", "-replica", f"file://{tmp_path}/rep-later", later).startswith(
            "status: registered\n")
        assert f"{later} [replicating] (last sync: never)\n" in _ctl(sock, "list")
        assert _ctl(sock, "sync", later).startswith(f"db_path: {later}\ntxid: 0\n")
        p = run_ours("sync", "-socket", str(sock), "-wait", later)
        assert p.returncode == 1 and p.stderr.startswith("Error: sync failed: sync database: database not ready")
        make_db(tmp_path / "staging.db", ["x"])
        os.rename(tmp_path / "staging.db", later)  # whole (the daemon opens it the moment it appears)
        assert wait_for(lambda: _txid(sock, later) >= 1, 20)
        r = json.loads(_ctl(sock, "sync", "-wait", "-json", later))
        assert r["replica_txid"] >= r["txid"] >= 1
        assert l0_files(tmp_path / "rep-later")


def test_databases_and_list_repeatedly_with_two_replicas(tmp_path: Path) -> None:
    """The seed's `watch -n 5 'litestream databases'`: repeated calls while one database replicates to two
    replicas all work and agree (the reference refuses two replicas for one database)."""
    make_db(tmp_path / "a.db")
    cfg = _config(tmp_path, {"a.db": ["r1", "r2"]})
    sock = tmp_path / "ls.sock"
    with _running(tmp_path, cfg, ref=False):
        add_rows(tmp_path / "a.db", ["d"])
        _ctl(sock, "sync", "-wait", str(tmp_path / "a.db"))
        outs = set()
        for _ in range(5):
            p = run_ours("databases", "-config", str(cfg), cwd=tmp_path)
            assert p.returncode == 0, p.stderr
            q = run_ours("list", "-socket", str(sock))
            assert q.returncode == 0, q.stderr
            outs.add((p.stdout, q.stdout))
        assert len(outs) == 1
        dbs_out, list_out = outs.pop()
        a = tmp_path / "a.db"
        assert dbs_out == f"path{' ' * (len(str(a)) - 2)}replica\n{a}  file\n{a}  file\n"
        assert re.fullmatch(rf"{re.escape(str(a))} \[replicating\] \(last sync: \S+Z\)\n", list_out)
        assert l0_files(tmp_path / "r1") == l0_files(tmp_path / "r2") != []


# ------------------------------------------------------------------------------- socket start-up

def _startup(d: Path, ref: bool, socket_path: Path, perms: str | None = None) -> tuple[str, Background]:
    make_db(d / "a.db")
    cfg = d / "litestream.yml"
    cfg.write_text(f"socket:\n  enabled: true\n  path: {socket_path}\n" + (f"  permissions: {perms}\n" if perms else "")
                   + f"dbs:\n  - path: {d}/a.db\n    {FAST}\n    replica:\n      url: file://{d}/rep\n")
    bg = Background(["replicate", "-config", str(cfg)], ref=ref, cwd=d)
    return str(cfg), bg


def _stop(bg: Background) -> str:
    bg.signal()
    assert bg.finish(timeout=60) == 0
    return bg.stdout


@pytest.mark.parametrize("case", ["regular-file", "missing-dir"])
def test_socket_start_failure_is_a_warning(tmp_path: Path, case: str) -> None:
    """A socket that cannot be set up is logged (WARN, the reference's text) and replication goes on."""
    lines = {}
    for who in ("ours", "ref"):
        d = tmp_path / who
        d.mkdir()
        path = d / "regular" if case == "regular-file" else d / "nodir" / "x.sock"
        if case == "regular-file":
            path.write_text("not a socket")
        _, bg = _startup(d, who == "ref", path)
        try:
            assert wait_for(lambda d=d: len(l0_files(d / "rep")) >= 1, 30), bg.output()
        finally:
            out = _stop(bg)
        line = log_line(out, "failed to start control server")
        assert line is not None, out
        lines[who] = line.replace(str(d), "DIR")
        assert log_line(out, "control socket listening") is None
        if case == "regular-file":
            assert path.read_text() == "not a socket"
    assert lines["ours"] == lines["ref"]
    want = ('level=WARN msg="failed to start control server" error="socket path exists but is not a socket: '
            'DIR/regular"' if case == "regular-file" else
            'level=WARN msg="failed to start control server" error="listen on unix socket: listen unix '
            'DIR/nodir/x.sock: bind: no such file or directory"')
    assert lines["ours"] == want


@pytest.mark.parametrize("ref", [False, True], ids=["ours", "ref"])
def test_stale_socket_replaced_permissions_and_removed_at_exit(tmp_path: Path, ref: bool) -> None:
    path = tmp_path / "ls.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # left by a process that died (never listening)
    stale.close()
    _, bg = _startup(tmp_path, ref, path, perms="0640")
    try:
        assert wait_for(lambda: _txid(path, str(tmp_path / "a.db")) >= 1, 30), bg.output()
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o640
    finally:
        out = _stop(bg)
    line = log_line(out, "control socket listening")
    assert line == f'level=INFO msg="control socket listening" system=server path={path}', out
    assert not path.exists()


# --------------------------------------------------------------------------------- client errors

class FakeServer:
    """A unix socket server answering every connection the same way (a daemon gone wrong)."""

    def __init__(self, path: Path, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        replies = {
            "close": b"",
            "garbage": b"garbage\r\n\r\n",
            "text404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\n\r\n404 page not found\n",
            "err500": b'HTTP/1.1 500 X\r\nContent-Length: 15\r\n\r\n{"error":"boo"}',
            "badjson": b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{"a":',
            "typejson": b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{"databases":"x"}',
            "short": b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{}",
        }
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.recv(65536)
            if self.mode == "hang":
                self.held.append(c)
                continue
            c.sendall(replies[self.mode])
            c.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in self.held:
            c.close()


def test_client_errors_match_reference(tmp_path: Path) -> None:
    d = tmp_path
    (d / "regular").write_text("x")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(d / "dead.sock"))  # a socket nobody listens on
    cases = [
        ["list", "-socket", f"{d}/none.sock"],
        ["info", "-socket", f"{d}/dead.sock"],
        ["sync", "-socket", f"{d}/regular", "x.db"],
        ["register", "-socket", f"{d}/none.sock", "-replica", "file:///r", "x.db"],
        ["unregister", "-socket", f"{d}/none.sock", "x.db"],
        ["stop", "-socket", f"{d}/none.sock", "x.db"],
        ["info", "-socket", ""],
        ["info", "-socket", "relative.sock"],
        ["list", "-socket", "/tmp/" + "0" * 200],
        ["start", "-timeout", "-1", "-socket", f"{d}/none.sock", "x.db"],
        ["start", "-timeout", "0", "-socket", f"{d}/none.sock", "x.db"],
        ["info", "-timeout", "0"], ["list", "-timeout", "-3"], ["sync", "-timeout", "0", "x.db"],
        ["register", "-timeout", "0", "-replica", "file:///r", "x.db"], ["unregister", "-timeout", "0", "x.db"],
        ["start"], ["stop"], ["sync"], ["unregister"], ["register"], ["register", "x.db"],
        ["register", "-replica", "file:///r"], ["start", "a", "b"], ["list", "x"], ["info", "x"],
        ["unregister", "-dry-run", "-timeout", "5", "x.db"], ["unregister", "-dry-run", "x.db"],
        ["unregister", "-dry-run", "-timeout", "0", "x.db"],
        ["info", "-timeout", "abc"], ["stop", "-bogus"], ["list", "-h"], ["sync", "-help"],
    ]
    for mode in ("close", "garbage", "text404", "err500", "badjson", "typejson", "short", "hang"):
        FakeServer(d / f"{mode}.sock", mode)
        cases += [["list", "-timeout", "1", "-socket", f"{d}/{mode}.sock"],
                  ["start", "-timeout", "1", "-socket", f"{d}/{mode}.sock", "x.db"]]
    for args in cases:
        o, r = run_ours(*args, cwd=d, timeout=60), run_ref(*args, cwd=d, timeout=60)
        assert (o.returncode, o.stdout, o.stderr) == (r.returncode, r.stdout, r.stderr), args
    o = run_ours("list", "-socket", f"{d}/none.sock", cwd=d)
    assert o.stderr == (f'Error: failed to connect to control socket: Get "http://localhost/list": dial unix '
                        f"{d}/none.sock: connect: no such file or directory\n")
    o = run_ours("info", "-timeout", "1", "-socket", f"{d}/hang.sock", cwd=d)
    assert o.stderr == ('Error: failed to connect to control socket: Get "http://localhost/info": context deadline '
                        "exceeded (Client.Timeout exceeded while awaiting headers)\n")
    dead.close()
