"""`grapepose evaluate` on results files and on a (random, tiny) model."""

from __future__ import annotations

import json

import pytest
import torch

from grapepose.cli.main import main


def _gt_results(ann_path, tmp_path):
    ann = json.loads(ann_path.read_text())
    res = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
           for a in ann["annotations"] if a.get("num_keypoints", 0) > 0]  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps(res))
    return path


def test_scores_a_results_file(shared_data, tmp_path, capsys):
    ann = shared_data / "crowdpose" / "test_crowdpose.json"
    assert main(["evaluate", "--results", str(_gt_results(ann, tmp_path)), "--ann", str(ann)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| Model | AP | AP50 | AP75 | AR | AR50 | AR75 | APeasy | APmed | APhard |")
    assert lines[2].startswith("| results | 1.000 | 1.000")


def test_argument_errors(shared_data, tmp_path, capsys):
    ann = str(shared_data / "coco" / "test_coco.json")
    assert main(["evaluate", "--ann", ann]) == 2
    assert "exactly one of --weights" in capsys.readouterr().err
    assert main(["evaluate", "--weights", "w.safetensors", "--ann", ann]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert main(["evaluate", "--results", str(tmp_path / "none.json"), "--ann", ann]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.json: results file not found" in err


def test_runs_a_model_and_skips_unreadable_images(shared_data, tmp_path, capsys):
    from grapepose.models import build_model, save_model

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_model(build_model("crowdpose_w18"), weights)
    ann = json.loads((shared_data / "crowdpose" / "test_crowdpose.json").read_text())
    ann["images"].append({"file_name": "missing.jpg", "id": 1, "height": 10, "width": 10, "crowdIndex": 0.5})
    ann_path = tmp_path / "ann.json"
    ann_path.write_text(json.dumps(ann))
    out = tmp_path / "out" / "results.json"
    code = main(["evaluate", "--weights", str(weights), "--data", str(shared_data / "crowdpose"), "--ann",
                 str(ann_path), "--base-size", "64", "--device", "cpu", "--batch-size", "2", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    assert "1 of 3 images could not be used" in captured.err
    assert isinstance(json.loads(out.read_text()), list)
    assert captured.out.splitlines()[2].startswith("| tiny |")



def test_unreadable_images_are_not_scored(shared_data, tmp_path, capsys, monkeypatch):
    """A person in an image that could not be read is not a miss of the model: only the images predicted
    are scored, as with `--limit` (before: the missing image's people counted as missed)."""
    import grapepose.evaluation as evaluation
    from grapepose.models import build_model, save_model

    torch.manual_seed(0)
    weights = tmp_path / "tiny.safetensors"
    save_model(build_model("crowdpose_w18"), weights)
    ann = json.loads((shared_data / "crowdpose" / "test_crowdpose.json").read_text())
    readable = sorted(im["id"] for im in ann["images"])
    person = dict(ann["annotations"][0], id=10**9, image_id=1)
    ann["images"].append({"file_name": "missing.jpg", "id": 1, "height": 10, "width": 10, "crowdIndex": 0.5})
    ann["annotations"].append(person)
    ann_path = tmp_path / "ann.json"
    ann_path.write_text(json.dumps(ann))
    scored = []
    real = evaluation.evaluate_results

    def spy(*args, image_ids=None, **kwargs):
        scored.append(image_ids)
        return real(*args, image_ids=image_ids, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_results", spy)
    code = main(["evaluate", "--weights", str(weights), "--data", str(shared_data / "crowdpose"), "--ann",
                 str(ann_path), "--base-size", "64", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert f"1 of {len(readable) + 1} images could not be used (see warnings above); the scores are over the " \
        f"other {len(readable)}" in capsys.readouterr().err
    assert [sorted(ids) for ids in scored] == [readable]

def _test_config(*argv):
    """The test config that `grapepose <argv>` runs with (on a model with the default config)."""
    from grapepose.cli.main import _build_parser
    from grapepose.cli.options import flag_overrides
    from grapepose.config import Config, apply_overrides

    return apply_overrides(Config(), flag_overrides(_build_parser(argv[0]).parse_args(argv))).test


@pytest.mark.parametrize("mode", ["fast", "reference"])
def test_modes_set_the_test_config(mode):
    cfg = _test_config("evaluate", "--ann", "a", "--mode", mode)
    if mode == "fast":
        assert cfg.flip is False and cfg.scales == (1.0,)
    else:
        assert cfg.flip and cfg.scales == (0.5, 1.0, 2.0) and cfg.dtype == "fp16"
    flags = ["--no-flip", "--scales", "1", "2", "--base-size", "256", "--precision", "fp32"]
    cfg = _test_config("evaluate", "--ann", "a", "--mode", mode, *flags)
    assert (cfg.flip, cfg.scales, cfg.base_size, cfg.dtype) == (False, (1.0, 2.0), 256, "fp32")


def test_predict_and_evaluate_read_the_test_flags_alike():
    flags = ["--no-flip", "--scales", "0.7", "1.3", "--base-size", "320", "--set", "test.nms_distance=0.1"]
    cfg = _test_config("predict", "a.jpg", *flags)
    assert cfg == _test_config("evaluate", "--ann", "a", *flags)
    assert (cfg.flip, cfg.scales, cfg.base_size, cfg.nms_distance) == (False, (0.7, 1.3), 320, 0.1)


def test_weights_may_be_a_preset_name(shared_data, capsys):
    """`--weights` takes what `predict` takes (`PoseEstimator.from_pretrained`): here an untrained preset."""
    data = shared_data / "crowdpose"
    code = main(["evaluate", "--weights", "crowdpose_w18", "--data", str(data), "--ann",
                 str(data / "test_crowdpose.json"), "--base-size", "64", "--no-flip", "--device", "cpu", "--limit", "1",
                 "--read-threads", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.splitlines()[2].startswith("| crowdpose_w18 |")


def test_torchrun_shards_and_gathers_like_one_process(shared_data, tiny_checkpoint, tmp_path):
    import os
    import subprocess
    import sys

    data, ann = shared_data / "crowdpose", shared_data / "crowdpose" / "test_crowdpose.json"  # K=14 like the model
    # one image per forward pass and one thread on both sides: compared float for float
    args = ["evaluate", "--weights", str(tiny_checkpoint), "--data", str(data), "--ann", str(ann),
            "--base-size", "64", "--device", "cpu", "--no-flip", "--batch-size", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.json"
    subprocess.run([sys.executable, "-m", "grapepose", *args, "--out", str(single)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    sharded = tmp_path / "sharded.json"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "grapepose", *args, "--out", str(sharded)], env=env, capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    key = lambda r: (r["image_id"], r["score"])  # noqa: E731
    assert json.loads(single.read_text()), "the tiny model should find someone"
    assert sorted(json.loads(sharded.read_text()), key=key) == sorted(json.loads(single.read_text()), key=key)
    assert run.stdout.count("| Model |") == 1  # only rank 0 prints the table
