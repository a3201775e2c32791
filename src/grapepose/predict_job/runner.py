"""The predict loop: frames from many inputs through `Predictor.iter_predict`, written as they finish.

`iter_predict` is the one read-ahead (inputs are walked in a background thread, files decoded in
reader threads) and the one per-image error path: a bad input costs only itself, its error is
reported as one line, and the rest go on. Each finished image (or video frame) is drawn, appended to
the journal (when one is given) and kept; on Ctrl-C or SIGTERM the frames already finished stay:
the drawn images, the partial videos (closed, playable) and their results.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from grapepose.errors import GrapeposeError
from grapepose.io.drawings import DRAWING_MARK, drawing_paths, drawing_suffix, output_stems
from grapepose.io.files import read_image, write_image
from grapepose.io.sources import Source
from grapepose.io.video import VideoReader, VideoWriter
from grapepose.limits import MAX_MEGAPIXELS
from grapepose.predict_job.journal import ImageIds, OutputError, OutputFolder
from grapepose.predict_job.stop import StopRequest
from grapepose.tracking import PoseTracker

if TYPE_CHECKING:  # pragma: no cover
    from grapepose.inference import Poses, Predictor

__all__ = ["PredictOptions", "PredictSummary", "OutputError", "run_predict"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOptions:
    """What `run_predict` writes.

    Attributes:
        out_dir: folder for drawn images/videos (`<stem>_pose.<ext>`, `<stem>_black.<ext>`: `grapepose.io.drawings`).
        draw: write drawn images/videos.
        black: also write the skeletons on black.
        track: give people stable `track_id`s within each video / each SOURCE's image sequence.
        score_threshold: people with a lower score are dropped (0: nobody is).
        max_frames: stop each video/webcam after this many frames (0: no limit).
        progress: show a progress bar (when stderr is a terminal).
        min_joint_score: drawings leave out joints whose per-joint confidence is below this
            (None: `grapepose.visualize.MIN_JOINT_SCORE`; 0 draws every joint).
        max_megapixels: an image file declaring more pixels is a failed input (`read_image`).
    """

    out_dir: Path
    draw: bool = True
    black: bool = False
    track: bool = False
    score_threshold: float = 0.0
    max_frames: int = 0
    progress: bool = True
    min_joint_score: float | None = None
    max_megapixels: float = MAX_MEGAPIXELS


@dataclass(frozen=True)
class PredictSummary:
    """What one run of the loop did.

    Attributes:
        results: the COCO entries of every finished frame, in input order.
        failures: one line per failed input (the run went on without it).
        written: the drawn files.
        frames: finished frames.
        seconds: the run's wall time.
        interrupted: stopped early by Ctrl-C or SIGTERM.
        fatal: stopped early because an output could not be written (the line saying so).
    """

    results: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    fatal: str | None = None


class _Unit:
    """Output state of one input: its drawn image(s) or (for videos) its open writers."""

    def __init__(self, src: Source, stem: str, opts: PredictOptions, fps: float = 30.0) -> None:
        self.src, self.stem, self.opts, self.fps = src, stem, opts, fps
        self.writers: list[VideoWriter] = []
        self.paths: list[Path] = []

    def add(self, frame: np.ndarray, poses: Poses) -> None:
        if not self.opts.draw:
            return
        thr = self.opts.min_joint_score
        drawn = [poses.draw(frame, min_joint_score=thr)]
        if self.opts.black:
            drawn.append(poses.draw(frame, black=True, min_joint_score=thr))
        names = drawing_paths(self.opts.out_dir, self.stem, drawing_suffix(self.src), black=self.opts.black)
        if self.src.kind == "image":
            for path, img in zip(names, drawn):
                try:
                    write_image(path, img, trailer=DRAWING_MARK)
                except OSError as e:
                    raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
                self.paths.append(path)
            return
        if not self.writers:
            size = (frame.shape[1], frame.shape[0])
            self.writers = [VideoWriter(p, self.fps, size, trailer=DRAWING_MARK) for p in names]
        for writer, img in zip(self.writers, drawn):
            writer.write(img)

    def close(self, discard: bool = False) -> list[Path]:
        """Finish the outputs (a video so far is a playable file) or, with `discard`, remove them."""
        for w in self.writers:
            w.close(discard=discard)
        if discard:  # e.g. the drawn image was written but its black twin failed
            for p in self.paths:
                p.unlink(missing_ok=True)
            return []
        return self.paths + [w.path for w in self.writers if w.frames]


@dataclass
class _Frame:
    """One item of the predict stream: an image file, a decoded video frame, or an input's error."""

    src: Source
    index: int
    data: Path | np.ndarray | GrapeposeError
    fps: float = 30.0
    total: int | None = None

    def __str__(self) -> str:
        return str(self.src) if self.src.kind == "image" else f"{self.src} frame {self.index}"


