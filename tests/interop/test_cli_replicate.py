"""The config-driven commands through the CLI, side by side with the reference binary (litestream 0.5.17):
`databases`, `status`, `ltx`/`wal`, `reset`, `replicate` (config form, `DB_PATH URL...` form, `-once`,
`-exec`, signals) and config errors.

Where the output must be identical, both binaries run the same command in the same directory on the
same files (copies of the same state where a command changes it). Our documented extensions (the same
path listed twice, a `replicas:` array with several entries, several URLs on the command line: one
database, several replicas) are checked against the reference's error for the same input and then
end to end: every replica restores, with our restore and the reference's, to the database's content."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cliutil import (
    Background,
    add_rows,
    error_lines,
    l0_files,
    log_line,
    log_messages,
    make_db,
    read_rows,
    restore,
    run_both,
    strip_times,
    wait_for,
    write_config,
)
from tests.conftest import run_ours
from tests.interop.workload import content_digest
from tests.refbin import run_ref

pytestmark = pytest.mark.interop

def one_db_config(cwd: Path, name: str = "c.yml", db: str = "./app.db", replica: str = "./rep") -> Path:
    return write_config(cwd / name, f"""
        dbs:
          - path: {db}
            monitor-interval: 50ms
            replica:
              path: {replica}
              sync-interval: 50ms
        """)


def same_output(ours, ref) -> None:
    assert (ours.returncode, ours.stdout, ours.stderr) == (ref.returncode, ref.stdout, ref.stderr)


def assert_restores_to(replica: Path, source_db: Path, work: Path, tag: str) -> None:
    """Both our restore and the reference's restore `replica` to the content of `source_db`."""
    want = content_digest(source_db)
    for who, use_ref in (("ours", False), ("ref", True)):
        out = work / f"restored-{tag}-{who}.db"
        proc = restore(replica, out, ref=use_ref, cwd=work)
        assert proc.returncode == 0, f"{who} restore of {replica}: {proc.stderr}"
        assert content_digest(out) == want, f"{who} restore of {replica} differs from {source_db}"


# ---------------------------------------------------------------------------------------------- databases

