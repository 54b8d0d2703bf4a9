"""Throughput of the C core on 1 GiB-scale inputs: CRC-64, LTX encode, LTX decode+verify.

Run explicitly (the normal suite only collects tests/ and disables benchmarks):

    python -m pytest bench/ --benchmark-enable -o addopts=""

Every benchmark runs on one core (the C calls release the GIL but are single-threaded). Throughput is
reported in GB/s of page data (uncompressed) in extra_info and in a summary at the end of the run."""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

from conftest import BENCH_BYTES, ROUNDS, BenchInput, encode_snapshot, record_throughput
from litestream import _ltxcore as core

CRC_BYTES = max(1 << 20, BENCH_BYTES // 4 >> 20 << 20)  # 256 MiB by default


@pytest.fixture(scope="module")
def crc_buffer() -> bytes:
    rng = random.Random(7)
    return b"".join(rng.randbytes(1 << 20) for _ in range(CRC_BYTES >> 20))


@pytest.mark.parametrize("impl", ["pclmul", "portable"])
def test_crc64(benchmark, crc_buffer: bytes, impl: str) -> None:
    fn: Callable[[bytes], int] = core.crc64 if impl == "pclmul" else core.crc64_portable
    if impl == "pclmul":
        benchmark.extra_info["dispatch"] = core.crc64_impl()
    want = core.crc64_portable(crc_buffer[: 1 << 20])
    assert fn(crc_buffer[: 1 << 20]) == want
    rounds = 4 * ROUNDS if impl == "pclmul" else max(1, ROUNDS // 2)  # pclmul: ~20 ms a round
    benchmark.pedantic(fn, args=(crc_buffer,), rounds=rounds, iterations=1, warmup_rounds=1)
    record_throughput(benchmark, len(crc_buffer))


@pytest.mark.parametrize("sink", ["devnull", "file"])
def test_ltx_encode(benchmark, bench_input: BenchInput, tmp_path, sink: str) -> None:
    """Snapshot of the whole database (read from the page cache) into /dev/null or a new file."""
    out = os.devnull if sink == "devnull" else str(tmp_path / "encoded.ltx")
    state: dict[str, int] = {}

    def setup() -> tuple[tuple[int], dict[str, object]]:
        if sink == "file" and os.path.exists(out):
            os.remove(out)
            os.sync()  # keep writeback of the previous round out of this one
        state["fd"] = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return (state["fd"],), {}

    def run(fd: int) -> tuple[int, int]:
        try:
            return encode_snapshot(bench_input.db_path, fd, bench_input.page_size, bench_input.commit)
        finally:
            os.close(fd)

    benchmark.extra_info["synthetic"] = bench_input.synthetic
    benchmark.extra_info["ltx_bytes"] = os.path.getsize(bench_input.ltx_path)
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    if sink == "file":
        assert os.path.getsize(out) == os.path.getsize(bench_input.ltx_path)
        os.remove(out)
        os.sync()  # no writeback left running during the next benchmark
    record_throughput(benchmark, bench_input.page_bytes)


def test_ltx_decode_verify(benchmark, bench_input: BenchInput) -> None:
    """Decode every page (LZ4) and check the file CRC-64, without handing pages to Python."""
    fd = os.open(bench_input.ltx_path, os.O_RDONLY)
    try:
        def run() -> tuple:
            return core.Decoder(fd).verify()

        header, trailer, _ = run()  # also warms the page cache
        os.sync()
        assert header[2] == bench_input.commit
        benchmark.extra_info["synthetic"] = bench_input.synthetic
        benchmark.extra_info["ltx_bytes"] = os.path.getsize(bench_input.ltx_path)
        benchmark.extra_info["file_checksum"] = f"{trailer[1]:016x}"
        benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    finally:
        os.close(fd)
    record_throughput(benchmark, bench_input.page_bytes)


def test_ltx_decode_pages(benchmark, bench_input: BenchInput) -> None:
    """Decode through the Python iterator (one bytes object per page), for comparison with verify()."""
    fd = os.open(bench_input.ltx_path, os.O_RDONLY)
    try:
        def run() -> int:
            dec = core.Decoder(fd)
            n = sum(1 for _ in dec)
            dec.finish()
            return n

        assert run() == bench_input.n_pages
        os.sync()
        benchmark.pedantic(run, rounds=max(1, ROUNDS // 2), iterations=1, warmup_rounds=0)
    finally:
        os.close(fd)
    record_throughput(benchmark, bench_input.page_bytes)
