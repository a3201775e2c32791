"""Turning command-line SOURCE arguments into a list of inputs.

A SOURCE is an image file, a video file, a folder (its images and videos, sorted, not recursive),
a glob pattern (`frames/*.jpg`, `**` allowed) or a webcam index (`0`). Each argument forms one
*group*: the inputs of a group are one sequence for tracking.
"""

from __future__ import annotations

import glob
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from grapepose.io.files import IMAGE_SUFFIXES

__all__ = ["Source", "expand_sources", "prefetch", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

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


def _kind_of(path: Path) -> Literal["image", "video"] | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _from_files(files: Iterable[Path], group: int) -> list[Source]:
    out = []
    for f in sorted(files):
        kind = _kind_of(f)
        if kind is not None and f.is_file():
            out.append(Source(kind, path=f, group=group))
    return out


def expand_sources(specs: Sequence[str]) -> tuple[list[Source], list[str]]:
    """Expand SOURCE arguments into inputs.

    Returns:
        The inputs in argument order, and one error line for each argument that yields none.
    """
    sources: list[Source] = []
    errors: list[str] = []
    for group, spec in enumerate(specs):
        path = Path(spec).expanduser()
        if path.is_dir():
            found = _from_files(path.iterdir(), group)
            if not found:
                errors.append(f"{spec}: folder contains no images or videos")
        elif path.is_file():
            # an explicitly named file of unknown type is tried as an image: read_image says if it is not
            found = [Source(_kind_of(path) or "image", path=path, group=group)]
        elif spec.strip().isdigit():
            found = [Source("webcam", index=int(spec), group=group)]
        elif glob.has_magic(spec):
            found = _from_files((Path(p) for p in glob.glob(str(path), recursive=True)), group)
            if not found:
                errors.append(f"{spec}: pattern matches no images or videos")
        else:
            found = []
            errors.append(f"{spec}: no such file or folder")
        sources.extend(found)
    return sources, errors


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
