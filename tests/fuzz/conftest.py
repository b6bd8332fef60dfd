"""Shared pieces of the fuzz tests: one child worker for the whole module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.runner import Worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    child = Worker(tmp_path_factory.mktemp("fuzz-worker"), timeout_s=5.0, memory_mb=2048)
    yield child
    child.close()
