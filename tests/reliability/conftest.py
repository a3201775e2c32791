"""Fixtures of the predict reliability tests: one tiny model loaded per test module, reused by in-process runs."""

from __future__ import annotations

import pytest

import grapepose.cli.predict as predict_cli
from grapepose.api import PoseEstimator


@pytest.fixture(scope="module")
def loaded_estimator(tiny_checkpoint):
    """The tiny model with the settings of `_predict_helpers.FAST`, loaded once per test module."""
    return PoseEstimator.from_pretrained(tiny_checkpoint, device="cpu", batch_size=1,
                                         overrides=["test.base_size=64", "test.flip=false"])  # fmt: skip


@pytest.fixture
def predict_loads_once(loaded_estimator, monkeypatch):
    """In-process `grapepose predict` runs reuse `loaded_estimator` (loading is most of a tiny run's time);
    subprocesses load theirs."""
    monkeypatch.setattr(predict_cli, "_estimator", lambda args, overrides: loaded_estimator)
