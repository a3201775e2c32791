"""Fixtures for the service tests: the tiny calibrated model behind an in-process app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("httpx", reason="the Starlette test client needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from grapepose.api import PoseEstimator  # noqa: E402
from grapepose.serve import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="session")
def estimator(tiny_checkpoint: Path) -> PoseEstimator:
    """The calibrated W18 (base size 128, no flip) on CPU, 8 images per forward pass."""
    return PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", batch_size=8)


@pytest.fixture(scope="session")
def photo(shared_data: Path) -> Path:
    return shared_data / "demo" / "crowd_01.jpg"


@pytest.fixture
def make_client(estimator: PoseEstimator) -> Iterator[Callable[..., TestClient]]:
    """Factory: `make_client(**settings)` -> a started TestClient of an app with those limits."""
    opened: list[TestClient] = []

    def make(estimator_: Any = None, **settings: Any) -> TestClient:
        app = create_app(estimator_ or estimator, ServeSettings(**settings), source="tiny")
        client = TestClient(app)
        client.__enter__()  # runs the lifespan: the batcher starts on the app's event loop
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
