"""Exceptions raised for bad user input.

Every error a user can cause (bad file, bad config, bad image) is a `GrapeposeError` with a
one-line message naming the file and the problem; the CLI prints that line and exits non-zero.
"""

from __future__ import annotations


class GrapeposeError(ValueError):
    """Bad user input: a file, config value or image that cannot be used."""


class ConfigError(GrapeposeError):
    """An invalid configuration key or value."""


class CheckpointError(GrapeposeError):
    """A checkpoint file that cannot be read or does not fit the model."""


class DataError(GrapeposeError):
    """A dataset, annotation or image that cannot be used."""
