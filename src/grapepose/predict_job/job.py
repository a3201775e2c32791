"""One `grapepose predict` job in one process: what it is (`PredictJob`), what it did (`PredictOutcome`).

The job checks and locks its output folder before any work, expands the SOURCE arguments, continues
an earlier run with `resume`, loads the model, runs the loop (`run_predict`) and writes
`results.json` from the journal, also after Ctrl-C, SIGTERM or a write error. The same job under
torchrun is `grapepose.predict_job.sharded`. The caller (`grapepose.cli.predict`) turns flags into
a job and a model loader, and reports the outcome.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grapepose.errors import GrapeposeError
from grapepose.io.files import check_output_path
from grapepose.io.sources import expand_sources
from grapepose.predict_job.journal import OutputError, OutputFolder
from grapepose.predict_job.resume import start_resumed
from grapepose.predict_job.runner import PredictOptions, run_predict
from grapepose.predict_job.stop import StopRequest

if TYPE_CHECKING:  # pragma: no cover
    from grapepose.inference import Predictor

__all__ = ["PredictJob", "PredictOutcome", "LoadPredictor", "Say", "open_folder", "stop_signal", "run_job"]

LoadPredictor = Callable[[], "Predictor"]
"""Loads the model: called once the output folder is taken and the inputs are known, never when
there is nothing to run."""

Say = Callable[[str], None]
"""Takes one line for the user: an input that failed (`report`), or news of the job (`say`)."""


@dataclass(frozen=True)
class PredictJob:
    """What to predict and where the results go.

    Attributes:
        sources: the SOURCE arguments (`grapepose.io.sources.expand_sources`).
        options: what the loop writes; `options.out_dir` is the output folder.
        overwrite: replace the results of an earlier run in the folder instead of refusing to start.
        resume: continue the earlier run in the folder (`grapepose.predict_job.resume`).
    """

    sources: tuple[str, ...]
    options: PredictOptions
    overwrite: bool = False
    resume: bool = False


@dataclass(frozen=True)
class PredictOutcome:
    """What a job did; errors that end a job are raised (`GrapeposeError`, one line) instead.

    Attributes:
        out_dir: the output folder.
        results_path: its `results.json`.
        frames: frames this job predicted.
        inputs: inputs it ran that did not fail.
        seconds: the loop's wall time (the slowest rank's under torchrun).
        people: entries in `results.json`.
        drawn: drawn files written.
        saved: finished frames in `results.json` (with those an earlier, resumed run kept).
        failures: one line per failed input (the SOURCE arguments', then the loop's).
        stopped_by: the signal that stopped the job before its end (SIGINT also for a bare
            `KeyboardInterrupt`); None when it went to its end.
        webcam: a webcam was among the inputs (Ctrl-C is how it ends: nothing to resume).
        rank_frames: frames of each torchrun rank (empty in one process).
        finished_before: `resume` found the earlier run complete; the job did nothing.
    """

    out_dir: Path
    results_path: Path
    frames: int = 0
    inputs: int = 0
    seconds: float = 0.0
    people: int = 0
    drawn: int = 0
    saved: int = 0
    failures: tuple[str, ...] = ()
    stopped_by: int | None = None
    webcam: bool = False
    rank_frames: tuple[int, ...] = ()
    finished_before: bool = False


def open_folder(job: PredictJob, journal: bool) -> OutputFolder:
    """The job's output folder, checked and locked before any work (`OutputFolder.open`).

    Raises:
        GrapeposeError: `resume` with `overwrite`, or the folder cannot be used (one line).
    """
    if job.resume and job.overwrite:
        raise GrapeposeError("--resume keeps an earlier run's results and --overwrite replaces them: pass one")
    out = check_output_path(job.options.out_dir, "dir")
    return OutputFolder(out, overwrite=job.overwrite, resume=job.resume).open(journal=journal)


def stop_signal(interrupted: bool, signum: int | None) -> int | None:
    """`PredictOutcome.stopped_by` of a job that was `interrupted`, after `signum` (None: a bare Ctrl-C)."""
    return (signum or signal.SIGINT) if interrupted else None


def run_job(job: PredictJob, load: LoadPredictor, report: Say, say: Say) -> PredictOutcome:
    """Run `job` in this process; Ctrl-C or SIGTERM stop it after the frame in hand.

    Args:
        job: the job.
        load: the model loader.
        report: gets one line per failed input, as it happens.
        say: gets the line of a resumed job (what was finished before).

    Raises:
        GrapeposeError: the folder cannot be used, the model cannot be loaded, or an output
            cannot be written (the frames finished before are in `results.json`).
    """
    folder = open_folder(job, journal=not job.resume)  # the lock; earlier results are not replaced by accident
    if folder.finished_before:
        folder.close()
        return PredictOutcome(folder.out_dir, folder.results_path, finished_before=True)
    stop = StopRequest().install()
    try:
        sources, failures = expand_sources(list(job.sources), skip_outputs_in=folder.out_dir)
        todo = None
        if job.resume:
            todo, said = start_resumed(folder, sources, track=job.options.track)
            if said:
                say(said)
        predictor = load()
        for message in failures:
            report(message)
        options = dataclasses.replace(job.options, out_dir=folder.out_dir)
        summary = run_predict(predictor, sources, options, report=report, journal=folder, stop=stop, part=todo)
        stop.hold()
        webcam = any(s.kind == "webcam" for s in sources)  # Ctrl-C is how a webcam run ends: nothing to resume
        stopped = summary.interrupted and not webcam
        try:  # a resumed run's journal also holds the earlier run's lines: they are numbered again
            results = folder.finish(sources=sources if job.resume else None,
                                    keep_journal=stopped or bool(summary.fatal))  # fmt: skip
        except OutputError as e:
            raise OutputError(f"{summary.fatal}; {e}" if summary.fatal else str(e)) from None
    finally:
        stop.restore()
        folder.close()
    if summary.fatal:
        raise OutputError(f"{summary.fatal}; the {folder.frames} frames finished before are in {folder.results_path} "
                          "(--resume does the rest)")  # fmt: skip
    return PredictOutcome(
        folder.out_dir, folder.results_path, frames=summary.frames, seconds=summary.seconds, people=len(results),
        inputs=len(todo if todo is not None else sources) - len(summary.failures), drawn=len(summary.written),
        saved=folder.frames, failures=(*failures, *summary.failures), webcam=webcam,
        stopped_by=stop_signal(summary.interrupted, stop.signum),
    )  # fmt: skip
