"""`exec`, in its two forms.

The reference's string form (`-exec "app -flag"`, `exec: "app -flag"`) runs the application as a child:
the command line is split with shell-words rules (no shell), the child inherits the environment, stdout
and stderr and reads /dev/null (as Go's exec.Cmd with no Stdin), SIGINT/SIGTERM are forwarded to it, and
replicate stops when it exits, with a final sync; a non-zero exit becomes `Error: exit status N`.

The migration guide's list form (`exec: [{cmd: ["/usr/local/bin/notify", "started"]}]`) is a list of
hooks: each runs once when replication has started (after the store opened and the services started),
without a shell, with the same environment and streams as the child. They all start at once (a slow or
hanging hook delays no other) and replicate never waits for them: a hook's exit, whatever its status,
does not stop replication, and a hook still running when replicate stops is left to finish. The outcome
is logged: exit 0 at INFO, a non-zero status, a signal or a failure to start at ERROR. Only the hook's
index and program (argv[0]) are logged, never its arguments (a `curl -u user:password ...` hook must not
put the password in the log) nor its environment. `replicate -once` does not run hooks (they belong to
the long-running replicate); the string form is rejected with -once as in the reference."""

from __future__ import annotations

import shlex
import signal
import subprocess
import threading

from litestream import logs

log = logs.get_logger("exec")


def signal_name(signum: int) -> str:
    """As Go prints os.Signal values (the shutdown log line, `signal: killed` exit errors)."""
    names = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt", signal.SIGKILL: "killed",
             signal.SIGHUP: "hangup", signal.SIGQUIT: "quit", signal.SIGABRT: "aborted",
             signal.SIGSEGV: "segmentation fault", signal.SIGPIPE: "broken pipe"}
    return names.get(signum, str(signum))


def _start_blocked(thread: threading.Thread) -> None:
    from litestream.daemon import start_thread_without_signals  # (daemon imports this module)

    start_thread_without_signals(thread)


class ExecError(Exception):
    """A one-line error for the user (replicate exits 1 with `Error: <message>`)."""


def _start_error(argv0: str, e: OSError) -> str:
    # Go's text for a failed start: "fork/exec <path>: <errno text, lower case>".
    return f"fork/exec {argv0}: {(e.strerror or str(e)).lower()}"


def _popen(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


class Child:
    """The string form: the application whose lifetime is replicate's."""

    def __init__(self, argv: list[str], daemon) -> None:
        self.daemon = daemon
        try:
            self.proc = _popen(argv)
        except OSError as e:
            raise ExecError(f"cannot start exec command: {_start_error(argv[0], e)}") from None
        _start_blocked(threading.Thread(target=self._wait, name="litestream-exec", daemon=True))

    def _wait(self) -> None:
        self.proc.wait()
        self.daemon.shutdown()

    def finish(self, signum: int | None) -> str | None:
        """After the stop event: forward the signal and wait, or report the child's exit. Returns an
        error message for a failed child (exit 1), None otherwise."""
        if signum is not None:
            logs.info("signal received, litestream shutting down", "signal", signal_name(signum))
            if self.proc.poll() is None:
                logs.info("sending signal to exec process")
                self.proc.send_signal(signum)
                logs.info("waiting for exec process to close")
                self.proc.wait()
                # Killed by the forwarded signal is a normal end; any other failure is reported (after the
                # final sync, which the reference skips).
                if self.proc.returncode > 0:
                    return f"cannot wait for exec process: exit status {self.proc.returncode}"
            return None
        logs.info("subprocess exited, litestream shutting down")
        rc = self.proc.returncode
        return f"exit status {rc}" if rc and rc > 0 else None


class Hooks:
    """The list form: commands run once at start, each watched by its own thread until it exits."""

    def __init__(self, argvs: list[list[str]]) -> None:
        self.procs: list[subprocess.Popen] = []
        for index, argv in enumerate(argvs):
            try:
                proc = _popen(argv)
            except OSError as e:
                log.error("exec hook failed", "hook", index, "cmd", argv[0], "error", _start_error(argv[0], e))
                continue
            log.debug("exec hook started", "hook", index, "cmd", argv[0], "pid", proc.pid)
            self.procs.append(proc)
            _start_blocked(threading.Thread(target=self._wait, args=(index, argv[0], proc),
                                            name=f"litestream-exec-hook-{index}", daemon=True))

    @staticmethod
    def _wait(index: int, program: str, proc: subprocess.Popen) -> None:
        rc = proc.wait()
        if rc == 0:
            log.info("exec hook finished", "hook", index, "cmd", program, "exit-code", 0)
        elif rc > 0:
            log.error("exec hook failed", "hook", index, "cmd", program, "exit-code", rc, "error", f"exit status {rc}")
        else:
            # Go's ExitCode() is -1 for a process ended by a signal, and its error says which.
            log.error("exec hook failed", "hook", index, "cmd", program, "exit-code", -1,
                      "error", f"signal: {signal_name(-rc)}")

    def finish(self, signum: int | None) -> str | None:
        """Hooks never decide how replicate ends: only say why it does."""
        if signum is not None:
            logs.info("signal received, litestream shutting down", "signal", signal_name(signum))
        return None


def parse_command_line(spec: str) -> list[str]:
    try:
        argv = shlex.split(spec)
    except ValueError as e:
        raise ExecError(f"cannot parse exec command: {e}") from None
    if not argv:
        raise ExecError("cannot parse exec command: empty command")
    return argv


def start(spec, daemon) -> Child | Hooks | None:
    """spec: the string form (str), the list form (ExecHook structs from the config, or argv lists), or
    None/""/[] for none."""
    if not spec:
        return None
    if isinstance(spec, str):
        return Child(parse_command_line(spec), daemon)
    return Hooks([list(getattr(h, "cmd", h)) for h in spec])
