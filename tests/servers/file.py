"""The file backend's "server": a directory. It keeps the backend tests honest about what every other
backend must match, and runs them where no server is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.servers import Server

NAME = "file"
REPLICA_TYPE = "file"


class FileServer(Server, name=NAME, replica_type=REPLICA_TYPE):
    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "file", "path": str(self.workdir / path)}

    def url(self, path: str) -> str | None:
        return f"file://{self.workdir / path}"


def start(workdir: Path) -> Server:
    return FileServer(workdir)
