"""Azure Blob Storage: Azurite's blob service (npm, installed by ci/servers/azurite.sh into
.cache/servers/azurite), on 127.0.0.1 with the emulator's well-known development account.

Azurite serves the account path-style (`http://127.0.0.1:P/devstoreaccount1`), so both tools get it as
`endpoint`; it checks shared-key signatures, so a wrong key is a real AuthError test. It never creates
containers on its own: the fixture creates the one the replicas use."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.servers import HTTPLogServer, Server, ServerNotInstalled, free_port, spawn, wait_port, wait_until

NAME = "azurite"
REPLICA_TYPE = "abs"
ACCOUNT = "devstoreaccount1"
# The development storage account's key, published by Microsoft for every Azurite install.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# A well-formed key that is not the account's: the signature check must refuse it.
WRONG_KEY = "d3JvbmctYWNjb3VudC1rZXktZm9yLWxpdGVzdHJlYW0tdGVzdHMtMDEyMzQ1Njc4OQ=="
CONTAINER = "litestream"

_REPO = Path(__file__).resolve().parents[2]
_BIN = _REPO / ".cache" / "servers" / "azurite" / "node_modules" / ".bin" / "azurite-blob"


class AzuriteServer(HTTPLogServer, name=NAME, replica_type=REPLICA_TYPE):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.endpoint = ""
        self.log = workdir / "azurite.log"  # its access log: one line per request

    def start(self) -> None:
        if not _BIN.exists():
            raise ServerNotInstalled(f"no {_BIN}")
        if shutil.which("node") is None:
            raise ServerNotInstalled("node is not on PATH")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        # --skipApiVersionCheck: the newest azure-storage-blob may speak an API version newer than the
        # installed Azurite knows; what the backend uses is old enough for both.
        argv = [str(_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--disableTelemetry",
                "--skipApiVersionCheck", "--location", str(self.workdir / "data")]
        self.procs.append(spawn(argv, self.log))
        wait_port(self.port, self.procs[0], what="azurite")
        wait_until(self._create_container, timeout=30, what="azurite container")
        # Not the tests' traffic: the container's creation (logged a moment after it is answered).
        wait_until(lambda: (self._served() or 0) >= 1, timeout=5, what="azurite access log")
        self._setup_requests = self._served() or 0

    def _create_container(self) -> bool:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        svc = BlobServiceClient(self.endpoint, credential={"account_name": ACCOUNT, "account_key": KEY})
        try:
            svc.create_container(CONTAINER)
        except ResourceExistsError:
            pass
        finally:
            svc.close()
        return True

    def replica(self, path: str) -> dict[str, Any]:
        return {"type": "abs", "endpoint": self.endpoint, "account-name": ACCOUNT, "account-key": KEY,
                "bucket": CONTAINER, "path": path}

    def bad_credentials(self, path: str) -> dict[str, Any] | None:
        return {**self.replica(path), "account-key": WRONG_KEY}


def start(workdir: Path) -> Server:
    return AzuriteServer.launch(workdir)
