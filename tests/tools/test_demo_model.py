"""The bundled demo model (issue 10 item 2): skipped until `./dev gpu-run` has produced it and it is committed."""

from __future__ import annotations

import pytest

from grapepose.api import DEMO_WEIGHTS

pytestmark = pytest.mark.skipif(not DEMO_WEIGHTS.is_file(), reason="no trained demo model bundled yet")


def test_demo_model_loads_by_name_with_its_metadata():
    from grapepose.api import PoseEstimator
    from grapepose.keypoints import keypoint_spec

    est = PoseEstimator.from_pretrained("demo", device="cpu")
    assert est.config.data.keypoint_names == keypoint_spec("coco").names
    assert est.spec.flip_index == keypoint_spec("coco").flip_index
    assert DEMO_WEIGHTS.stat().st_size <= 16 * 2**20


def test_demo_model_finds_people_in_fresh_sparse_scenes(tmp_path):
    from grapepose.api import PoseEstimator
    from grapepose.evaluation import evaluate_results
    from grapepose.synth import generate_dataset

    generate_dataset(tmp_path, "sparse", 8, size=384, seed=31337, keypoints="coco", progress=False)
    est = PoseEstimator.from_pretrained("demo", device="cpu")
    results = []
    for i in range(8):
        people = est(str(tmp_path / "images" / f"{i:06d}.jpg"))
        results += people.to_coco(i)
    metrics = evaluate_results(results, tmp_path / "annotations.json", kind="coco")
    assert metrics["AP"] >= 0.5, metrics
