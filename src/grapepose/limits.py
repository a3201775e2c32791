"""The limits on what one input may ask of the machine, defined once for `predict`, `evaluate`,
the Python API and the service (`grapepose serve`).

A 65-byte PNG can declare 100000 x 100000 pixels (30 GB decoded), and `--scales 100` asks for a
network input 10^4 times the usual size: both are refused in one line before any memory is spent.
"""

from __future__ import annotations

__all__ = ["MAX_BASE_SIZE", "MAX_MEGAPIXELS", "MAX_TEST_SCALES", "TEST_SCALE_RANGE", "too_many_pixels"]

# Decoded images: 50 MP holds the photos of phone and camera sensors up to 50 MP (8160 x 6120),
# 150 MB as RGB uint8. Each reader can raise it (`--max-megapixels`, `max_megapixels=`).
MAX_MEGAPIXELS = 50.0

# Test scales: the network input (and its memory) grows with the square of the scale, and of the
# short side at scale 1 (`--base-size`, 512 in the presets).
TEST_SCALE_RANGE = (0.25, 2.0)
MAX_TEST_SCALES = 3
MAX_BASE_SIZE = 2048


def too_many_pixels(width: int, height: int, max_megapixels: float) -> str | None:
    """Why an image of `width` x `height` is refused (`None`: it is within `max_megapixels`)."""
    if width * height <= max_megapixels * 1e6:
        return None
    return f"{width}x{height} pixels ({width * height / 1e6:.1f} MP) exceeds the {max_megapixels:g} megapixel limit"
