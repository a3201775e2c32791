import os

# The CLI's default (grapepose.cli.main.passive_openmp_waits), set here because torch reads it when it
# loads, before any test calls `main`: spinning OpenMP threads on a shared CI machine multiply a test's time.
if "GOMP_SPINCOUNT" not in os.environ:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402 (after the environment above)

import cv2  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from grapepose.config import load_config  # noqa: E402
from grapepose.inference.preprocess import normalize_images  # noqa: E402
from grapepose.io.files import read_image  # noqa: E402
from grapepose.models import build_model, save_model  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _fp32_auto_and_private_cache(tmp_path_factory):
    """`auto` means fp32 for the whole suite (subprocesses included), so tests whose figures are fp32 stay
    so on a CPU where `auto` would pick OpenVINO bf16; the precision tests ask for bf16/int8 by name.
    Converted models go to a temporary cache, never the user's."""
    import os

    saved = {key: os.environ.get(key) for key in ("GRAPEPOSE_PRECISION", "GRAPEPOSE_CACHE")}
    os.environ["GRAPEPOSE_PRECISION"] = "fp32"
    os.environ["GRAPEPOSE_CACHE"] = str(tmp_path_factory.mktemp("grapepose-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real fixtures in ../shared/data (COCO, CrowdPose, OCHuman, demo)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"fixture data not found at {SHARED_DATA.resolve()}")
    return SHARED_DATA.resolve()


def calibrated_w18(image_path, overrides=("test.base_size=128", "test.flip=false")):
    """A random-weight CrowdPose W18 whose BatchNorm statistics come from one real image.

    Freshly initialised HRNet features are nearly constant, so the raw network finds nobody; with
    calibrated BatchNorm its maps vary like a network in training and it "finds" people, which the
    tests need to exercise decoding, drawing and tracking. Small test sizes keep it fast.
    """
    torch.manual_seed(0)
    cfg = load_config("crowdpose_w18", list(overrides))
    model = build_model(cfg)
    image = cv2.resize(read_image(image_path), (128, 128))
    x = normalize_images(torch.from_numpy(image).permute(2, 0, 1)[None]).repeat(2, 1, 1, 1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics
    model.eval()
    for m in model.modules():  # BatchNorm in training mode, nothing else: no dropout draws involved
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        model(x)
    return model.eval(), cfg


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, shared_data):
    """`calibrated_w18` saved with save_model (config included)."""
    model, cfg = calibrated_w18(shared_data / "demo" / "crowd_01.jpg")
    path = tmp_path_factory.mktemp("model") / "w18.safetensors"
    save_model(model, path, cfg)
    return path
