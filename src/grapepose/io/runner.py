"""The predict loop: frames from many inputs, batched through an estimator, written as they finish.

Inputs are decoded in a background thread; frames are batched across images (a video's frames stay
in order); each finished input writes its drawn image or video atomically. A bad input costs only
itself: its error is reported as one line, nothing of it is written, and the rest go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from grapepose.data.image_io import read_image
from grapepose.errors import GrapeposeError
from grapepose.io.sources import Source, prefetch
from grapepose.io.video import VideoReader, VideoWriter, write_image
from grapepose.tracking import PoseTracker

__all__ = ["PredictOptions", "PredictSummary", "run_predict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOptions:
    """What `run_predict` writes.

    Attributes:
        out_dir: folder for drawn images/videos (`<stem>_pose.<ext>`, `<stem>_black.<ext>`).
        draw: write drawn images/videos.
        black: also write the skeletons on black.
        track: give people stable `track_id`s within each video / each SOURCE's image sequence.
        score_threshold: people with a lower score are dropped (0: nobody is).
        max_frames: stop each video/webcam after this many frames (0: no limit).
    """

    out_dir: Path
    draw: bool = True
    black: bool = False
    track: bool = False
    score_threshold: float = 0.0
    max_frames: int = 0


@dataclass
class PredictSummary:
    """Outcome of a run: COCO results of the inputs that succeeded and one line per failure."""

    results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False


class _Unit:
    """Output state of one input: its results and (for videos) its open writers."""

    def __init__(self, src: Source, stem: str, opts: PredictOptions, fps: float = 30.0) -> None:
        self.src, self.stem, self.opts, self.fps = src, stem, opts, fps
        self.results: list[dict[str, Any]] = []
        self.writers: list[VideoWriter] = []
        self.paths: list[Path] = []

    def _names(self, suffix: str) -> list[Path]:
        kinds = ["pose", "black"] if self.opts.black else ["pose"]
        return [self.opts.out_dir / f"{self.stem}_{k}{suffix}" for k in kinds]

    def add(self, frame: np.ndarray, poses: Any) -> None:
        if not self.opts.draw:
            return
        drawn = [poses.draw(frame)] + ([poses.draw(frame, black=True)] if self.opts.black else [])
        if self.src.kind == "image":
            suffix = self.src.path.suffix.lower() if self.src.path is not None else ".jpg"
            for path, img in zip(self._names(suffix), drawn):
                write_image(path, img)
                self.paths.append(path)
            return
        if not self.writers:
            size = (frame.shape[1], frame.shape[0])
            self.writers = [VideoWriter(p, self.fps, size) for p in self._names(".mp4")]
        for writer, img in zip(self.writers, drawn):
            writer.write(img)

    def close(self, discard: bool = False) -> list[Path]:
        for w in self.writers:
            w.close(discard=discard)
        if discard:  # e.g. the drawn image was written but its black twin failed
            for p in self.paths:
                p.unlink(missing_ok=True)
            return []
        return self.paths + [w.path for w in self.writers]


def _output_stems(sources: list[Source]) -> dict[Source, str]:
    """A distinct output stem per input (`x`, `x_2`, ... when names repeat across folders)."""
    seen: dict[str, int] = {}
    out = {}
    for s in sources:
        n = seen.get(s.stem.lower(), 0) + 1
        seen[s.stem.lower()] = n
        out[s] = s.stem if n == 1 else f"{s.stem}_{n}"
    return out


class _ImageIds:
    """COCO image ids: an image named by a number (COCO/CrowdPose style) keeps it; others count up."""

    def __init__(self, sources: list[Source]) -> None:
        self.reserved = {int(s.stem) for s in sources if s.kind == "image" and s.stem.isdigit()}
        self.next = 0

    def __call__(self, src: Source) -> int:
        if src.kind == "image" and src.stem.isdigit():
            return int(src.stem)
        while self.next in self.reserved:
            self.next += 1
        self.next += 1
        return self.next - 1


def _events(sources: list[Source], max_frames: int) -> Iterator[tuple[Any, ...]]:
    """("start", src, fps, n) / ("frame", src, index, rgb) / ("end", src) / ("fail", src, message)."""
    for src in sources:
        if src.kind == "image":
            try:
                assert src.path is not None
                image = read_image(src.path)
            except GrapeposeError as e:
                yield ("fail", src, str(e))
                continue
            yield ("frame", src, 0, image)
            continue
        try:
            reader = VideoReader(src.index if src.kind == "webcam" else src.path)  # type: ignore[arg-type]
        except GrapeposeError as e:
            yield ("fail", src, str(e))
            continue
        try:
            n = reader.frame_count
            yield ("start", src, reader.fps, min(n, max_frames) if n and max_frames else n)
            for i, frame in enumerate(reader):
                if max_frames and i >= max_frames:
                    break
                yield ("frame", src, i, frame)
        except GrapeposeError as e:
            yield ("fail", src, str(e))
            continue
        finally:
            reader.close()
        yield ("end", src)


def _predict(estimator: Any, frames: list[np.ndarray]) -> list[Any]:
    """`estimator.predict(frames)`; if one frame is unusable, the others' poses and that frame's error."""
    try:
        return list(estimator.predict(frames))
    except GrapeposeError as e:
        if len(frames) == 1:
            return [e]
    out: list[Any] = []
    for frame in frames:
        try:
            out.extend(estimator.predict([frame]))
        except GrapeposeError as e:
            out.append(e)
    return out


def run_predict(
    estimator: Any, sources: list[Source], opts: PredictOptions, report: Callable[[str], None] = log.error
) -> PredictSummary:
    """Predict poses for every input and write results as inputs finish.

    Args:
        estimator: a `PoseEstimator` (`predict(list of RGB arrays) -> list[Poses]`, `batch_size`, `spec`).
        sources: inputs from `expand_sources`.
        opts: what to write.
        report: called with one line per failed input, as it happens.

    Returns:
        The summary; `results` holds the COCO entries of the inputs that succeeded, in input order.
    """
    summary = PredictSummary()
    stems = _output_stems(sources)
    image_id = _ImageIds(sources)
    units: dict[Source, _Unit] = {}
    done: dict[Source, list[dict[str, Any]]] = {}
    trackers: dict[Any, PoseTracker] = {}
    pending: list[tuple[Source, int, np.ndarray]] = []
    bs = max(1, int(estimator.batch_size))

    def fail(src: Source, message: str) -> None:
        unit = units.pop(src, None)
        if unit is not None:
            unit.close(discard=True)
        summary.failures.append(message)
        report(message)

    def finish(src: Source) -> None:
        unit = units.pop(src)
        try:
            summary.written.extend(unit.close())
        except (GrapeposeError, OSError) as e:
            fail(src, str(e))
            return
        done[src] = unit.results

    def flush() -> None:
        if not pending:
            return
        batch = list(pending)
        pending.clear()
        for (src, index, frame), poses in zip(batch, _predict(estimator, [f for _, _, f in batch])):
            if src not in units:  # its input failed after these frames were queued
                continue
            if isinstance(poses, GrapeposeError):
                fail(src, f"{src}: {poses}")
                continue
            if opts.score_threshold > 0:  # 0 keeps everyone, even the (meaningless) negative scores
                poses = poses[poses.scores >= opts.score_threshold]
            if opts.track:
                key = src.group if src.kind == "image" else src
                tracker = trackers.setdefault(key, PoseTracker(estimator.spec.sigmas))
                poses.track_ids = tracker.update(poses.keypoints)
            extra: dict[str, Any] = {"file_name": src.name}
            if src.kind != "image":
                extra = {"video": src.name, "frame": index}
            units[src].results.extend(poses.to_coco(image_id(src), **extra))
            try:
                units[src].add(frame, poses)
            except (GrapeposeError, OSError) as e:
                fail(src, f"{src}: cannot write output ({getattr(e, 'strerror', None) or e})")
                continue
            bar.update(1)
            summary.frames += 1
            if src.kind == "image":
                finish(src)

    total = sum(s.kind == "image" for s in sources)
    start = time.perf_counter()
    bar = tqdm(total=total, unit="img", desc="predict", dynamic_ncols=True, disable=None, leave=False)
    events = prefetch(_events(sources, opts.max_frames), depth=2 * bs)
    current: Source | None = None
    try:
        for event in events:
            kind, src = event[0], event[1]
            current = src
            if kind == "fail":
                pending[:] = [p for p in pending if p[0] != src]
                fail(src, event[2])
            elif kind == "start":
                units[src] = _Unit(src, stems[src], opts, fps=event[2])
                if event[3]:
                    bar.total = (bar.total or 0) + event[3]
                    bar.refresh()
            elif kind == "frame":
                if src not in units:
                    units[src] = _Unit(src, stems[src], opts)
                pending.append((src, event[2], event[3]))
                if len(pending) >= bs:
                    flush()
            elif kind == "end":
                flush()
                if src in units:
                    finish(src)
        flush()
    except KeyboardInterrupt:
        # Ctrl-C is how a webcam run ends: keep what it recorded; anything else stopped midway is dropped.
        summary.interrupted = True
        events.close()
        if current is not None and current.kind == "webcam" and current in units:
            pending[:] = [p for p in pending if p[0] == current]
            flush()
            if current in units:
                finish(current)
        for src in list(units):
            units.pop(src).close(discard=True)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    summary.results = [r for s in sources if s in done for r in done[s]]
    return summary
