"""The predict loop with a stand-in estimator: fast, and able to fail or interrupt on demand."""

import cv2
import numpy as np
import pytest

import grapepose.predict_job.runner as runner
from torch import nn

from grapepose.config import TestConfig as Cfg
from grapepose.errors import DataError
from grapepose.inference import Poses, Predictor
from grapepose.io import Source
from grapepose.predict_job.runner import PredictOptions, run_predict
from grapepose.keypoints import COCO_KEYPOINTS


class StandIn(Predictor):
    """A real `Predictor` whose 'network' finds one person per frame at x = the frame's mean brightness."""

    def __init__(self) -> None:
        super().__init__(nn.Identity(), Cfg(flip=False), device="cpu", spec=COCO_KEYPOINTS, batch_size=3)
        self.batches: list[int] = []

    def _predict_loaded(self, loaded):
        self.batches.append(len(loaded))
        return super()._predict_loaded(loaded)

    def _predict_group(self, images, transforms, size):
        out = []
        for f in images:
            k = np.zeros((1, 17, 3), np.float32)
            k[0, :, 0] = float(f.mean())
            k[0, :, 1] = np.arange(17) * 2
            k[0, :, 2] = 0.9
            out.append(Poses(k, np.array([0.9], np.float32), self.spec))
        return out

    def _load(self, item, index, reader):
        loaded = super()._load(item, index, reader)
        if loaded[0].shape[0] < 8:
            raise DataError(f"{item}: too small")
        return loaded


class FakeReader:
    """A video/webcam of 4 frames; `interrupt_after` raises KeyboardInterrupt (Ctrl-C) mid-stream."""

    interrupt_after: int | None = None

    def __init__(self, source) -> None:
        self.fps, self.frame_count = 10.0, (None if isinstance(source, int) else 4)

    def __iter__(self):
        for i in range(4):
            if self.interrupt_after is not None and i == self.interrupt_after:
                raise KeyboardInterrupt
            yield np.full((32, 48, 3), 100 + i, np.uint8)

    def close(self) -> None:
        pass


@pytest.fixture
def fake_video(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "VideoReader", FakeReader)
    monkeypatch.setattr(FakeReader, "interrupt_after", None)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"")
    return path


def _frames(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_batches_cross_images_and_keep_video_order(tmp_path, fake_video):
    images = []
    for i in range(4):
        images.append(tmp_path / f"{i:03d}.png")
        cv2.imwrite(str(images[-1]), np.full((16, 16, 3), 50 + i, np.uint8))
    sources = [Source("image", path=p) for p in images] + [Source("video", path=fake_video, group=1)]
    est = StandIn()
    summary = run_predict(est, sources, PredictOptions(tmp_path / "out", track=True))
    assert summary.failures == [] and summary.frames == 8
    assert max(est.batches) == 3  # images batched together, up to the batch size
    ids = [r["image_id"] for r in summary.results]
    assert ids[:4] == [0, 1, 2, 3]  # numbered file names keep their numbers
    assert len(set(ids)) == 8  # video frames get fresh ids
    video = [r for r in summary.results if "video" in r]
    assert [r["frame"] for r in video] == [0, 1, 2, 3]
    assert [r["keypoints"][0] for r in video] == [100, 101, 102, 103]
    assert {r["track_id"] for r in video} == {0}
    assert _frames(tmp_path / "out" / "clip_pose.mp4") == 4


def test_unusable_frame_fails_only_its_input(tmp_path):
    for name, size in (("a.png", 16), ("tiny.png", 4), ("b.png", 16)):
        cv2.imwrite(str(tmp_path / name), np.zeros((size, size, 3), np.uint8))
    sources = [Source("image", path=tmp_path / n) for n in ("a.png", "tiny.png", "b.png")]
    reported = []
    summary = run_predict(StandIn(), sources, PredictOptions(tmp_path / "out"), report=reported.append)
    assert reported == summary.failures == [f"{tmp_path / 'tiny.png'}: too small"]
    assert [r["file_name"] for r in summary.results] == ["a.png", "b.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_pose.png", "b_pose.png"]


def test_ctrl_c_keeps_a_webcam_recording(tmp_path, fake_video):
    FakeReader.interrupt_after = 3
    summary = run_predict(StandIn(), [Source("webcam", index=0)], PredictOptions(tmp_path / "out"))
    assert summary.interrupted and summary.failures == []
    assert [r["frame"] for r in summary.results] == [0, 1, 2]
    assert _frames(tmp_path / "out" / "webcam0_pose.mp4") == 3


def test_ctrl_c_keeps_the_finished_frames_of_a_video(tmp_path, fake_video):
    FakeReader.interrupt_after = 3
    summary = run_predict(StandIn(), [Source("video", path=fake_video)], PredictOptions(tmp_path / "out"))
    assert summary.interrupted and [r["frame"] for r in summary.results] == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_pose.mp4"]  # no temporary file
    assert _frames(tmp_path / "out" / "clip_pose.mp4") == 3  # a playable partial video