def _read(frame: _Frame, max_megapixels: float) -> np.ndarray:
    """`iter_predict`'s reader: the frame's pixels (reading image files in its reader threads)."""
    if isinstance(frame.data, GrapeposeError):
        raise frame.data
    if isinstance(frame.data, np.ndarray):
        return frame.data
    return read_image(frame.data, max_megapixels=max_megapixels)


def _frames(sources: list[Source], max_frames: int) -> Iterator[_Frame]:
    """Every input's frames in order; an input that cannot be opened or decoded yields its error."""
    for src in sources:
        if src.kind == "image":
            assert src.path is not None
            yield _Frame(src, 0, src.path)
            continue
        try:
            reader = VideoReader(src.index if src.kind == "webcam" else src.path)  # type: ignore[arg-type]
        except GrapeposeError as e:
            yield _Frame(src, 0, e)
            continue
        i = 0
        try:
            n = reader.frame_count
            total = min(n, max_frames) if n and max_frames else n
            for i, frame in enumerate(reader):
                if max_frames and i >= max_frames:
                    break
                yield _Frame(src, i, frame, reader.fps, total)
        except GrapeposeError as e:
            yield _Frame(src, i, e)
        finally:
            reader.close()


def run_predict(
    predictor: Predictor, sources: list[Source], opts: PredictOptions, report: Callable[[str], None] = log.error,
    journal: OutputFolder | None = None, stop: StopRequest | None = None, part: Sequence[int] | None = None,
) -> PredictSummary:
    """Predict poses for every input and write results as frames finish.

    Args:
        predictor: the model and its test procedure (`PoseEstimator.predictor`).
        sources: inputs from `expand_sources`.
        opts: what to write.
        report: called with one line per failed input, as it happens.
        journal: gets every finished frame (`add`, with `source`: the input's index in `sources`), a
            `mark_done` line when a video was read to its end, and `sync()` after every batch.
        stop: once set (by a signal), the run stops after the frame in hand, keeping it.
        part: run only these indices of `sources` (a torchrun rank's share, `grapepose.predict_job.shard`,
            or what a resumed run has left to do). Output names still come from all of `sources`.
            The image ids count the frames of this run; where the journals of several runs or ranks
            make one `results.json`, `merge_lines` gives them again over the whole job.

    Returns:
        The summary; `results` holds the COCO entries of every finished frame, in input order.
    """
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    written: list[Path] = []
    frames = 0
    interrupted = False
    fatal: str | None = None
    stems = output_stems(sources, opts.out_dir) if opts.draw else {s: s.stem for s in sources}
    image_id = ImageIds(sources)
    units: dict[Source, _Unit] = {}
    failed: set[Source] = set()
    trackers: dict[int | Source, PoseTracker] = {}
    bs = max(1, int(predictor.batch_size))
    position = {s: i for i, s in enumerate(sources)}
    if part is not None:
        sources = [sources[i] for i in sorted(part)]

    def fail(src: Source, message: str) -> None:
        failed.add(src)
        unit = units.pop(src, None)
        if unit is not None:  # frames finished before the fault stay (a playable partial video)
            written.extend(unit.close())
        failures.append(message)
        report(message)

    def finish(src: Source) -> None:
        unit = units.pop(src, None)
        if unit is not None:
            written.extend(unit.close())

    def sync() -> None:
        if journal is not None:
            journal.sync()

    def video_done(src: Source) -> None:  # read to its end: a resumed run need not redo it
        if journal is not None and src not in failed:
            journal.mark_done(source=position[src], video=src.name)

    total = sum(s.kind == "image" for s in sources)
    start = time.perf_counter()
    bar = tqdm(total=total, unit="img", desc="predict", dynamic_ncols=True, disable=None if opts.progress else True,
               leave=False)  # fmt: skip
    reader = functools.partial(_read, max_megapixels=opts.max_megapixels)
    stream = predictor.iter_predict(_frames(sources, opts.max_frames), reader=reader, with_inputs=True)
    video: Source | None = None  # the video whose frames are arriving
    done_in_batch = 0
    try:
        for frame, image, poses in stream:
            if stop is not None and stop.is_set():
                interrupted = True
                break
            src = frame.src
            if video is not None and video is not src:
                finish(video)
                video_done(video)
                video = None
            if src in failed:
                continue
            if isinstance(poses, GrapeposeError):
                fail(src, str(poses))
                continue
            if src.kind != "image" and src not in units:
                units[src] = _Unit(src, stems[src], opts, fps=frame.fps)
                if frame.total:
                    bar.total = (bar.total or 0) + frame.total
                    bar.refresh()
            if opts.score_threshold > 0:  # 0 keeps everyone, even the (meaningless) negative scores
                poses = poses[poses.scores >= opts.score_threshold]
            if opts.track:
                key = src.group if src.kind == "image" else src
                tracker = trackers.setdefault(key, PoseTracker(predictor.spec.sigmas))
                poses.track_ids = tracker.update(poses.keypoints)
            unit = units.setdefault(src, _Unit(src, stems[src], opts))
            try:
                unit.add(image, poses)
            except OutputError as e:
                fatal = str(e)
                break
            except GrapeposeError as e:
                fail(src, f"{src}: cannot write output ({e})")
                continue
            extra: dict[str, Any] = {"file_name": src.name}
            if src.kind != "image":
                extra = {"video": src.name, "frame": frame.index}
            iid = image_id(src)  # once the frame is kept: the ids are those `merge_lines` gives its lines
            entries = poses.to_coco(iid, **extra)
            if journal is not None:
                try:
                    journal.add(entries, image_id=iid, **extra, source=position[src])
                except OSError as e:
                    fatal = f"{journal.path}: cannot write ({e.strerror or e})"
                    break
            results.extend(entries)
            frames += 1
            bar.update(1)
            if src.kind == "image":
                finish(src)
            else:
                video = src
            done_in_batch += 1
            if done_in_batch >= bs:
                sync()
                done_in_batch = 0
        else:  # every input was read to its end
            if video is not None:
                finish(video)
                video_done(video)

    except KeyboardInterrupt:  # Ctrl-C / SIGTERM: what finished so far is kept
        interrupted = True
    except OSError as e:
        fatal = f"{getattr(e, 'filename', None) or opts.out_dir}: cannot write ({e.strerror or e})"
    finally:
        stream.close()
        bar.close()
        for src in list(units):
            try:
                finish(src)
            except OSError as e:
                fatal = fatal or f"{src}: cannot finish its output ({e.strerror or e})"
        try:
            sync()
        except OSError as e:
            assert journal is not None  # only a journal syncs
            fatal = fatal or f"{journal.path}: cannot write ({e.strerror or e})"
    return PredictSummary(results, failures, written, frames, time.perf_counter() - start, interrupted, fatal)
