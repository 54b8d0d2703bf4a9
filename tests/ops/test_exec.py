"""`exec`: the reference's string form (the application as a child) end to end, and the migration guide's
list form (hooks run once when replication has started), with every config shape error."""

from __future__ import annotations

import json
import re
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.cliutil import (
    Background,
    add_rows,
    l0_files,
    log_line,
    log_messages,
    make_db,
    read_rows,
    restore,
    run_ours,
    wait_for,
    write_config,
)
from tests.refbin import run_ref

CHILD_WRITER = """
import apsw, sys
conn = apsw.Connection(sys.argv[1])
conn.setbusytimeout(5000)
with conn:
    conn.executemany("INSERT INTO t(v) VALUES (?)", [("child-%d" % i,) for i in range(3)])
conn.close()
sys.exit(int(sys.argv[2]))
"""


def config(work: Path, exec_yaml: str = "") -> Path:
    """c.yml: one database with a file replica, and `exec_yaml` (YAML text for the exec key) if given."""
    return write_config(work / "c.yml", exec_yaml + textwrap.dedent("""
        dbs:
          - path: ./app.db
            monitor-interval: 50ms
            replica:
              path: ./rep
              sync-interval: 50ms
        """))


def restored_rows(work: Path) -> list[str]:
    out = work / "restored.db"
    proc = restore(work / "rep", out, cwd=work)
    assert proc.returncode == 0, proc.stderr
    return read_rows(out)


# ------------------------------------------------------------------------------------------ string form

