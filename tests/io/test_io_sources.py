import shutil
import time

import cv2
import numpy as np
import pytest

from grapepose.errors import DataError, GrapeposeError
from grapepose.io import VideoReader, VideoWriter, expand_sources, prefetch, write_image


def test_expand_folder_glob_file_webcam_and_missing(tmp_path, shared_data):
    demo = shared_data / "demo"
    (tmp_path / "notes.txt").write_text("x")
    shutil.copy(demo / "crowd_01.jpg", tmp_path / "b.jpg")
    shutil.copy(demo / "crowd_02.jpg", tmp_path / "a.PNG")
    sources, errors = expand_sources(
        [str(demo), str(tmp_path / "*"), str(demo / "video.mp4"), "0", str(tmp_path / "nope.jpg"),
         str(tmp_path / "*.gif")]
    )
    kinds = [(s.kind, s.name, s.group) for s in sources]
    assert kinds == [
        ("image", "crowd_01.jpg", 0), ("image", "crowd_02.jpg", 0), ("image", "crowd_03.jpg", 0),
        ("video", "video.mp4", 0),
        ("image", "a.PNG", 1), ("image", "b.jpg", 1),
        ("video", "video.mp4", 2),
        ("webcam", "webcam0", 3),
    ]  # fmt: skip
    assert len(errors) == 2
    assert "nope.jpg: no such file or folder" in errors[0]
    assert "*.gif: pattern matches no images or videos" in errors[1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert expand_sources([str(empty)])[1] == [f"{empty}: folder contains no images or videos"]


def test_read_demo_video(shared_data):
    with VideoReader(shared_data / "demo" / "video.mp4") as reader:
        assert reader.fps == pytest.approx(5.0)
        assert reader.frame_count == 5
        frames = list(reader)
    assert len(frames) == 5
    assert frames[0].shape == (540, 960, 3) and frames[0].dtype == np.uint8


def test_bad_videos_and_cameras(tmp_path, shared_data):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((shared_data / "demo" / "video.mp4").read_bytes()[:3000])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (broken, empty):
        with pytest.raises(DataError, match=str(path.name)):
            with VideoReader(path) as reader:
                list(reader)
    with pytest.raises(DataError, match="webcam 97: cannot open camera"):
        VideoReader(97)
    with pytest.raises(DataError, match="video file not found"):
        VideoReader(tmp_path / "missing.mp4")


def test_zero_frame_video_is_an_error(tmp_path):
    path = tmp_path / "zero.mp4"
    with VideoWriter(path, 10, (64, 48)):
        pass  # a valid container without a single frame
    with pytest.raises(DataError, match="zero.mp4: (cannot open video|no frames could be decoded)"):
        with VideoReader(path) as reader:
            list(reader)


def test_video_writer_round_trip_and_atomicity(tmp_path):
    path = tmp_path / "out.mp4"
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(7)]
    with VideoWriter(path, 10, (64, 48)) as writer:
        for f in frames:
            writer.write(f)
    with VideoReader(path) as reader:
        back = list(reader)
    assert len(back) == 7 and back[3].shape == (48, 64, 3)
    assert abs(int(back[3].mean()) - 60) <= 3
    # A failure inside the block leaves nothing behind, not even the temporary file.
    bad = tmp_path / "bad.mp4"
    with pytest.raises(GrapeposeError, match="frame of size"):
        with VideoWriter(bad, 10, (64, 48)) as writer:
            writer.write(frames[0])
            writer.write(np.zeros((10, 10, 3), np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_video_writer_notices_frames_the_encoder_did_not_store(tmp_path):
    """OpenCV reports no write error (a full disk, a quota): the file is read back on close."""

    class Lossy:  # the encoder in front of a full disk: frames after the third never reach the file
        def __init__(self, real):
            self.real, self.seen = real, 0

        def write(self, frame):
            self.seen += 1
            if self.seen <= 3:
                self.real.write(frame)

        def release(self):
            self.real.release()

    path = tmp_path / "full.mp4"
    writer = VideoWriter(path, 10, (64, 48))
    writer._writer = Lossy(writer._writer)
    for i in range(10):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    with pytest.raises(OSError) as info:
        writer.close()
    assert str(info.value) == f"[Errno 5] the video encoder stored 3 of 10 frames (disk full?): '{path}'"
    assert list(tmp_path.iterdir()) == []  # neither the truncated video nor its temporary file


def test_write_image(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 0] = 255
    write_image(tmp_path / "x.png", img)
    back = cv2.imread(str(tmp_path / "x.png"))
    assert back.shape == (20, 30, 3) and back[0, 0].tolist() == [0, 0, 255]  # BGR on disk


def test_prefetch_order_errors_and_early_stop():
    assert list(prefetch(range(10), depth=3)) == list(range(10))
    assert list(prefetch(range(4), depth=0)) == [0, 1, 2, 3]

    def failing():
        yield 1
        raise DataError("broken input")

    it = prefetch(failing(), depth=2)
    assert next(it) == 1
    with pytest.raises(DataError, match="broken input"):
        next(it)

    produced = []

    def slow():
        for i in range(1000):
            produced.append(i)
            yield i

    it = prefetch(slow(), depth=2)
    assert next(it) == 0
    it.close()  # the producer stops instead of decoding everything
    time.sleep(0.3)
    assert len(produced) < 10
