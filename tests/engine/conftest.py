"""Fixtures for the engine tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture
def crowdpose(shared_data: Path) -> Path:
    return shared_data / "crowdpose"


@pytest.fixture(autouse=True)
def _restore_global_torch_state() -> Iterator[None]:
    """The trainer sets process-wide determinism flags; keep them out of other tests.

    One intra-op thread: on a shared 2-core machine more threads oversubscribe the cores and run
    many times slower.
    """
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.get_num_threads())  # fmt: skip
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]
    torch.set_num_threads(flags[4])