@pytest.mark.parametrize("where", ["flag", "config"])
def test_child_writes_then_exits_0_and_the_replica_has_its_rows(tmp_path: Path, where: str) -> None:
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD_WRITER))
    make_db(tmp_path / "app.db", ["before"])
    cmd = f'"{sys.executable}" child.py app.db 0'
    if where == "flag":
        config(tmp_path)
        proc = run_ours("replicate", "-exec", cmd, "-config", "c.yml", cwd=tmp_path, timeout=60)
    else:
        config(tmp_path, f"exec: '{cmd}'\n")
        proc = run_ours("replicate", "-config", "c.yml", cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    msgs = log_messages(proc.stdout)
    assert "subprocess exited, litestream shutting down" in msgs
    assert msgs[-1] == "litestream shut down"
    # The final sync at close carried the child's last transaction.
    assert restored_rows(tmp_path) == ["before", "child-0", "child-1", "child-2"]


def test_child_exit_3_ends_replicate_with_exit_status_error(tmp_path: Path) -> None:
    (tmp_path / "child.py").write_text(textwrap.dedent(CHILD_WRITER))
    config(tmp_path)
    make_db(tmp_path / "app.db", ["before"])
    proc = run_ours("replicate", "-exec", f'"{sys.executable}" child.py app.db 3', "-config", "c.yml",
                    cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "Error: exit status 3\n")
    assert restored_rows(tmp_path)[-1] == "child-2"  # still synced before exiting


def test_sigterm_to_replicate_is_forwarded_to_the_child(tmp_path: Path) -> None:
    config(tmp_path)
    db = make_db(tmp_path / "app.db", ["before"])
    child = ("sh -c 'trap \"echo trapped > marker; exit 0\" TERM; echo ready > ready; "
             "while :; do sleep 0.05; done'")
    bg = Background(["replicate", "-exec", child, "-config", "c.yml"], ref=False, cwd=tmp_path)
    try:
        assert wait_for(lambda: (tmp_path / "ready").exists() and bool(l0_files(tmp_path / "rep")), 15), bg.output()
        add_rows(db, ["during"])
        bg.signal(signal.SIGTERM)
        assert bg.finish(timeout=30) == 0, bg.stdout + bg.stderr
    finally:
        bg.kill()
    assert (tmp_path / "marker").read_text() == "trapped\n"
    assert "sending signal to exec process" in log_messages(bg.stdout)
    assert restored_rows(tmp_path) == ["before", "during"]


def test_child_reads_dev_null_like_the_reference(tmp_path: Path) -> None:
    # Go's exec.Cmd without Stdin gives the child /dev/null: an application must not steal replicate's input.
    config(tmp_path)
    make_db(tmp_path / "app.db")
    cmd = "sh -c 'read x; echo \"got=[$x]\"'"
    results = [runner("replicate", "-exec", cmd, "-config", "c.yml", cwd=tmp_path, timeout=60, input="typed\n")
               for runner in (run_ours, run_ref)]
    for proc in results:
        assert proc.returncode == 0, proc.stderr
        assert "got=[]\n" in proc.stdout


def test_empty_command_line_is_an_error(tmp_path: Path) -> None:
    config(tmp_path)
    make_db(tmp_path / "app.db")
    proc = run_ours("replicate", "-exec", "  ", "-config", "c.yml", cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "Error: cannot parse exec command: empty command\n")


# -------------------------------------------------------------------------------------------- list form

HOOK = """
import os, sys, time
# argv: marker name, delay, exit code, then arguments that must never reach the log
time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as f:
    f.write("ran\\n")
code = int(sys.argv[3])
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def hook_yaml(*hooks: tuple[str, float, int]) -> str:
    lines = ["exec:"]
    for marker, delay, code in hooks:
        lines.append(f'  - cmd: ["{sys.executable}", "hook.py", "{marker}", "{delay}", "{code}", '
                     f'"--password=HOOKSECRETzq9"]')
    return "\n".join(lines) + "\n"


def start_hooks(work: Path, yaml_text: str, *args: str) -> Background:
    (work / "hook.py").write_text(textwrap.dedent(HOOK))
    config(work, yaml_text)
    make_db(work / "app.db", ["before"])
    return Background(["replicate", *args, "-config", "c.yml"], ref=False, cwd=work,
                      env={"LOG_LEVEL": "debug"})


def stop(bg: Background) -> int:
    bg.signal(signal.SIGTERM)
    return bg.finish(timeout=30)


def test_hooks_run_once_after_start_and_replicate_keeps_running(tmp_path: Path) -> None:
    bg = start_hooks(tmp_path, hook_yaml(("ok", 0, 0), ("fails", 0, 3), ("killed", 0, -signal.SIGKILL)))
    try:
        assert wait_for(lambda: all((tmp_path / m).exists() for m in ("ok", "fails", "killed")), 15), bg.output()
        assert wait_for(lambda: len([m for m in log_messages(bg.output()) if m.startswith("exec hook f")]) == 3, 10)
        # Replication goes on after every hook has ended, whatever their status.
        assert bg.proc.poll() is None
        add_rows(tmp_path / "app.db", ["after-hooks"])
        assert stop(bg) == 0, bg.stdout + bg.stderr
    finally:
        bg.kill()
    out = bg.stdout
    for m in ("ok", "fails", "killed"):
        assert (tmp_path / m).read_text() == "ran\n"  # once each
    assert out.index('msg="replicating to"') < out.index('msg="exec hook started"')
    assert f'level=INFO msg="exec hook finished" hook=0 cmd={sys.executable} exit-code=0' in out
    assert f'level=ERROR msg="exec hook failed" hook=1 cmd={sys.executable} exit-code=3 error="exit status 3"' in out
    assert (f'level=ERROR msg="exec hook failed" hook=2 cmd={sys.executable} exit-code=-1 '
            'error="signal: killed"') in out
    assert "HOOKSECRETzq9" not in out + bg.stderr
    assert "subprocess exited" not in out
    assert log_messages(out)[-1] == "litestream shut down"
    assert restored_rows(tmp_path) == ["before", "after-hooks"]


def test_hooks_run_in_parallel(tmp_path: Path) -> None:
    bg = start_hooks(tmp_path, hook_yaml(("order", 1.5, 0), ("order", 0, 0)))
    try:
        assert wait_for(lambda: (tmp_path / "order").exists(), 15), bg.output()
        # The slow first hook has not delayed the second.
        assert wait_for(lambda: len([m for m in log_messages(bg.output()) if m == "exec hook finished"]) == 2, 10)
        assert stop(bg) == 0
    finally:
        bg.kill()
    finished = [re.search(r" hook=(\d)", ln).group(1) for ln in bg.stdout.splitlines() if "exec hook finished" in ln]
    assert finished == ["1", "0"]


def test_a_hook_that_cannot_start_is_logged_and_replication_continues(tmp_path: Path) -> None:
    yaml_text = 'exec:\n  - cmd: ["/nonexistent/notify", "HOOKSECRETzq9"]\n' + hook_yaml(("ok", 0, 0))[6:]
    bg = start_hooks(tmp_path, yaml_text)
    try:
        assert wait_for(lambda: (tmp_path / "ok").exists(), 15), bg.output()
        assert wait_for(lambda: "exec hook finished" in log_messages(bg.output()), 10)
        assert bg.proc.poll() is None
        assert stop(bg) == 0
    finally:
        bg.kill()
    line = log_line(bg.stdout, "exec hook failed")
    assert line == ('level=ERROR msg="exec hook failed" hook=0 cmd=/nonexistent/notify '
                    'error="fork/exec /nonexistent/notify: no such file or directory"')
    assert "HOOKSECRETzq9" not in bg.stdout + bg.stderr


def test_cmd_as_a_string_is_split_without_a_shell(tmp_path: Path) -> None:
    (tmp_path / "argv.py").write_text("import json, sys\nopen('argv.json', 'w').write(json.dumps(sys.argv[1:]))\n")
    # A shell would glob the *, redirect at > and end the command at ;. Shell-words splitting keeps them.
    bg = start_hooks(tmp_path, f"exec:\n  - cmd: '\"{sys.executable}\" argv.py \"a b\" * >out ;'\n")
    try:
        assert wait_for(lambda: (tmp_path / "argv.json").exists(), 15), bg.output()
        assert stop(bg) == 0
    finally:
        bg.kill()
    assert json.loads((tmp_path / "argv.json").read_text()) == ["a b", "*", ">out", ";"]


def test_once_does_not_run_hooks(tmp_path: Path) -> None:
    (tmp_path / "hook.py").write_text(textwrap.dedent(HOOK))
    config(tmp_path, hook_yaml(("ran", 0, 0)))
    make_db(tmp_path / "app.db", ["before"])
    proc = run_ours("replicate", "-once", "-config", "c.yml", cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    assert log_line(proc.stdout, "exec hooks are not run with -once") == (
        'level=INFO msg="exec hooks are not run with -once" count=1')
    assert not (tmp_path / "ran").exists()
    assert restored_rows(tmp_path) == ["before"]


def test_exec_flag_overrides_the_list_form(tmp_path: Path) -> None:
    (tmp_path / "hook.py").write_text(textwrap.dedent(HOOK))
    config(tmp_path, hook_yaml(("hook-ran", 0, 0)))
    make_db(tmp_path / "app.db", ["before"])
    proc = run_ours("replicate", "-exec", f'"{sys.executable}" hook.py child-ran 0.2 0', "-config", "c.yml",
                    cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stdout
    assert (tmp_path / "child-ran").exists() and not (tmp_path / "hook-ran").exists()
    assert "subprocess exited, litestream shutting down" in log_messages(proc.stdout)


# ----------------------------------------------------------------------------------------- config errors

FORMS = 'a command line ("app -flag") or a list of hooks ([{cmd: ["/path/to/cmd", "arg"]}])'


@pytest.mark.parametrize("yaml_text, error", [
    ("exec: 5\n", f"line 1: exec: expected {FORMS}, got '5' (quote it to pass it as text)"),
    ("exec: {cmd: [a]}\n", f"line 1: exec: expected {FORMS}, got a mapping"),
    ("exec: [notify, started]\n",
     "line 1: exec[0]: expected a hook such as {cmd: [\"/path/to/cmd\", \"arg\"]}, got 'notify'"),
    ("exec:\n  - run: [a]\n", "line 2: exec[0].run: unknown key (a hook has only cmd)"),
    ("exec:\n  - {}\n", 'line 2: exec[0].cmd: required: the command to run, e.g. cmd: ["/path/to/cmd", "arg"]'),
    ("exec:\n  - cmd:\n", 'line 2: exec[0].cmd: required: the command to run, e.g. cmd: ["/path/to/cmd", "arg"]'),
    ("exec:\n  - cmd: []\n",
     "line 2: exec[0].cmd: must be a non-empty list of strings (the program and its arguments)"),
    ("exec:\n  - cmd: ''\n",
     "line 2: exec[0].cmd: must be a non-empty list of strings (the program and its arguments)"),
    ("exec:\n  - cmd: [sleep, 5]\n",
     "line 2: exec[0].cmd[1]: expected a string, got '5' (quote it to pass it as text)"),
    ("exec:\n  - cmd: [/bin/true]\n  - cmd: [echo, [x]]\n", "line 3: exec[1].cmd[1]: expected a string, got a list"),
    ("exec:\n  - cmd: {a: b}\n", "line 2: exec[0].cmd: expected a list of strings, got a mapping"),
    ("exec:\n  - cmd: ['']\n", "line 2: exec[0].cmd[0]: the program must not be empty"),
    ("exec:\n  - cmd: \"notify 'started\"\n", "line 2: exec[0].cmd: cannot parse command line: No closing quotation"),
])
def test_wrong_shapes_are_one_line_config_errors(tmp_path: Path, yaml_text: str, error: str) -> None:
    path = config(tmp_path, yaml_text)
    make_db(tmp_path / "app.db")
    proc = run_ours("replicate", "-config", "c.yml", cwd=tmp_path, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", f"Error: {path}: {error}\n")
