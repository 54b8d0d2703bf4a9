"""Real storage servers for the backend tests, started by the suite itself on 127.0.0.1.

Each module here (one per server: `seaweedfs.py`, `fakegcs.py`, ...) defines

    NAME: str                     # the server's name, used as the test id
    REPLICA_TYPE: str             # the replica type it serves ("s3", "gs", ...)
    def start(workdir: Path) -> Server

and `ci/servers/<NAME>.sh` installs what it needs. The backend tests run once per module found here;
`tests/backends/conftest.py` starts each server at most once per session (lazily, on first use) and
stops it at the end. A server that is not installed fails its tests, naming the install script: CI
installs every one, so a missing server is a broken setup, never a silent skip."""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import yaml

SERVER_MODULES = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


class ServerNotInstalled(RuntimeError):
    pass


def load(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name: str, *candidates: str) -> str | None:
    """An executable: the fixed paths given first (Debian puts daemons outside a user's PATH), then
    beside this interpreter (a pip package's console script; pyenv shims may not know a script
    installed since the last rehash), then PATH."""
    for p in (*candidates, *(os.path.join(d, name) for d in (sysconfig.get_path("scripts"),
                                                              os.path.dirname(sys.executable)))):
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def count_lines(log: Path, counted: Callable[[str], bool]) -> int | None:
    """The lines of a server's log that `counted` accepts (its request count), or None while there is
    no log to read."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    return sum(1 for line in text.splitlines() if counted(line))


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60.0,
              what: str = "server") -> None:
    """Until something accepts connections on 127.0.0.1:port (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def wait_until(cond: Callable[[], bool], timeout: float = 60.0, what: str = "server ready") -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception as e:  # a server that is starting fails in many ways
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not within {timeout:.0f}s ({last})")


def spawn(argv: list[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          ) -> subprocess.Popen:
    """A server process in its own session (so stop() takes its children too), output to log."""
    full = dict(os.environ)
    if env:
        full.update(env)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=full, cwd=cwd,
                                start_new_session=True)


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Server:
    """One running server. Subclasses fill in `replica()`; the rest has defaults. A subclass names its
    module's NAME and REPLICA_TYPE in its class statement: `class S(Server, name=NAME, replica_type=...)`."""

    name: str = ""
    replica_type: str = ""

    def __init_subclass__(cls, name: str = "", replica_type: str = "", **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if name:
            cls.name, cls.replica_type = name, replica_type

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.port = 0  # where it listens on 127.0.0.1, once started (0: not yet, or no port)
        # Environment both tools need to reach the server (emulator hosts, credentials).
        self.env: dict[str, str] = {}

    def replica(self, path: str) -> dict[str, Any]:
        """A replica config mapping (YAML keys) for a fresh replica at `path` (a prefix unique to the
        test, made of [a-z0-9-/])."""
        raise NotImplementedError

    def url(self, path: str) -> str | None:
        """The replica's URL form for the CLI (`restore URL`, `ltx URL`), or None if it needs config keys."""
        return None

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        """A replica mapping with wrong credentials, or None when the server does not check them."""
        return None

    def requests(self) -> int | None:
        """Requests the server has served so far (for the idle test), or None if it cannot tell."""
        return None

    def start(self) -> None:
        """Spawn the server's processes (appending them to self.procs) and wait until it serves."""

    def stop(self) -> None:
        for p in reversed(self.procs):
            terminate(p)

    @classmethod
    def launch(cls, workdir: Path) -> Self:
        """A started server: what each module's start(workdir) returns. A start that fails half way
        stops what it spawned, so no process outlives the session."""
        s = cls(workdir)
        try:
            s.start()
        except BaseException:
            s.stop()
            raise
        return s


class HTTPLogServer(Server):
    """A server whose log has one line per request it served (` HTTP/1.` in it): requests() counts those
    after `_setup_requests`, the server's own setup traffic (a bucket or container the fixture made)."""

    log: Path
    _setup_requests = 0

    def _served(self) -> int | None:
        return count_lines(self.log, lambda line: " HTTP/1." in line)

    def requests(self) -> int | None:
        served = self._served()
        return None if served is None else served - self._setup_requests


def replica_config(mapping: Mapping[str, Any]):
    """Our ReplicaConfig for a replica mapping, parsed exactly as a config file would be."""
    from litestream.config import parse_config

    text = yaml.safe_dump({"dbs": [{"path": "/tmp/x.db", "replica": dict(mapping)}]})
    return parse_config(text, "<test>").dbs[0].replica


def config_text(dbs: list[tuple[str, Mapping[str, Any]]], **top: Any) -> str:
    """A litestream.yml: each (db path, replica mapping), plus top-level keys (levels, snapshot, ...)."""
    doc = dict(top)
    doc["dbs"] = [{"path": p, "replica": dict(r)} for p, r in dbs]
    return yaml.safe_dump(doc, sort_keys=False)
