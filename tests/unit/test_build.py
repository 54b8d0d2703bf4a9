"""`pip install .` on a machine without the LZ4 headers: CMake stops with one line saying what to install,
not its list of variables it could not set."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake builds the package; it is on every build host")
def test_missing_lz4_is_one_clear_line(tmp_path):
    p = subprocess.run(["cmake", str(REPO), "-DSKBUILD_PROJECT_NAME=litestream_py",
                        "-DCMAKE_FIND_ROOT_PATH=/nonexistent", "-DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY",
                        "-DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0
    text = " ".join(p.stderr.split())
    assert "litestream-py needs the LZ4 library and headers: install liblz4-dev" in text, p.stderr
