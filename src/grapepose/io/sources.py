"""Turning command-line SOURCE arguments into a list of inputs.

A SOURCE is an image file, a video file, a folder (its images and videos, sorted, not recursive),
a glob pattern (`frames/*.jpg`, `**` allowed) or a webcam index (`0`). Each argument forms one
*group*: the inputs of a group are one sequence for tracking.
"""

from __future__ import annotations

import glob
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from grapepose.io.drawings import is_drawing
from grapepose.io.files import IMAGE_SUFFIXES, why_not_a_file

__all__ = ["Source", "expand_sources", "plain_number", "prefetch", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

T = TypeVar("T")


@dataclass(frozen=True)
class Source:
    """One input: an image file, a video file or a webcam.

    Attributes:
        kind: "image", "video" or "webcam".
        path: the file (None for a webcam).
        index: the webcam index (None for files).
        group: position of the SOURCE argument this input came from.
    """

    kind: Literal["image", "video", "webcam"]
    path: Path | None = None
    index: int | None = None
    group: int = 0

    @property
    def name(self) -> str:
        """File name, or `webcam<i>`."""
        return self.path.name if self.path is not None else f"webcam{self.index}"

    @property
    def stem(self) -> str:
        return self.path.stem if self.path is not None else f"webcam{self.index}"

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else f"webcam {self.index}"


def plain_number(text: str) -> int | None:
    """`text` as a number when it is 1 to 18 ASCII digits (a webcam index, a COCO-style numbered file name).

    `str.isdigit` also accepts '²' and '٣', which `int` refuses or reads as another number; 18 digits
    keep an image id within the int64 of COCO tools.
    """
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _kind_of(path: Path) -> Literal["image", "video"] | None:
    suffix = path.suffix.lower()
    if suffix == ".gif":  # an animated GIF is a clip: every frame, drawn to <stem>_pose.mp4
        import cv2

        cap = cv2.VideoCapture(str(path))
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0
        cap.release()
        return "video" if frames > 1 else "image"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _from_files(files: Iterable[Path], group: int, skip_outputs_in: Path | None) -> list[Source]:
    out, earlier = [], []
    for f in sorted(files):
        if f.suffix.lower() not in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES, ".gif"):
            continue
        if not f.is_file():
            if not f.is_dir() and os.path.lexists(f):  # a broken or looping link, a pipe, a device
                log.warning("%s: skipped: %s", f, why_not_a_file(f))
            continue
        if skip_outputs_in is not None and f.parent.resolve() == skip_outputs_in and is_drawing(f):
            earlier.append(f)
            continue
        kind = _kind_of(f)
        if kind is not None:
            out.append(Source(kind, path=f, group=group))
    if earlier:
        log.warning("%s: skipped %d drawings of an earlier run (%s%s): --out is this input folder",
                    earlier[0].parent, len(earlier), earlier[0].name, ", ..." if len(earlier) > 1 else "")  # fmt: skip
    return out


def expand_sources(specs: Sequence[str], skip_outputs_in: str | os.PathLike[str] | None = None) -> tuple[
    list[Source], list[str]
]:
    """Expand SOURCE arguments into inputs.

    Args:
        specs: the SOURCE arguments.
        skip_outputs_in: the `--out` folder: drawings of earlier runs found there when a folder or
            glob expands into it (`grapepose.io.drawings.is_drawing`) are not inputs (skipped with a
            warning); a photo named like a drawing (`a_pose.jpg`) is an input.

    Returns:
        The inputs in argument order, and one error line for each argument that yields none.
    """
    skip = Path(skip_outputs_in).resolve() if skip_outputs_in is not None else None
    sources: list[Source] = []
    errors: list[str] = []
    for group, spec in enumerate(specs):
        try:
            found, error = _expand(spec, group, skip)
        except OSError as e:  # a name too long, a folder that cannot be listed: this SOURCE only
            found, error = [], f"{spec}: {e.strerror or e}"
        sources.extend(found)
        if error:
            errors.append(error)
    return sources, errors


def _expand(spec: str, group: int, skip: Path | None) -> tuple[list[Source], str | None]:
    """The inputs of one SOURCE argument, or the error line saying why it has none."""
    path = Path(spec).expanduser()
    if path.is_dir():
        found = _from_files(path.iterdir(), group, skip)
        return found, None if found else f"{spec}: folder contains no images or videos"
    if path.is_file():
        # an explicitly named file of unknown type is tried as an image: read_image says if it is not
        return [Source(_kind_of(path) or "image", path=path, group=group)], None
    if os.path.lexists(path):  # a broken or looping link, a pipe, a device
        return [], f"{spec}: {why_not_a_file(path)}"
    if (index := plain_number(spec.strip())) is not None:
        return [Source("webcam", index=index, group=group)], None
    if glob.has_magic(spec):
        found = _from_files((Path(p) for p in glob.glob(str(path), recursive=True)), group, skip)
        return found, None if found else f"{spec}: pattern matches no images or videos"
    return [], f"{spec}: no such file or folder"


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """Iterate `items` in a background thread, `depth` items ahead (decoding overlaps compute).

    Exceptions raised by `items` are re-raised here; stopping early (break, close) stops the thread
    at its next item.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    thread = threading.Thread(target=work, name="grapepose-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            tag, value = q.get()
            if tag == "end":
                return
            if tag == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
