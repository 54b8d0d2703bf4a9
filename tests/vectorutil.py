"""Access to the reference vectors (tests/vectors): copies with mtimes set from the LTX headers, as the
reference binary sets them, so timestamp restores and `ltx` listings see the original CreatedAt."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from litestream.ltx import Header

VECTORS = Path(__file__).resolve().parent / "vectors"
NAMES = sorted(p.name for p in VECTORS.iterdir() if (p / "manifest.json").exists())


def manifest(name: str) -> dict:
    return json.loads((VECTORS / name / "manifest.json").read_text())


def copy_replica(name: str, dest: Path) -> Path:
    shutil.copytree(VECTORS / name / "replica", dest)
    for root, _, files in os.walk(dest):
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, 0o644)
            with open(p, "rb") as fh:
                ts = Header.decode(fh.read(100)).timestamp
            os.utime(p, ns=(ts * 1_000_000, ts * 1_000_000))
    return dest


def sha256_file(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
