"""Shared fixtures: how tests run our CLI and where the reference binary lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VECTORS = Path(os.environ.get("LITESTREAM_VECTORS", REPO / "tests" / "vectors"))


def run_ours(*args: str, env: dict | None = None, cwd: str | os.PathLike | None = None,
             timeout: float = 600, input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run our `litestream` CLI in a subprocess (exactly what a user runs)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "litestream", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, input=input)


@pytest.fixture
def ours():
    return run_ours
