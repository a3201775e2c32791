from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real fixtures in ../shared/data (COCO, CrowdPose, OCHuman, demo)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"fixture data not found at {SHARED_DATA.resolve()}")
    return SHARED_DATA.resolve()
