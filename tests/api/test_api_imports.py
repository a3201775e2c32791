"""Imports match use: predicting with the API or the CLI loads no training or evaluation code."""

import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
FORBIDDEN = ("grapepose.engine", "grapepose.data", "grapepose.evaluation", "grapepose.synth", "faster_coco_eval")

CHECK = """
import json, sys
{body}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("grapepose", "faster_coco_eval"))))
"""


def _loaded(body: str, tmp_path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(body=body)], capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _forbidden(mods: list[str]) -> list[str]:
    return [m for m in mods if m == "grapepose.data.targets" or any(m.startswith(f) for f in FORBIDDEN)]


def test_api_predict_imports_no_training_or_evaluation(tmp_path, tiny_checkpoint, shared_data):
    body = f"""
import grapepose
est = grapepose.PoseEstimator.from_pretrained({str(tiny_checkpoint)!r}, device="cpu",
                                              overrides=["test.base_size=128", "test.flip=false"])
people = est({str(shared_data / "demo" / "crowd_03.jpg")!r})
people.draw({str(shared_data / "demo" / "crowd_03.jpg")!r})
assert len(people.to_coco(1)) == len(people)
"""
    mods = _loaded(body, tmp_path)
    assert "grapepose.inference.predictor" in mods and "grapepose.io.files" in mods
    assert _forbidden(mods) == []


def test_cli_predict_imports_no_training_or_evaluation(tmp_path, tiny_checkpoint, shared_data):
    body = f"""
from grapepose.cli.main import main
code = main(["predict", {str(shared_data / "demo" / "crowd_03.jpg")!r}, "test.base_size=128", "--no-flip",
             "--weights", {str(tiny_checkpoint)!r}, "--out", "out", "--device", "cpu"])
assert code == 0, code
"""
    mods = _loaded(body, tmp_path)
    assert "grapepose.predict_job.runner" in mods
    assert _forbidden(mods) == []