def test_databases_matches_reference(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    write_config(tmp_path / "old.yml", """
        dbs:
          - path: ./app.db
            replicas:
              - path: ./rep
          - path: sqlite:///data/other.db
            replica:
              url: file:///srv/rep2
        """)
    write_config(tmp_path / "empty.yml", "dbs: []\n")
    for cfg in ("c.yml", "old.yml", "empty.yml"):
        for extra in ((), ("-json",)):
            ours, ref = run_both("databases", "-config", cfg, *extra, cwd=tmp_path)
            assert ours.returncode == 0, ours.stderr
            same_output(ours, ref)
    ours = run_ours("databases", "-config", "c.yml", cwd=tmp_path)
    assert ours.stdout == f"path{' ' * (len(str(tmp_path)) + 5)}replica\n{tmp_path}/app.db  file\n"
    assert run_ours("databases", "-config", "empty.yml", "-json", cwd=tmp_path).stdout == "[]\n"


def test_databases_config_sources_match_reference(tmp_path: Path) -> None:
    one_db_config(tmp_path, "env.yml", db="/data/from-env.db")
    env = {"LITESTREAM_CONFIG": str(tmp_path / "env.yml")}
    ours, ref = run_both("databases", cwd=tmp_path, env=env)
    same_output(ours, ref)
    assert "/data/from-env.db" in ours.stdout
    # -config wins over $LITESTREAM_CONFIG.
    one_db_config(tmp_path, "flag.yml", db="/data/from-flag.db")
    ours, ref = run_both("databases", "-config", "flag.yml", cwd=tmp_path, env=env)
    same_output(ours, ref)
    assert "/data/from-flag.db" in ours.stdout
    ours, ref = run_both("databases", "extra", cwd=tmp_path, env=env)
    same_output(ours, ref)
    assert ours.stderr == "Error: too many arguments\n"
    if os.path.exists("/etc/litestream.yml"):
        pytest.skip("/etc/litestream.yml exists on this machine")
    ours, ref = run_both("databases", cwd=tmp_path, env={"LITESTREAM_CONFIG": ""})
    same_output(ours, ref)
    assert ours.stderr == "Error: config file not found: /etc/litestream.yml\n"


def test_databases_extensions_one_row_per_replica(tmp_path: Path) -> None:
    write_config(tmp_path / "twice.yml", """
        dbs:
          - path: ./app.db
            replica:
              path: ./rep1
          - path: ./app.db
            replica:
              path: ./rep2
        """)
    write_config(tmp_path / "array.yml", """
        dbs:
          - path: ./app.db
            replicas:
              - path: ./rep1
              - url: file:///tmp/rep2
        """)
    db = f"{tmp_path}/app.db"
    expected_ref = {
        "twice.yml": f'Error: database config #2: duplicate path "{db}" (already used by database config #1); '
                     "each database can be listed only once\n",
        "array.yml": "Error: multiple replicas on a single database are no longer supported\n",
    }
    for cfg, ref_err in expected_ref.items():
        for extra in ((), ("-json",)):
            ours, ref = run_both("databases", "-config", cfg, *extra, cwd=tmp_path)
            assert (ref.returncode, ref.stdout, ref.stderr) == (1, "", ref_err)
            assert ours.returncode == 0, ours.stderr
            assert ours.stderr == ""
            if extra:
                assert ours.stdout == (f'[\n  {{\n    "path": "{db}",\n    "replica": "file"\n  }},\n'
                                       f'  {{\n    "path": "{db}",\n    "replica": "file"\n  }}\n]\n')
            else:
                pad = " " * (len(db) - 2)
                assert ours.stdout == f"path{pad}replica\n{db}  file\n{db}  file\n"


def test_databases_tilde_is_the_account_home(tmp_path: Path) -> None:
    # The reference expands `~` with os/user.Current() (/etc/passwd), not $HOME.
    write_config(tmp_path / "c.yml", "dbs:\n  - path: ~/x.db\n    replica: {path: /r}\n"
                 "  - path: sqlite://~/y.db\n    replica: {path: /r}\n")
    ours, ref = run_both("databases", "-config", "c.yml", cwd=tmp_path, env={"HOME": str(tmp_path / "fakehome")})
    assert ref.returncode == 0
    same_output(ours, ref)


# ------------------------------------------------------------------------------------------------ status

def test_status_without_and_before_replication(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    for state in ("no database", "not initialized"):
        for args in ((), ("-json",), (f"{tmp_path}/app.db",), ("-json", f"{tmp_path}/app.db"), ("app.db",)):
            ours, ref = run_both("status", "-config", "c.yml", *args, cwd=tmp_path)
            assert ours.returncode == 0, ours.stderr
            same_output(ours, ref)
            if args == ("-json",):
                assert f'"status": "{state}"' in ours.stdout
            if args == ("app.db",):  # the filter is compared raw, not expanded
                assert ours.stdout == "database  status  local txid  wal size\n"
        make_db(tmp_path / "app.db")


def test_status_after_replication(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    make_db(tmp_path / "app.db")
    proc = run_ref("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for args in ((), ("-json",), (f"{tmp_path}/app.db",)):
        ours, ref = run_both("status", "-config", "c.yml", *args, cwd=tmp_path)
        same_output(ours, ref)
        assert " ok " in ours.stdout or '"ok"' in ours.stdout
        assert "0000000000000001" in ours.stdout
    # The same after our own replicate -once (on another copy of the database).
    one_db_config(tmp_path, "c2.yml", db="./app2.db", replica="./rep2")
    make_db(tmp_path / "app2.db")
    proc = run_ours("replicate", "-once", "-config", "c2.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for args in ((), ("-json",)):
        ours, ref = run_both("status", "-config", "c2.yml", *args, cwd=tmp_path)
        same_output(ours, ref)
        assert "0000000000000001" in ours.stdout


WAL_SIZES = (0, 1, 999, 1000, 1023, 1024, 9999, 10000, 21000, 999499, 999999, 1234567, 1_500_000_000,
             99_999_999_999)


def test_status_wal_size_formatting_and_error_status(tmp_path: Path) -> None:
    lines = ["dbs:"]
    for i, size in enumerate(WAL_SIZES):
        lines += [f"  - path: ./d{i}.db", f"    replica: {{path: ./r{i}}}"]
        (tmp_path / f"d{i}.db").touch()
        if i:
            with open(tmp_path / f"d{i}.db-wal", "wb") as f:
                f.truncate(size)  # sparse: status only stats the -wal file
    lines += ["  - path: ./bad.db", "    replica: {path: ./rbad}"]
    (tmp_path / "bad.db").touch()
    (tmp_path / ".bad.db-litestream" / "ltx").mkdir(parents=True)
    (tmp_path / ".bad.db-litestream" / "ltx" / "0").touch()  # the L0 "dir" cannot be read -> error
    write_config(tmp_path / "s.yml", "\n".join(lines) + "\n")
    for extra in ((), ("-json",)):
        ours, ref = run_both("status", "-config", "s.yml", *extra, cwd=tmp_path)
        same_output(ours, ref)
    text = run_ours("status", "-config", "s.yml", cwd=tmp_path).stdout
    for want in ("0 B", "999 B", "1.0 kB", "21 kB", "1000 kB", "1.2 MB", "1.5 GB", "100 GB", "error"):
        assert want in text


def test_status_local_txid_is_the_highest_l0_name(tmp_path: Path) -> None:
    # DB.MaxLTX takes the highest max TXID of any well-formed L0 file name (min and max may differ).
    one_db_config(tmp_path)
    (tmp_path / "app.db").touch()
    l0 = tmp_path / ".app.db-litestream" / "ltx" / "0"
    l0.mkdir(parents=True)
    (l0 / "0000000000000001-00000000000000ff.ltx").touch()
    (l0 / "0000000000000100-0000000000000100.ltx.tmp").touch()
    (l0 / "notes.txt").touch()
    ours, ref = run_both("status", "-config", "c.yml", cwd=tmp_path)
    assert "00000000000000ff" in ref.stdout
    same_output(ours, ref)


# ---------------------------------------------------------------------------------------------- ltx / wal

WAL_WARNING = "Warning: 'wal' command is deprecated, please use 'ltx' instead\n"


def test_wal_is_a_deprecated_alias_of_ltx(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    make_db(tmp_path / "app.db")
    proc = run_ref("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    add_rows(tmp_path / "app.db", ["d"])
    proc = run_ref("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for extra in ((), ("-json",), ("-level", "all")):
        ltx = run_ours("ltx", "-config", "c.yml", *extra, "app.db", cwd=tmp_path)
        ours, ref = run_both("wal", "-config", "c.yml", *extra, "app.db", cwd=tmp_path)
        assert ltx.returncode == 0, ltx.stderr
        assert (ours.returncode, ours.stdout, ours.stderr) == (0, ltx.stdout, WAL_WARNING)
        same_output(ours, ref)
    url = f"file://{tmp_path}/rep"
    ours, ref = run_both("wal", url, cwd=tmp_path)
    same_output(ours, ref)
    assert ours.stdout == run_ours("ltx", url, cwd=tmp_path).stdout
    assert ours.stdout.startswith("level  min_txid          max_txid          size  created\n0      0000000000000001")
    # Errors come after the warning, as with the reference.
    ours, ref = run_both("wal", cwd=tmp_path)
    same_output(ours, ref)
    assert ours.stderr.startswith(WAL_WARNING + "Error: ")


# ------------------------------------------------------------------------------------------------- reset

def _reset_state(tmp_path: Path) -> Path:
    """A database replicated once by the reference; returns a pristine copy of its meta dir."""
    one_db_config(tmp_path)
    make_db(tmp_path / "app.db")
    proc = run_ref("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    backup = tmp_path / "meta-backup"
    shutil.copytree(tmp_path / ".app.db-litestream", backup)
    return backup


def _put_back(tmp_path: Path, backup: Path) -> None:
    shutil.rmtree(tmp_path / ".app.db-litestream", ignore_errors=True)
    shutil.copytree(backup, tmp_path / ".app.db-litestream")


def _split_logs(stdout: str) -> tuple[list[str], list[str]]:
    printed = [ln for ln in stdout.splitlines() if not ln.startswith("time=")]
    logged = [ln for ln in strip_times(stdout).splitlines() if ln.startswith("level=")]
    return printed, logged


def test_reset_dry_run_and_reset_match_reference(tmp_path: Path) -> None:
    backup = _reset_state(tmp_path)
    meta = tmp_path / ".app.db-litestream"
    for db_arg in ("app.db", f"{tmp_path}/app.db"):
        ours, ref = run_both("reset", "-dry-run", db_arg, cwd=tmp_path)
        same_output(ours, ref)
        assert ours.stdout == (f"Dry run: local Litestream state would be reset for: {tmp_path}/app.db\n"
                               f"Would remove: {meta}/ltx\nFiles that would be removed:\n"
                               f"  {meta}/ltx/0/0000000000000001-0000000000000001.ltx\nNo files were removed.\n")
    results = {}
    for who, runner in (("ref", run_ref), ("ours", run_ours)):
        _put_back(tmp_path, backup)
        results[who] = runner("reset", "app.db", cwd=tmp_path)
        assert results[who].returncode == 0, results[who].stderr
        assert meta.is_dir() and not (meta / "ltx").exists()
    assert _split_logs(results["ours"].stdout)[0] == _split_logs(results["ref"].stdout)[0] == [
        f"Resetting local Litestream state for: {tmp_path}/app.db",
        f"Removing: {meta}/ltx",
        "Reset complete. Next replication sync will create a fresh snapshot.",
    ]
    assert results["ours"].stderr == results["ref"].stderr == ""
    # After the reset: nothing to remove, then no meta dir at all.
    ours, ref = run_both("reset", "-dry-run", "app.db", cwd=tmp_path)
    same_output(ours, ref)
    assert "No local LTX files would be removed.\n" in ours.stdout
    shutil.rmtree(meta)
    for extra in ((), ("-dry-run",)):
        ours, ref = run_both("reset", *extra, "app.db", cwd=tmp_path)
        same_output(ours, ref)
        assert ours.stdout == f"No local state to reset for {tmp_path}/app.db\nMeta directory does not exist: {meta}\n"


def test_reset_log_lines_match_reference(tmp_path: Path) -> None:
    backup = _reset_state(tmp_path)
    logs = {}
    for who, runner in (("ref", run_ref), ("ours", run_ours)):
        _put_back(tmp_path, backup)
        proc = runner("reset", "app.db", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        logs[who] = _split_logs(proc.stdout)[1]
    assert logs["ours"] == logs["ref"]


def test_reset_with_config_meta_path(tmp_path: Path) -> None:
    write_config(tmp_path / "m.yml",
                 "dbs:\n  - path: ./app.db\n    meta-path: ./meta-app\n    replica: {path: ./rep}\n")
    (tmp_path / "app.db").touch()
    (tmp_path / "meta-app" / "ltx" / "0").mkdir(parents=True)
    (tmp_path / "meta-app" / "ltx" / "0" / "0000000000000003-0000000000000003.ltx").touch()
    ours, ref = run_both("reset", "-dry-run", "-config", "m.yml", "app.db", cwd=tmp_path)
    same_output(ours, ref)
    assert f"Would remove: {tmp_path}/meta-app/ltx\n" in ours.stdout


@pytest.mark.parametrize("args", [
    ("reset", "missing.db"),
    ("reset", "-dry-run", "missing.db"),
    ("reset",),
    ("reset", "a.db", "b.db"),
    ("reset", "-config", "nope.yml", "missing.db"),
])
def test_reset_errors_match_reference(tmp_path: Path, args: tuple[str, ...]) -> None:
    ours, ref = run_both(*args, cwd=tmp_path)
    assert ref.returncode == 1
    same_output(ours, ref)


# ------------------------------------------------------------------------------------ replicate -once

MULTI_REPLICA_ERROR = "Error: multiple replicas on a single database are no longer supported\n"

def test_replicate_once_restores_with_ours_and_reference(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    db = make_db(tmp_path / "app.db")
    proc = run_ours("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert_restores_to(tmp_path / "rep", db, tmp_path, "first")
    add_rows(db, ["x", "y"])
    proc = run_ours("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_restores_to(tmp_path / "rep", db, tmp_path, "second")
    assert read_rows(tmp_path / "restored-second-ref.db") == ["a", "b", "c", "x", "y"]


ONCE_LINES = ["litestream", "initialized db", "replicating to", "one-shot replication complete",
              "replication complete, litestream shutting down", "litestream shut down"]


@pytest.mark.parametrize("msg", ONCE_LINES)
def test_replicate_once_log_lines_match_reference(tmp_path: Path, msg: str) -> None:
    logs = {}
    for who, runner in (("ref", run_ref), ("ours", run_ours)):
        work = tmp_path / who
        work.mkdir()
        one_db_config(work)
        make_db(work / "app.db")
        proc = runner("replicate", "-once", "-config", "c.yml", cwd=work)
        assert proc.returncode == 0, proc.stderr
        logs[who] = proc.stdout.replace(str(work), "<work>")
    assert log_line(logs["ref"], msg) is not None
    assert log_line(logs["ours"], msg) == log_line(logs["ref"], msg)


def test_replicate_cli_form_first_log_line_matches_reference(tmp_path: Path) -> None:
    # In `replicate DB_PATH URL` form the reference's config is DefaultConfig() with level INFO, so its
    # first line ends in `level=INFO` (config form: `level=""`).
    logs = {}
    for who, runner in (("ref", run_ref), ("ours", run_ours)):
        work = tmp_path / who
        work.mkdir()
        make_db(work / "app.db")
        proc = runner("replicate", "-once", "app.db", f"file://{work}/rep", cwd=work)
        assert proc.returncode == 0, proc.stderr
        logs[who] = log_line(proc.stdout, "litestream")
    assert logs["ref"] == "level=INFO msg=litestream version=0.5.17 level=INFO"
    assert logs["ours"] == logs["ref"]


def test_replicas_array_fans_out_to_every_replica(tmp_path: Path) -> None:
    write_config(tmp_path / "c.yml", f"""
        dbs:
          - path: ./app.db
            monitor-interval: 50ms
            replicas:
              - path: ./rep1
                sync-interval: 50ms
              - url: file://{tmp_path}/rep2
                sync-interval: 50ms
        """)
    db = make_db(tmp_path / "app.db")
    ref = run_ref("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert (ref.returncode, ref.stderr) == (1, MULTI_REPLICA_ERROR)
    for round_ in range(2):
        proc = run_ours("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert [ln.split("path=")[-1] for ln in strip_times(proc.stdout).splitlines() if "replicating to" in ln] == [
            f"{tmp_path}/rep1", f"{tmp_path}/rep2"]
        for rep in ("rep1", "rep2"):
            assert_restores_to(tmp_path / rep, db, tmp_path, f"{rep}-{round_}")
        add_rows(db, [f"round-{round_}"] * 3)
    assert l0_files(tmp_path / "rep1") == l0_files(tmp_path / "rep2")


def test_same_path_twice_with_two_file_replicas(tmp_path: Path) -> None:
    write_config(tmp_path / "c.yml", f"""
        dbs:
          - path: ./app.db
            monitor-interval: 50ms
            replica:
              path: ./rep1
              sync-interval: 50ms
          - path: {tmp_path}/./app.db
            replica:
              path: ./rep2
              sync-interval: 50ms
        """)
    one_db_config(tmp_path, "first.yml", replica="./rep1")
    db = make_db(tmp_path / "app.db")
    ref = run_ref("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert ref.returncode == 1
    assert ref.stderr == (f'Error: database config #2: duplicate path "{tmp_path}/app.db" (already used by '
                          "database config #1); each database can be listed only once\n")
    # rep1 gets a head start; rep2 is added later and must still receive everything (its own position).
    proc = run_ours("replicate", "-once", "-config", "first.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    add_rows(db, ["more"])
    proc = run_ours("replicate", "-once", "-config", "c.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert log_messages(proc.stdout).count("initialized db") == 1  # one database, two replicas
    for rep in ("rep1", "rep2"):
        assert_restores_to(tmp_path / rep, db, tmp_path, rep)
    assert read_rows(tmp_path / "restored-rep2-ours.db") == ["a", "b", "c", "more"]


def test_cli_form_with_several_urls_fans_out(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    urls = [f"file://{tmp_path}/u1", f"file://{tmp_path}/u2"]
    ref = run_ref("replicate", "-once", "app.db", *urls, cwd=tmp_path)
    assert (ref.returncode, ref.stderr) == (1, MULTI_REPLICA_ERROR)
    proc = run_ours("replicate", "-once", "app.db", *urls, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for rep in ("u1", "u2"):
        assert_restores_to(tmp_path / rep, db, tmp_path, rep)


def test_env_var_in_config(tmp_path: Path) -> None:
    write_config(tmp_path / "c.yml", """
        dbs:
          - path: ${LS_TEST_DB}
            replica:
              path: ${LS_TEST_REPLICA}/r
        """)
    db = make_db(tmp_path / "app.db")
    env = {"LS_TEST_DB": str(db), "LS_TEST_REPLICA": str(tmp_path / "from-env")}
    ours, ref = run_both("databases", "-config", "c.yml", cwd=tmp_path, env=env)
    same_output(ours, ref)
    proc = run_ours("replicate", "-once", "-config", "c.yml", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert_restores_to(tmp_path / "from-env" / "r", db, tmp_path, "env")


def test_no_expand_env_keeps_the_literal_text(tmp_path: Path) -> None:
    # Without expansion the replica path is the literal, relative "${LS_TEST_REPLICA}/r": both binaries
    # write the replica to that directory under the working directory, and never to the variable's value.
    for who, runner in (("ref", run_ref), ("ours", run_ours)):
        work = tmp_path / who
        work.mkdir()
        write_config(work / "c.yml", "dbs:\n  - path: ./app.db\n    replica:\n      path: ${LS_TEST_REPLICA}/r\n")
        db = make_db(work / "app.db")
        env = {"LS_TEST_REPLICA": str(work / "from-env")}
        proc = runner("databases", "-no-expand-env", "-config", "c.yml", cwd=work, env=env)
        assert proc.stdout.endswith(f"{work}/app.db  file\n")
        proc = runner("replicate", "-once", "-no-expand-env", "-config", "c.yml", cwd=work, env=env)
        assert proc.returncode == 0, f"{who}: {proc.stderr}"
        assert f"path={work}/${{LS_TEST_REPLICA}}/r" in proc.stdout
        assert not (work / "from-env").exists()
        literal = work / "${LS_TEST_REPLICA}" / "r"
        assert l0_files(literal) == ["0000000000000001-0000000000000001.ltx"]
        # (The reference's restore finds nothing at a file:// URL containing "${...}", so restore a copy.)
        shutil.copytree(literal, work / "plain-copy")
        assert_restores_to(work / "plain-copy", db, work, who)


# ------------------------------------------------------------------------- replicate DB_PATH URL, signals

@pytest.mark.parametrize(("sig", "name"), [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupt")])
@pytest.mark.parametrize("who", ["ours", "ref"])
def test_replicate_url_form_signal_final_sync(tmp_path: Path, who: str, sig: int, name: str) -> None:
    db = make_db(tmp_path / "app.db")
    rep = tmp_path / "rep"
    bg = Background(["replicate", "app.db", f"file://{rep}"], ref=who == "ref", cwd=tmp_path)
    try:
        assert wait_for(lambda: bool(l0_files(rep)), timeout=15), bg.output()
        add_rows(db, ["written-while-running"])  # monitor interval is 1s: only the final sync may catch it
        bg.signal(sig)
        rc = bg.finish(timeout=30)
    finally:
        bg.kill()
    assert rc == 0, bg.stdout + bg.stderr
    lines = strip_times(bg.stdout).splitlines()
    assert f'level=INFO msg="signal received, litestream shutting down" signal={name}' in lines
    assert lines[-1] == 'level=INFO msg="litestream shut down"'
    assert bg.stderr == ""
    assert_restores_to(rep, db, tmp_path, who)
    assert read_rows(tmp_path / f"restored-{who}-ours.db")[-1] == "written-while-running"


@pytest.mark.parametrize("args", [
    ("replicate", "app.db"),
    ("replicate", "app.db", "file:///tmp/x", "-once"),
    ("replicate", "app.db", "-once"),
    ("replicate", "app.db", "file:///tmp/a", "file:///tmp/b", "-exec", "true"),
    ("replicate", "-once", "-exec", "true", "-config", "c.yml"),
    ("replicate", "-force-snapshot", "-config", "c.yml"),
    ("replicate", "-enforce-retention", "-config", "c.yml"),
    ("replicate", "-config", "c.yml", "app.db", "file:///tmp/x"),
    ("replicate", "-once", "-exec", "true", "-config", "missing.yml"),  # the config error wins
    ("replicate", "-bogus"),
])
def test_replicate_usage_errors_match_reference(tmp_path: Path, args: tuple[str, ...]) -> None:
    one_db_config(tmp_path)
    ours, ref = run_both(*args, cwd=tmp_path)
    assert ref.returncode == 1
    same_output(ours, ref)
    assert not (tmp_path / ".app.db-litestream").exists()


@pytest.mark.parametrize("command", ["", "replicate", "databases", "status", "reset", "ltx", "wal"])
def test_command_help_matches_reference(tmp_path: Path, command: str) -> None:
    # The reference prints every usage text with a trailing empty line (see `replicate -h` in
    # litestream-0.5.17-help.txt; also after a flag error such as `replicate -bogus`).
    ours, ref = run_both(*([command] if command else []), "-h", cwd=tmp_path)
    assert ref.returncode == 0
    same_output(ours, ref)


# -------------------------------------------------------------------------------------------------- exec

CHILD_WRITER = """
import apsw, sys
conn = apsw.Connection(sys.argv[1])
conn.setbusytimeout(5000)
with conn:
    conn.executemany("INSERT INTO t(v) VALUES (?)", [("from-child-%d" % i,) for i in range(3)])
conn.close()
"""


@pytest.mark.parametrize("who", ["ours", "ref"])
def test_exec_child_runs_then_final_sync(tmp_path: Path, who: str) -> None:
    one_db_config(tmp_path)
    db = make_db(tmp_path / "app.db")
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD_WRITER))
    # The child first lets both replicators start: the reference does no final sync at all for a database
    # it has not initialised yet (its first monitor tick), so a child that is done within ~50 ms leaves
    # the reference's replica empty. Ours syncs at close either way.
    cmd = f"sh -c 'echo child-out; echo child-err >&2; sleep 0.3; \"{sys.executable}\" child.py app.db; exit 0'"
    runner = run_ref if who == "ref" else run_ours
    proc = runner("replicate", "-exec", cmd, "-config", "c.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "child-out\n" in proc.stdout
    assert proc.stderr == "child-err\n"
    msgs = log_messages(proc.stdout)
    assert "subprocess exited, litestream shutting down" in msgs
    assert msgs[-1] == "litestream shut down"
    assert_restores_to(tmp_path / "rep", db, tmp_path, who)
    assert read_rows(tmp_path / f"restored-{who}-ref.db")[-1] == "from-child-2"


def test_exec_from_config_key(tmp_path: Path) -> None:
    write_config(tmp_path / "c.yml", """
        exec: sh -c 'echo from-config-exec'
        dbs:
          - path: ./app.db
            monitor-interval: 50ms
            replica:
              path: ./rep
        """)
    make_db(tmp_path / "app.db")
    proc = run_ours("replicate", "-config", "c.yml", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "from-config-exec\n" in proc.stdout
    assert log_messages(proc.stdout)[-1] == "litestream shut down"


def test_exec_child_failure_matches_reference(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    make_db(tmp_path / "app.db")
    cmd = "sh -c 'echo child-out; echo child-err >&2; exit 3'"
    ours, ref = run_both("replicate", "-exec", cmd, "-config", "c.yml", cwd=tmp_path)
    assert (ref.returncode, ref.stderr) == (1, "child-err\nError: exit status 3\n")
    assert (ours.returncode, ours.stderr) == (ref.returncode, ref.stderr)
    assert "child-out\n" in ours.stdout
    msgs = log_messages(ours.stdout)
    assert "subprocess exited, litestream shutting down" in msgs
    assert msgs[-1] == "litestream shut down"


def test_exec_command_not_found_matches_reference(tmp_path: Path) -> None:
    one_db_config(tmp_path)
    make_db(tmp_path / "app.db")
    ours, ref = run_both("replicate", "-exec", "/nonexistent/cmd --flag", "-config", "c.yml", cwd=tmp_path)
    assert (ref.returncode, ref.stderr) == (
        1, "Error: cannot start exec command: fork/exec /nonexistent/cmd: no such file or directory\n")
    assert (ours.returncode, ours.stderr) == (ref.returncode, ref.stderr)


def trap_child(exit_code: int) -> str:
    """A child that writes `ready`, then on SIGTERM writes `marker` and exits with exit_code."""
    return (f"sh -c 'trap \"echo trapped > marker; exit {exit_code}\" TERM; echo ready > ready; "
            "while :; do sleep 0.05; done'")


def run_exec_sigterm(work: Path, who: str, child_exit: int = 0) -> tuple[int, Background, Path]:
    """`replicate -exec <trap child> -config c.yml` in work; SIGTERM once the child and a first sync are up."""
    one_db_config(work)
    db = make_db(work / "app.db")
    bg = Background(["replicate", "-exec", trap_child(child_exit), "-config", "c.yml"], ref=who == "ref", cwd=work)
    try:
        assert wait_for(lambda: (work / "ready").exists() and bool(l0_files(work / "rep")), timeout=15), bg.output()
        add_rows(db, ["before-sigterm"])
        bg.signal(signal.SIGTERM)
        rc = bg.finish(timeout=30)
    finally:
        bg.kill()
    return rc, bg, db


@pytest.mark.parametrize("who", ["ours", "ref"])
def test_exec_sigterm_is_forwarded_to_the_child(tmp_path: Path, who: str) -> None:
    rc, bg, db = run_exec_sigterm(tmp_path, who)
    assert rc == 0, bg.stdout + bg.stderr
    assert (tmp_path / "marker").read_text() == "trapped\n"
    msgs = log_messages(bg.stdout)
    assert "signal received, litestream shutting down" in msgs
    assert msgs[-1] == "litestream shut down"
    assert bg.stderr == ""
    assert_restores_to(tmp_path / "rep", db, tmp_path, who)


def test_exec_sigterm_log_lines_match_reference(tmp_path: Path) -> None:
    tails = {}
    for who in ("ref", "ours"):
        (tmp_path / who).mkdir()
        rc, bg, _ = run_exec_sigterm(tmp_path / who, who)
        assert rc == 0, bg.stdout + bg.stderr
        lines = strip_times(bg.stdout).splitlines()
        first = next(i for i, ln in enumerate(lines) if "signal received" in ln)
        tails[who] = [ln for ln in lines[first:] if ln.startswith("level=")]
    assert tails["ref"] == [
        'level=INFO msg="signal received, litestream shutting down" signal=terminated',
        'level=INFO msg="sending signal to exec process"',
        'level=INFO msg="waiting for exec process to close"',
        'level=INFO msg="litestream shut down"',
    ]
    assert tails["ours"] == tails["ref"]


def test_exec_child_failing_after_forwarded_signal_matches_reference(tmp_path: Path) -> None:
    # A child that exits non-zero (not "signal: ...") after the forwarded signal: the reference returns
    # `cannot wait for exec process: exit status 5` and exits 1 (without even closing the store).
    results = {}
    for who in ("ref", "ours"):
        (tmp_path / who).mkdir()
        rc, bg, _ = run_exec_sigterm(tmp_path / who, who, child_exit=5)
        assert (tmp_path / who / "marker").exists()
        results[who] = (rc, bg.stderr)
    assert results["ref"] == (1, "Error: cannot wait for exec process: exit status 5\n")
    assert results["ours"] == results["ref"]


# ---------------------------------------------------------------------------------------- config errors

BAD_CONFIGS = {
    "unknown-key": ("dbs:\n  - path: ./app.db\n    replica:\n      path: ./rep\n      bogus-key: 1\n",
                    ["line 5", "bogus-key"]),
    "bad-yaml": ("dbs:\n  - path: ./app.db\n    replica:\n      path: [a\n", ["yaml", "line "]),
    "wrong-type": ("dbs:\n  - path: ./app.db\n    monitor-interval: abc\n    replica: {path: ./rep}\n",
                   ["line 3", "monitor-interval"]),
    "wrong-type-list": ("dbs: 5\n", ["line 1", "dbs"]),
    "missing": (None, ["config file not found: "]),
}


@pytest.mark.parametrize("command", [("databases",), ("status",), ("replicate", "-once"), ("ltx",)])
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_error_line(tmp_path: Path, command: tuple[str, ...], case: str) -> None:
    text, needles = BAD_CONFIGS[case]
    cfg = tmp_path / "c.yml"
    if text is not None:
        cfg.write_text(text)
    args = [*command, "-config", str(cfg)] + (["app.db"] if command == ("ltx",) else [])
    proc = run_ours(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    assert str(cfg) in lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    if case == "missing":
        assert lines[0] == f"Error: config file not found: {cfg}"
        assert run_ref(*args, cwd=tmp_path).stderr == proc.stderr


def test_file_url_percent_escapes_stay_as_written(tmp_path: Path) -> None:
    """file:///…/a%20b names a directory `a%20b` for the reference, not `a b`: both tools write to the
    same place, and each restores what the other wrote there."""
    for tool, run in (("ours", run_ours), ("ref", run_ref)):
        work = tmp_path / tool
        work.mkdir()
        db = make_db(work / "app.db", [tool])
        url = f"file://{work}/a%20b"
        p = run("replicate", "-once", str(db), url, cwd=work)
        assert p.returncode == 0, p.stderr
        assert l0_files(work / "a%20b") and not (work / "a b").exists()
        other = run_ref if tool == "ours" else run_ours
        out = work / "restored.db"
        p = other("restore", "-o", str(out), url, cwd=work)
        assert p.returncode == 0, p.stderr
        assert read_rows(out) == [tool]
