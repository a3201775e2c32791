"""Shared by the annotation/results/config/synth fault tests: run a command, get its one error line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from grapepose.cli.main import main


def fails(argv: list[str], capsys: Any) -> tuple[int, str]:
    """(exit code, stderr stripped) of `grapepose ARGV`; stdout is discarded."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def copy_crowdpose(shared: Path, dst: Path) -> tuple[Path, dict[str, Any]]:
    """The CrowdPose fixture (2 images, 5 people) copied to `dst`; returns (image folder, parsed JSON)."""
    src = shared / "crowdpose"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("103319.jpg", "106848.jpg"):
        shutil.copy(src / name, dst / name)
    return dst, json.loads((src / "test_crowdpose.json").read_text())


def gt_as_results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]  # fmt: skip


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))  # NaN is written as the bare token NaN, which json.load reads back
    return path
