"""Fixtures for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _data_helpers import write_dataset


@pytest.fixture
def tiny(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `tiny(annotations, **kw)` writes a dataset under tmp_path and returns its JSON."""
    counter = iter(range(1000))

    def make(annotations: list[dict[str, Any]], **kw: Any) -> Path:
        return write_dataset(tmp_path / f"ds{next(counter)}", annotations, **kw)

    return make
