"""Replicas made by the real Litestream 0.5.17, generated once per test session and shared by the
generator's own checks and by the tests that restore them with our implementation."""

from __future__ import annotations

import pytest

from tests.interop.workload import (
    PAGE_SIZES,
    cached_reference_replica,
    large_db_scenario,
    long_history_scenario,
    mixed_long_scenario,
    page_size_scenario,
    vacuum_shrink_scenario,
)

LONG_HISTORY_TXIDS = 3000


@pytest.fixture(scope="session", params=PAGE_SIZES, ids=[f"ps{p}" for p in PAGE_SIZES])
def ref_page_size(request, tmp_path_factory):
    return cached_reference_replica(tmp_path_factory, page_size_scenario(request.param))


@pytest.fixture(scope="session")
def ref_vacuum(tmp_path_factory):
    return cached_reference_replica(tmp_path_factory, vacuum_shrink_scenario())


@pytest.fixture(scope="session")
def ref_long_history(tmp_path_factory):
    return cached_reference_replica(tmp_path_factory, long_history_scenario(LONG_HISTORY_TXIDS))


@pytest.fixture(scope="session")
def ref_mixed(tmp_path_factory):
    return cached_reference_replica(tmp_path_factory, mixed_long_scenario())


@pytest.fixture(scope="session")
def ref_large(tmp_path_factory):
    gen = cached_reference_replica(tmp_path_factory, large_db_scenario())
    yield gen
    gen.cleanup()  # several GiB; do not leave them in pytest's retained temp dirs
