"""`litestream version [-verbose]` (its lines, and that it loads no cloud SDK) and restore's progress line
on a terminal (a real pty), absent with -json or when stderr is a pipe."""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

from litestream import _ltxcore
from litestream.cli.progress import ProgressLine, format_bytes
from tests.cliutil import OURS_ARGV, make_db, read_rows, run_ours
from tests.refbin import run_ref

# ------------------------------------------------------------------------------------------------ version


def test_version_prints_the_reference_version() -> None:
    ours, ref = run_ours("version"), run_ref("version")
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, "0.5.17\n", "")
    assert ours.stdout == ref.stdout


def test_version_verbose_has_the_reference_shape_and_names_this_implementation() -> None:
    ours, ref = run_ours("version", "-verbose"), run_ref("version", "-verbose")
    assert (ours.returncode, ours.stderr) == (0, "")
    lines, ref_lines = ours.stdout.splitlines(), ref.stdout.splitlines()
    assert len(lines) == 5
    # The lines both have mean the same and are identical.
    assert lines[0] == ref_lines[0] == "Version:     0.5.17"
    assert lines[4] == ref_lines[4]
    from importlib.metadata import version

    assert lines[1] == f"Implementation: litestream-py {version('litestream-py')}"
    assert lines[2] == f"Python:      {platform.python_version()}"
    crc = {"pclmul": "PCLMUL", "slice8": "slice-by-8"}[_ltxcore.crc64_impl()]
    # The liblz4 version, read from the library itself rather than from the core.
    lz4 = ctypes.CDLL(ctypes.util.find_library("lz4"))
    lz4.LZ4_versionString.restype = ctypes.c_char_p
    assert lines[3] == f"Core:        ltxcore (crc64 {crc}, liblz4 {lz4.LZ4_versionString().decode()})"
    assert all(re.fullmatch(r"[A-Za-z/]+: +\S.*", ln) for ln in lines)


HEAVY = ("boto3", "botocore", "s3transfer", "azure", "google", "nats", "paramiko", "oss2", "mcp",
         "prometheus_client", "requests", "urllib3", "aiohttp", "msgspec", "yaml", "apsw")


# The modules loaded once the command ran, printed by the same process (importlib.import_module, which
# dispatches subcommands, is invisible to -X importtime).
_MODULES_AFTER = ("import sys; from litestream.cli.main import run; rc = run(sys.argv[1:]); "
                  "sys.stderr.write('\\n'.join(sorted(sys.modules))); sys.exit(rc)")


@pytest.mark.parametrize("args", [["version"], ["version", "-verbose"]])
def test_version_imports_no_sdk(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _MODULES_AFTER, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    modules = set(proc.stderr.splitlines())
    assert "litestream.cli.cmd_version" in modules  # the list is the one after the command
    assert ("litestream._ltxcore" in modules) == (args == ["version", "-verbose"])
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []


# ----------------------------------------------------------------------------------------------- progress


def test_progress_line_draws_at_most_ten_times_a_second() -> None:
    out = io.StringIO()
    line = ProgressLine("restore", out)
    total = 10_000_000
    for done in range(0, total + 1, 1000):  # 10,001 updates in a few milliseconds
        line.update("applying", done, total)
    line.finish()
    text = out.getvalue()
    draws = text.split("\r")[1:]
    assert 2 <= len(draws) <= 3  # the first, (perhaps one 0.1 s later,) and the end
    assert draws[-1].startswith("restore: applying 9.5 MiB / 9.5 MiB (100%)")
    assert text.endswith("\x1b[K\n")


def test_progress_line_finish_draws_the_last_state_it_skipped() -> None:
    out = io.StringIO()
    line = ProgressLine("restore", out)
    line.update("fetching", 0, 4096)
    line.update("fetching", 1024, 4096)  # within 0.1 s: not drawn yet
    assert "1.0 KiB" not in out.getvalue()
    line.finish()
    assert out.getvalue().split("\r")[-1].startswith("restore: fetching 1.0 KiB / 4.0 KiB (25%)")
    assert out.getvalue().endswith("\n")


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 TiB"]


def _replica(work: Path, rows: int = 2000) -> str:
    db = make_db(work / "app.db", [f"row-{i:05d}-" + "x" * 500 for i in range(rows)])
    proc = run_ours("replicate", "-once", str(db), f"file://{work / 'rep'}", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return f"file://{work / 'rep'}"


def _run_in_pty(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run our CLI with stdout and stderr on a new pseudo-terminal; (exit status, what the terminal got)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([*OURS_ARGV, *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                env={**os.environ, "TERM": "xterm"})
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode()


def test_restore_on_a_terminal_shows_progress(tmp_path: Path) -> None:
    url = _replica(tmp_path)
    size = sum(p.stat().st_size for p in (tmp_path / "rep").rglob("*.ltx"))
    rc, text = _run_in_pty(["restore", "-o", "out.db", url], tmp_path)
    assert rc == 0, text
    # The terminal turns "\n" into "\r\n".
    last = text.split("\r")[-2]
    assert re.fullmatch(rf"restore: applying {re.escape(format_bytes(size))} / {re.escape(format_bytes(size))} "
                        r"\(100%\), [0-9.]+ [KMG]?i?B/s\x1b\[K", last), repr(text)
    assert text.startswith("\rrestore: applying 0 B / ") and text.endswith("\x1b[K\r\n")
    assert read_rows(tmp_path / "out.db")[-1].startswith("row-01999-")


def test_no_progress_with_json_or_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    url = _replica(tmp_path, rows=50)
    rc, text = _run_in_pty(["restore", "-json", "-o", "a.db", url], tmp_path)
    assert rc == 0, text
    assert "restore:" not in text and '"db_path"' in text
    proc = run_ours("restore", "-o", "b.db", url, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert read_rows(tmp_path / "a.db") == read_rows(tmp_path / "b.db")
