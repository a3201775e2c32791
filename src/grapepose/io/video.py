"""Video decoding and encoding with OpenCV.

Readers yield RGB frames; writers take RGB frames and encode mp4 (`mp4v`) into a temporary file
that replaces the target only when the video is complete, so a failed run leaves no half-written
video behind.
"""

from __future__ import annotations

import errno
import logging
import math
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from grapepose.errors import DataError, GrapeposeError
from grapepose.io.files import atomic_path, why_not_a_file, write_image

__all__ = ["VideoReader", "VideoWriter", "write_image"]  # write_image lives in grapepose.io.files

log = logging.getLogger(__name__)

# FFmpeg prints its own diagnostics for broken files; our error line says it once, clearly.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's backend warnings (failed camera probes) while opening a capture."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class VideoReader:
    """Frames of a video file or webcam as `[H, W, 3]` uint8 RGB.

    Args:
        source: a video file or a webcam index.

    Raises:
        DataError: the file or camera cannot be opened (on construction) or yields no frame
            (on iteration), naming it.
    """

    def __init__(self, source: str | os.PathLike[str] | int) -> None:
        self.label = f"webcam {source}" if isinstance(source, int) else str(source)
        if not isinstance(source, int) and not Path(source).is_file():
            raise DataError(f"{self.label}: {why_not_a_file(source, 'video file not found')}")
        with _quiet_opencv():
            self._cap = cv2.VideoCapture(source if isinstance(source, int) else str(source))
        if not self._cap.isOpened():
            self._cap.release()
            what = "cannot open camera (no such device?)" if isinstance(source, int) else "cannot open video"
            raise DataError(f"{self.label}: {what}")
        self.is_camera = isinstance(source, int)

    @property
    def fps(self) -> float:
        """Frames per second as reported by the container (30 when unknown)."""
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        return float(fps) if math.isfinite(fps) and 0 < fps < 1000 else 30.0

    @property
    def frame_count(self) -> int | None:
        """Number of frames if the container says (None for cameras and unknown lengths)."""
        n = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        return int(n) if not self.is_camera and math.isfinite(n) and n > 0 else None

    def __iter__(self) -> Iterator[np.ndarray]:
        count = 0
        while True:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                break
            count += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if count == 0:
            raise DataError(f"{self.label}: no frames could be decoded (empty or corrupt video)")
        expected = self.frame_count
        if expected is not None and count < expected - 1:  # containers may count one frame too many
            log.warning("%s: only %d of its %d frames could be decoded (truncated or corrupt file?)",
                        self.label, count, expected)  # fmt: skip

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frames_in(path: Path) -> int:
    """Frames a video file's container says it holds (0 when it cannot be opened)."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


class VideoWriter(AbstractContextManager["VideoWriter"]):
    """Encode RGB frames to an mp4 file atomically.

    The file appears at `path` only when the `with` block exits without an exception (or on
    `close()`); otherwise nothing is left behind.

    Args:
        path: target file (`.mp4`).
        fps: frames per second.
        size: `(width, height)` of every frame.
        trailer: bytes appended to the finished file (an MP4 box that readers skip:
            `grapepose.io.drawings.DRAWING_MARK`).
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int], trailer: bytes = b"") -> None:
        self.path = Path(path)
        self.trailer = trailer
        self.size = (int(size[0]), int(size[1]))
        self._cm = atomic_path(self.path)
        tmp = self._tmp = self._cm.__enter__()
        self._writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size)
        if not self._writer.isOpened():
            self._writer.release()
            self._cm.__exit__(GrapeposeError, None, None)
            raise GrapeposeError(f"{self.path}: cannot create video file (mp4v encoder unavailable?)")
        self._open = True
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one `[H, W, 3]` uint8 RGB frame of the writer's size."""
        if frame.shape[1::-1] != self.size:
            raise GrapeposeError(f"{self.path}: frame of size {frame.shape[1::-1]} in a {self.size} video")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self, discard: bool = False) -> None:
        """Finish the file (or delete it with `discard=True`)."""
        if not self._open:
            return
        self._open = False
        self._writer.release()
        if discard:
            self._cm.__exit__(GrapeposeError, GrapeposeError("discarded"), None)
            return
        # OpenCV's writer reports no write error (a full disk, a quota): read the file back
        written = _frames_in(self._tmp)
        if self.frames and written < self.frames - 1:  # containers may count one frame less
            self._cm.__exit__(OSError, None, None)
            raise OSError(errno.EIO, f"the video encoder stored {written} of {self.frames} frames (disk full?)",
                          str(self.path))  # fmt: skip
        if self.trailer:
            try:
                with open(self._tmp, "ab") as f:
                    f.write(self.trailer)
            except OSError as e:
                self._cm.__exit__(type(e), e, None)  # raises it about `path`; the temporary file goes
                raise
        self._cm.__exit__(None, None, None)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(discard=exc_type is not None)
