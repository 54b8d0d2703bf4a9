"""Past shutdown-sync-timeout the store calls stop_retrying() on each replica client: the SDKs that retry a
call for a long time on their own (boto3: 10 attempts, ~99 s; google-cloud-storage: a 120 s deadline;
azure-storage-blob: 5 retries, ~35 s) then make one attempt per call. Against an endpoint that refuses
connections, a call fails in seconds once stop_retrying() was called."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from litestream.backends import BackendError
from litestream.backends.abs import ABSReplicaClient
from litestream.backends.gcs import GCSReplicaClient
from litestream.backends.s3 import S3ReplicaClient
from tests.unit.test_s3_config import s3


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_client(endpoint: str):
    return S3ReplicaClient(s3(bucket="b", path="p", endpoint=endpoint, region="us-east-1", access_key_id="k",
                              secret_access_key="s"))


def abs_client(endpoint: str):
    key = base64.b64encode(b"not a real key, 32 bytes long...").decode()
    return ABSReplicaClient("c", "p", account_name="devstoreaccount1", account_key=key,
                            endpoint=f"{endpoint}/devstoreaccount1")


def gcs_client(endpoint: str, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    return GCSReplicaClient("b", "p")


@pytest.mark.parametrize("kind", ["s3", "abs", "gs"])
def test_a_call_after_stop_retrying_is_one_attempt(kind, monkeypatch):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    client = {"s3": lambda: s3_client(endpoint), "abs": lambda: abs_client(endpoint),
              "gs": lambda: gcs_client(endpoint, monkeypatch)}[kind]()
    client.stop_retrying()
    t0 = time.monotonic()
    with pytest.raises(BackendError):
        list(client.ltx_files(0))
    assert time.monotonic() - t0 < 5
