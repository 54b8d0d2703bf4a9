"""`exec`: the application run as a child (the reference's string form, `-exec` and `exec: "cmd args"`):
signals forwarded, replicate stops when it exits, with a final sync."""

from __future__ import annotations

import shlex
import signal
import subprocess
import threading

from litestream import logs


def signal_name(signum: int) -> str:
    """As Go prints os.Signal values in the shutdown log line."""
    return {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}.get(signum, str(signum))


class ExecError(Exception):
    """A one-line error for the user (replicate exits 1 with `Error: <message>`)."""


class Child:
    def __init__(self, argv: list[str], daemon) -> None:
        self.daemon = daemon
        try:
            self.proc = subprocess.Popen(argv)
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise ExecError(f"cannot start exec command: fork/exec {argv[0] if argv else ''}: {reason}") from None
        threading.Thread(target=self._wait, name="litestream-exec", daemon=True).start()

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


def start(spec, daemon) -> Child | None:
    """spec: the exec command line (str) or None/"" for none."""
    if not spec:
        return None
    try:
        argv = shlex.split(spec)
    except ValueError as e:
        raise ExecError(f"cannot parse exec command: {e}") from None
    return Child(argv, daemon)
