"""The torchrun split and merge of `predict`, in one process: `plan` and `merge_parts` against a one-process run."""

import json

import cv2
import numpy as np
import pytest
from test_predict_job_runner import FakeReader, StandIn

import grapepose.predict_job.runner as runner
from grapepose.errors import GrapeposeError
from grapepose.io import Source
from grapepose.predict_job.journal import OutputFolder, part_name
from grapepose.predict_job.runner import PredictOptions, run_predict
from grapepose.predict_job.shard import PartJournal, merge_parts, plan


def _images(n, group=0):
    return [Source("image", path=f"/x/{group}_{i}.jpg", group=group) for i in range(n)]


def test_plan_deals_images_round_robin_and_keeps_units_whole(shared_data):
    assert plan(_images(5), 2) == [[0, 2, 4], [1, 3]]
    assert plan(_images(2), 4) == [[0], [1], [], []]  # more ranks than inputs: some get none
    assert plan([], 2) == [[], []]
    sequences = _images(3, group=0) + _images(2, group=1)
    assert plan(sequences, 2) == [[0, 2, 4], [1, 3]]
    assert plan(sequences, 2, track=True) == [[0, 1, 2], [3, 4]]  # a SOURCE's sequence stays on one rank
    video = Source("video", path=shared_data / "demo" / "video.mp4")  # 5 frames: weighs 5 images
    assert plan([video, *_images(4)], 2) == [[0], [1, 2, 3, 4]]
    assert plan([video, *_images(4)], 2, max_frames=1) == [[0, 2, 4], [1, 3]]
    with pytest.raises(GrapeposeError) as e:
        plan([*_images(1), Source("webcam", index=0)], 2)
    assert str(e.value) == "webcam 0: a webcam cannot be split over torchrun ranks; run it without torchrun"


@pytest.mark.parametrize("world", [2, 3])
def test_merged_parts_are_the_one_process_results_file(tmp_path, monkeypatch, world):
    monkeypatch.setattr(runner, "VideoReader", FakeReader)  # 4 frames, each takes an image id
    monkeypatch.setattr(FakeReader, "interrupt_after", None)
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ["a.png", "007.png", "clip.mp4", "b.png", "tiny.png", "003.png", "c.png"]
    for i, name in enumerate(names):
        size = 4 if name == "tiny.png" else 16  # tiny.png fails: it takes no id
        if name.endswith(".png"):
            cv2.imwrite(str(inputs / name), np.full((size, size, 3), 40 + 10 * i, np.uint8))
    (inputs / "clip.mp4").write_bytes(b"")
    sources = [Source("video" if n.endswith(".mp4") else "image", path=inputs / n) for n in names]

    one = tmp_path / "one"
    with OutputFolder(one) as folder:
        single = run_predict(StandIn(), sources, PredictOptions(one, draw=False), journal=folder)
        folder.finish()
    shares = plan(sources, world)
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for rank, share in enumerate(shares):
        with PartJournal(sharded, rank) as part:
            s = run_predict(StandIn(), sources, PredictOptions(sharded, draw=False), journal=part, part=share)
        assert s.frames == sum(4 if names[i] == "clip.mp4" else names[i] != "tiny.png" for i in share)
        assert {r["file_name"] for r in s.results if "file_name" in r} <= {names[i] for i in share}
    assert sorted(p.name for p in sharded.iterdir()) == sorted(part_name(r) for r in range(world))
    merged, frames = merge_parts(sharded, sources, world)
    assert json.dumps(merged) == (one / "results.json").read_text()  # the same file, byte for byte
    ids = [r["image_id"] for r in merged]
    # numbered images keep their number; the other images and the frames take the free ones in input order
    assert ids == [0, 7, 1, 2, 4, 5, 6, 3, 8] and single.frames == frames == len(merged) == 9


def test_a_killed_job_leaves_parts_that_a_new_run_refuses(tmp_path):
    (tmp_path / part_name(1)).write_text("")
    with pytest.raises(GrapeposeError) as e:
        OutputFolder(tmp_path).open()
    assert str(e.value) == (
        f"{tmp_path / part_name(1)}: unfinished results of an earlier run that was stopped are there; pass "
        "--resume to continue it, --overwrite to replace them, or choose another --out"
    )
    with OutputFolder(tmp_path, overwrite=True) as folder:  # --overwrite: the stale part never gets merged
        assert not (tmp_path / part_name(1)).exists()
        folder.finish()
