"""The MCP server on `mcp-addr`: real `replicate` processes (ours and the reference), the official MCP
SDK's Streamable HTTP client, every tool called and its effect checked on real files."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.cliutil import Background, add_rows, l0_files, make_db, read_rows, wait_for
from tests.conftest import run_ours
from tests.servers import free_port

TOOL_NAMES = {"litestream_databases", "litestream_status", "litestream_ltx", "litestream_info",
              "litestream_version", "litestream_restore", "litestream_reset"}
# The reference's input schemas (mcp-go): property -> JSON type, and the required ones.
REF_SCHEMAS = {
    "litestream_databases": ({"config": "string"}, []),
    "litestream_status": ({"config": "string", "path": "string"}, []),
    "litestream_ltx": ({"path": "string", "config": "string"}, ["path"]),
    "litestream_info": ({"config": "string"}, []),
    "litestream_version": ({}, []),
    "litestream_restore": ({"path": "string", "o": "string", "config": "string", "txid": "string",
                            "timestamp": "string", "parallelism": "string", "if_db_not_exists": "boolean",
                            "if_replica_exists": "boolean"}, ["path"]),
    "litestream_reset": ({"path": "string", "config": "string"}, ["path"]),
}
ROWS = ["alpha", "beta", "gamma"]
START_MSG = "Starting MCP Streamable HTTP server"


# ---------------------------------------------------------------------------------------- helpers

def setup_daemon(tmp_path: Path, addr: str, ref: bool = False, **top: Any) -> tuple[Background, Path, Path]:
    """A replicated database (rows ROWS) and `replicate -config` with mcp-addr; returns once the first
    snapshot is in the replica and the MCP port answers."""
    db = make_db(tmp_path / "app.db", ROWS)
    replica = tmp_path / "replica"
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(yaml.safe_dump({"mcp-addr": addr, "shutdown-sync-timeout": "2s", **top,
                                   "dbs": [{"path": str(db), "replica": {"url": f"file://{replica}"}}]},
                                  sort_keys=False))
    bg = Background(["replicate", "-config", str(cfg)], ref=ref, cwd=tmp_path)
    port = int(addr.rpartition(":")[2])

    def up() -> bool:
        assert bg.proc.poll() is None, f"replicate exited: {bg.output()}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    try:
        assert wait_for(up, timeout=20, interval=0.05), bg.output()
        assert wait_for(lambda: l0_files(replica), timeout=20), bg.output()
    except BaseException:
        bg.kill()
        raise
    return bg, db, replica


def stop(bg: Background) -> int:
    bg.signal()
    return bg.finish(timeout=30)


def session(url: str, body: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """body(session) on an initialized MCP session to `url` (the SDK's Streamable HTTP client)."""

    async def main() -> Any:
        async with streamable_http_client(url) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            return await body(s)

    return asyncio.run(main())


async def call(s: ClientSession, name: str, **args: Any) -> tuple[bool, str]:
    res = await s.call_tool(name, args)
    assert len(res.content) == 1 and res.content[0].type == "text", res
    return bool(res.is_error), res.content[0].text


def schemas(tools) -> dict[str, tuple[dict[str, str], list[str]]]:
    return {t.name: ({k: v["type"] for k, v in t.input_schema.get("properties", {}).items()},
                     sorted(t.input_schema.get("required", []))) for t in tools}


def expected_schemas() -> dict[str, tuple[dict[str, str], list[str]]]:
    return {k: (props, sorted(req)) for k, (props, req) in REF_SCHEMAS.items()}


# ------------------------------------------------------------------------------------------ tests

def test_tools_match_the_reference(tmp_path):
    """Names, argument names, JSON types and required arguments as the reference lists them."""
    ref_port, our_port = free_port(), free_port()
    (tmp_path / "ref").mkdir()
    (tmp_path / "ours").mkdir()
    ref, _, _ = setup_daemon(tmp_path / "ref", f"127.0.0.1:{ref_port}", ref=True)
    try:
        async def info(s):
            return (await s.list_tools()).tools

        ref_tools = session(f"http://127.0.0.1:{ref_port}/", info)
    finally:
        stop(ref)
    ours, _, _ = setup_daemon(tmp_path / "ours", f"127.0.0.1:{our_port}")
    try:
        async def both(s):
            return s._initialize_result, (await s.list_tools()).tools

        init, our_tools = session(f"http://127.0.0.1:{our_port}/", both)
        _, at_mcp = session(f"http://127.0.0.1:{our_port}/mcp", both)  # the SDK's usual path works too
    finally:
        assert stop(ours) == 0
    assert {t.name for t in ref_tools} == TOOL_NAMES
    assert schemas(ref_tools) == expected_schemas()
    assert schemas(our_tools) == schemas(ref_tools)
    assert schemas(at_mcp) == schemas(ref_tools)
    assert init.server_info.name == "Litestream MCP Server"
    assert init.server_info.version == "1.0.0"
    assert init.capabilities.tools is not None


def test_every_tool_runs_in_process(tmp_path):
    """Each tool's real effect; tool output (command logs included) stays out of the daemon's stdout and
    the daemon's logs out of the tool output; a restore's logging setup does not change the daemon's."""
    port = free_port()
    bg, db, replica = setup_daemon(tmp_path, f"127.0.0.1:{port}", logging={"type": "json"})
    cfg = str(tmp_path / "litestream.yml")
    outputs: list[str] = []

    async def body(s: ClientSession) -> None:
        async def ok(name: str, **args: Any) -> str:
            err, text = await call(s, name, **args)
            assert not err, (name, args, text)
            outputs.append(text)
            return text

        async def fails(name: str, **args: Any) -> str:
            err, text = await call(s, name, **args)
            assert err, (name, args, text)
            outputs.append(text)
            return text

        assert await ok("litestream_version") == "0.5.17\n"
        dbs = await ok("litestream_databases")
        assert dbs.splitlines()[0].split() == ["path", "replica"]
        assert dbs.splitlines()[1].split() == [str(db), "file"]
        assert await ok("litestream_databases", config=cfg) == dbs

        status = await ok("litestream_status")
        assert status.splitlines()[1].split()[:3] == [str(db), "ok", "0000000000000001"]
        assert (await ok("litestream_status", path=str(db))).splitlines()[1].split()[0] == str(db)
        assert len((await ok("litestream_status", path="/no/such.db")).splitlines()) == 1

        ltx = await ok("litestream_ltx", path=str(db))
        assert ltx.splitlines()[0].split() == ["level", "min_txid", "max_txid", "size", "created"]
        assert ltx.splitlines()[1].split()[:3] == ["0", "0000000000000001", "0000000000000001"]
        assert await ok("litestream_ltx", path=f"file://{replica}") == ltx  # a URL: no -config

        info = await ok("litestream_info")
        assert info.startswith("=== Litestream Status Report ===\n\nVersion Information:\n0.5.17\n")
        sections = ["Version Information:\n", "Current Config Path:\n" + cfg + "\n", "Databases:\n" + dbs,
                    "LTX Files:\n", f"Database: {db}\n" + ltx]
        positions = [info.index(x) for x in sections]
        assert positions == sorted(positions), info

        # restore: new paths only; booleans work (the reference's fail with "too many arguments").
        out1, out2, out3 = tmp_path / "r1.db", tmp_path / "r2.db", tmp_path / "r3.db"
        await ok("litestream_restore", path=str(db), o=str(out1))
        assert read_rows(out1) == ROWS
        await ok("litestream_restore", path=str(db), o=str(out2), if_db_not_exists=True, if_replica_exists=True)
        assert read_rows(out2) == ROWS
        skipped = await ok("litestream_restore", path=str(db), o=str(out1), if_db_not_exists=True)
        assert [json.loads(ln)["msg"] for ln in skipped.splitlines()] == ["database already exists, skipping"]
        before = out1.stat()
        refused = await fails("litestream_restore", path=str(db), o=str(out1))
        assert refused.startswith(f"Error: refusing to restore onto {out1}: the path exists")
        assert out1.stat() == before
        live = await fails("litestream_restore", path=str(db))
        assert live.startswith(f"Error: refusing to restore onto {db}: it is a database this litestream")
        link = tmp_path / "link.db"
        link.symlink_to(db)
        assert "refusing" in await fails("litestream_restore", path=str(db), o=str(link))
        assert read_rows(db) == ROWS

        # A URL restore reads no config: were its init_log() not kept from the daemon's logging, the
        # daemon would log text from here on (and so would the reset below).
        await ok("litestream_restore", path=f"file://{replica}", o=str(out3), txid="0000000000000001",
                 parallelism="2", if_db_not_exists=False)
        assert read_rows(out3) == ROWS

        # reset: the running database is stopped, reset and started again, and replicates on.
        reset = await ok("litestream_reset", path=str(db))
        assert f"Resetting local Litestream state for: {db}\n" in reset
        assert reset.endswith("Reset complete. Next replication sync will create a fresh snapshot.\n")
        assert "resetting local litestream state" in [json.loads(ln)["msg"] for ln in reset.splitlines()
                                                      if ln.startswith("{")]
        add_rows(db, ["delta"])

        async def restored_has_delta() -> bool:
            for i in range(100):
                out = tmp_path / f"after-reset-{i}.db"
                err, _ = await call(s, "litestream_restore", path=str(db), o=str(out))
                if not err and read_rows(out) == [*ROWS, "delta"]:
                    return True
                await asyncio.sleep(0.2)
            return False

        assert await restored_has_delta(), bg.output()

        # Errors are tool errors with the command's text; nothing ends the daemon.
        missing = await fails("litestream_ltx", path=str(tmp_path / "other.db"))
        assert missing == f"Error: database not found in config: {tmp_path / 'other.db'}: exit status 1"
        assert "must be a string" in await fails("litestream_restore", path=str(db), o=str(out1), txid=5)
        assert "must be a boolean" in await fails("litestream_restore", path=str(db), o="x", if_db_not_exists=1)
        assert "missing required argument" in await fails("litestream_reset")
        assert "exit status 1" in await fails("litestream_databases", config=str(tmp_path / "nope.yml"))
        with pytest.raises(MCPError):
            await s.call_tool("litestream_nope", {})

        # Concurrent calls each get exactly their own output.
        calls = [("litestream_version", "0.5.17\n"), ("litestream_databases", dbs)] * 6
        results = await asyncio.gather(*(call(s, n) for n, _ in calls))
        assert [text for _, text in results] == [want for _, want in calls]

    try:
        session(f"http://127.0.0.1:{port}/", body)
        assert bg.proc.poll() is None
    finally:
        rc = stop(bg)
    assert rc == 0, bg.stderr
    daemon_lines = bg.stdout.splitlines()
    # Still the daemon's JSON logging after restore's init_log (which would install text on stdout).
    assert all(ln.startswith("{") for ln in daemon_lines), bg.stdout
    msgs = [json.loads(ln)["msg"] for ln in daemon_lines]
    assert START_MSG in msgs and "stopping database for reset" in msgs and msgs[-1] == "litestream shut down"
    assert "resetting local litestream state" not in msgs
    assert "database already exists, skipping" not in msgs
    assert "Reset complete" not in bg.stdout + bg.stderr and "min_txid" not in bg.stdout + bg.stderr
    joined = "\n".join(outputs)
    for daemon_msg in ("stopping database for reset", "replicating to", "initialized db", START_MSG):
        assert daemon_msg not in joined


def test_host_less_address_listens_on_loopback_only(tmp_path):
    port = free_port()
    bg, db, _ = setup_daemon(tmp_path, f":{port}")
    try:
        start_line = next(ln for ln in bg.output().splitlines() if START_MSG in ln)
        assert f"addr=:{port} listen=127.0.0.1:{port}" in start_line
        assert "loopback only" in start_line
        other = _non_loopback_ip()
        if other is not None:
            with pytest.raises(OSError), socket.create_connection((other, port), timeout=2):
                pass

        async def body(s):
            return await call(s, "litestream_databases")

        err, text = session(f"http://127.0.0.1:{port}/", body)
        assert not err and str(db) in text

        # Shutdown with a client still connected (its session and GET stream open) is quick.
        times: dict[str, float] = {}

        async def hold_open():
            async with streamable_http_client(f"http://localhost:{port}/") as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                await s.list_tools()
                times["signal"] = time.monotonic()
                bg.signal()
                await asyncio.to_thread(bg.proc.wait, 30)
                times["exit"] = time.monotonic()

        try:
            asyncio.run(hold_open())
        except Exception:  # the client may complain about the vanished server on its way out
            assert bg.proc.poll() is not None
        assert "exit" in times
        assert bg.proc.returncode == 0
        assert times["exit"] - times["signal"] < 6, times
    finally:
        bg.finish(timeout=30)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_explicit_ipv6_host_is_honoured(tmp_path):
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    db = make_db(tmp_path / "app.db", ROWS)
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(yaml.safe_dump({"mcp-addr": f"[::1]:{port}", "dbs": [
        {"path": str(db), "replica": {"url": f"file://{tmp_path / 'replica'}"}}]}))
    bg = Background(["replicate", "-config", str(cfg)], ref=False, cwd=tmp_path)
    try:
        assert wait_for(lambda: START_MSG in bg.output(), timeout=20), bg.output()
        assert f"listen=[::1]:{port}" in bg.output()

        async def body(s):
            return await call(s, "litestream_version")

        assert session(f"http://[::1]:{port}/", body) == (False, "0.5.17\n")
    finally:
        assert stop(bg) == 0


def test_dns_rebinding_is_refused_on_loopback(tmp_path):
    """A browser page cannot reach the loopback server under another host name."""
    import http.client

    port = free_port()
    bg, _, _ = setup_daemon(tmp_path, f"127.0.0.1:{port}")
    try:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/", body, {**headers, "Host": "evil.example:80"})
        assert conn.getresponse().status == 421
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/", body, {**headers, "Origin": "http://evil.example"})
        assert conn.getresponse().status == 403
        conn.close()
    finally:
        assert stop(bg) == 0


@pytest.mark.parametrize("host", ["127.0.0.1", ""])
def test_busy_port_is_a_one_line_error(tmp_path, host):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        db = make_db(tmp_path / "app.db")
        cfg = tmp_path / "litestream.yml"
        cfg.write_text(yaml.safe_dump({"mcp-addr": f"{host}:{port}", "dbs": [
            {"path": str(db), "replica": {"url": f"file://{tmp_path / 'replica'}"}}]}))
        r = run_ours("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f'Error: cannot start MCP server on "{host}:{port}": address already in use']
    assert "initialized db" not in r.stdout  # the store never started
    assert not (tmp_path / "replica").exists()


@pytest.mark.parametrize(("addr", "error"), [
    ("3001", 'Error: invalid mcp-addr "3001": missing port in address'),
    ("127.0.0.1:http", 'Error: invalid mcp-addr "127.0.0.1:http": invalid port "http"'),
    ("127.0.0.1:70000", 'Error: invalid mcp-addr "127.0.0.1:70000": invalid port "70000"'),
    ("::1:3001", 'Error: invalid mcp-addr "::1:3001": too many colons in address (use [host]:port)'),
])
def test_bad_address_is_a_one_line_error(tmp_path, addr, error):
    db = make_db(tmp_path / "app.db")
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(yaml.safe_dump({"mcp-addr": addr, "dbs": [
        {"path": str(db), "replica": {"url": f"file://{tmp_path / 'replica'}"}}]}))
    r = run_ours("replicate", "-config", str(cfg), cwd=tmp_path, timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [error]


def test_commands_do_not_import_the_sdk(tmp_path):
    """version and a file restore (and replicate without mcp-addr, which imports server/mcp.py) stay
    free of mcp, uvicorn and starlette."""
    db = make_db(tmp_path / "app.db", ROWS)
    replica = tmp_path / "replica"
    r = run_ours("replicate", "-once", str(db), f"file://{replica}", cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    code = (
        "import sys\n"
        "from litestream.cli import main\n"
        "import litestream.server.mcp\n"
        "assert main.run(['version']) == 0\n"
        f"assert main.run(['restore', '-o', {str(tmp_path / 'out.db')!r}, 'file://{replica}']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'uvicorn', 'starlette', 'anyio')))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "[]"
    assert read_rows(tmp_path / "out.db") == ROWS


def _non_loopback_ip() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def test_capture_keeps_commands_apart(monkeypatch, capsys):
    """cli/capture.py in this process: each thread's command output (logs included) is its own, the
    rest of the process keeps writing to the real streams, the logging setup stays, and sys.exit or an
    exception is an exit status."""
    import threading

    from litestream import logs
    from litestream.cli import capture, main

    monkeypatch.setitem(main.COMMANDS, "mcptest", "tests.ops.mcputil")
    logs.init_log("stdout", "INFO", "text", False)  # the process's default, whatever ran before
    level_before = logs.current_level()
    capture.install()
    try:
        results: dict[str, tuple[int, str]] = {}

        def worker(tag: str) -> None:
            results[tag] = capture.run(["mcptest", "print", tag])

        threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for i in range(100):
            print(f"main {i}")
            logs.info("main thread log")
        for t in threads:
            t.join()
        assert capture.run(["mcptest", "exit", "3"]) == (3, "")
        assert capture.run(["mcptest", "exit", "0"]) == (0, "")
        assert capture.run(["mcptest", "exit-message"]) == (1, "fatal: gave up\n")
        assert capture.run(["mcptest", "raise"]) == (1, "Error: RuntimeError: kaboom\n")
        assert capture.run(["nosuch"])[0] == 1
    finally:
        capture.uninstall()
    real = capsys.readouterr()
    for tag, (code, text) in results.items():
        assert code == 0
        lines = text.splitlines()
        assert [ln for ln in lines if " out " in ln] == [f"{tag} out {i}" for i in range(200)]
        assert [ln for ln in lines if " err " in ln] == [f"{tag} err {i}" for i in range(0, 200, 50)]
        logged = [ln for ln in lines if "command log" in ln]
        assert len(logged) == 4 and all(f"tag={tag}" in ln for ln in logged)  # the process's text handler
        assert all(ln.startswith(tag) or ln.startswith("time=") for ln in lines)
    assert real.out.count("main thread log") == 100 and real.out.count("\nmain ") >= 99
    assert " out " not in real.out + real.err and "command log" not in real.out + real.err
    assert logs.current_level() == level_before
    assert not isinstance(sys.stdout, capture._Redirect)

