"""A `PredictJob` under torchrun: rank 0's once-only checks, every rank's share, rank 0's merge.

See `grapepose.predict_job.shard` for the split and the merge; this module runs them. Rank 0 gets
the outcome of the whole job, as one process would; the other ranks get None once rank 0 has
their report, or an error naming what they lost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from grapepose.errors import GrapeposeError
from grapepose.io.sources import Source, expand_sources
from grapepose.predict_job.job import LoadPredictor, PredictJob, PredictOutcome, Say, open_folder, stop_signal
from grapepose.predict_job.journal import PART_GLOB, OutputError, OutputFolder, part_name
from grapepose.predict_job.resume import start_resumed
from grapepose.predict_job.runner import PredictSummary, run_predict
from grapepose.predict_job.shard import PartJournal, Shard, merge_parts, plan
from grapepose.predict_job.stop import StopRequest

__all__ = ["ShardPlan", "RankReport", "run_sharded"]


@dataclass(frozen=True)
class ShardPlan:
    """Rank 0's setup, sent to every rank.

    Attributes:
        out_dir: the checked output folder.
        sources: every input of the job.
        failures: the SOURCE arguments that gave no input (rank 0 reported them).
        shares: each rank's indices of `sources`.
    """

    out_dir: Path
    sources: tuple[Source, ...]
    failures: tuple[str, ...]
    shares: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class RankReport:
    """What one rank did, sent to rank 0 (its results are in its journal).

    Attributes:
        frames, failures, seconds, interrupted, fatal: its loop's (`PredictSummary`).
        drawn: drawn files it wrote.
        error: why it could not run at all (e.g. no model on its device; its frames are not counted).
        signum: the signal that stopped it, if one did.
    """

    frames: int = 0
    failures: tuple[str, ...] = ()
    drawn: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    fatal: str | None = None
    error: str | None = None
    signum: int | None = None


def _setup(job: PredictJob, world: int, report: Say, say: Say) -> tuple[OutputFolder, ShardPlan | None]:
    """Rank 0: check and lock the output folder, expand and split the inputs (None: nothing to resume)."""
    folder = None
    try:
        folder = open_folder(job, journal=False)
        if folder.finished_before:
            return folder, None
        sources, failures = expand_sources(list(job.sources), skip_outputs_in=folder.out_dir)
        todo = list(range(len(sources)))
        if job.resume:  # the earlier job's finished lines go into results.jsonl; the rest is split
            todo, said = start_resumed(folder, sources, track=job.options.track)
            if said:
                say(said)
        for message in failures:
            report(message)
        shares = plan([sources[i] for i in todo], world, track=job.options.track, max_frames=job.options.max_frames)
        return folder, ShardPlan(folder.out_dir, tuple(sources), tuple(failures),
                                 tuple(tuple(todo[j] for j in share) for share in shares))  # fmt: skip
    except BaseException:
        if folder is not None:
            folder.close()
        raise


def run_sharded(job: PredictJob, shard: Shard, load: LoadPredictor, report: Say, say: Say) -> PredictOutcome | None:
    """Run this rank's part of `job` (WORLD_SIZE > 1).

    Returns:
        On rank 0 the job's outcome; None on the other ranks (rank 0 reports).

    Raises:
        GrapeposeError: on rank 0, what ends the job (one line); on another rank, why it lost the job.
    """
    folder = None
    try:
        setup: ShardPlan | None = None
        if shard.rank == 0:
            try:
                folder, setup = _setup(job, shard.world, report, say)
            except (GrapeposeError, OSError) as e:  # rank 0 says it (one line); the others just leave
                shard.broadcast(None)
                if isinstance(e, GrapeposeError):
                    raise
                raise GrapeposeError(f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}") from None
            if setup is None:  # --resume of a job that went to its end
                shard.broadcast(None)
                return PredictOutcome(folder.out_dir, folder.results_path, finished_before=True)
        setup = shard.broadcast(setup)
        if setup is None:
            return None
        return _run(job, shard, load, setup, folder, report)
    finally:
        if folder is not None:
            folder.close()


def _run(
    job: PredictJob, shard: Shard, load: LoadPredictor, setup: ShardPlan, folder: OutputFolder | None, report: Say
) -> PredictOutcome | None:
    mine = setup.shares[shard.rank]
    part = PartJournal(setup.out_dir, shard.rank)
    shard.start_heartbeat()
    stop = StopRequest().install()
    summary, error = PredictSummary(), None
    try:
        part.open()
        if mine:  # a rank without inputs (more ranks than inputs) loads no model
            predictor = load()
            options = dataclasses.replace(job.options, out_dir=setup.out_dir, progress=shard.rank == 0)
            summary = run_predict(predictor, list(setup.sources), options, report=report, journal=part, stop=stop,
                                  part=mine)  # fmt: skip
    except GrapeposeError as e:  # e.g. no model on this rank's GPU: the others go on, rank 0 says it at the end
        error = str(e)
    except KeyboardInterrupt:  # a second Ctrl-C while the model loads
        summary = dataclasses.replace(summary, interrupted=True)
    finally:
        part.close()  # synced; removed when empty
    mine_report = RankReport(
        frames=summary.frames, failures=tuple(summary.failures), drawn=len(summary.written), seconds=summary.seconds,
        interrupted=summary.interrupted, fatal=summary.fatal, error=error, signum=stop.signum,
    )  # fmt: skip
    lost: str | None
    try:
        lost = shard.wait_all()
        reports = shard.gather(mine_report) if lost is None else None
    except KeyboardInterrupt:
        lost, reports = "interrupted while waiting for the other ranks", None
    except GrapeposeError as e:
        lost, reports = str(e), None
    if shard.rank != 0:
        stop.restore()
        if lost is None:
            return None
        kept = f"; the {summary.frames} frames this rank finished are in {part.path}" if summary.frames else ""
        raise GrapeposeError(f"{lost}{kept}")
    assert folder is not None  # rank 0 holds the folder
    try:
        return _merge(setup, shard.world, folder, reports, lost, stop)
    finally:
        stop.restore()


def _merge(
    setup: ShardPlan, world: int, folder: OutputFolder, reports: list[RankReport] | None, lost: str | None,
    stop: StopRequest,
) -> PredictOutcome:
    """Rank 0: one `results.json` from every part, the parts removed, the job's outcome."""
    out = setup.out_dir
    errors = [(r, x.error) for r, x in enumerate(reports or []) if x.error]
    if errors and not any(x.frames for x in reports or []):  # e.g. no such weights file: nothing ran
        r, error = errors[0]
        raise GrapeposeError(error if r == 0 else f"rank {r}: {error}")
    stop.hold()  # the merge takes milliseconds: let it finish
    # a job that did not go to its end keeps its journals, for --resume
    complete = reports is not None and not any(x.interrupted or x.fatal or x.error for x in reports)
    results, frames = merge_parts(out, setup.sources, world)
    try:
        folder.finish(results, keep_journal=not complete)
    except OutputError as e:
        raise OutputError(f"{e} (each rank's finished frames are kept in {out / PART_GLOB})") from None
    for r in range(world) if complete else ():
        (out / part_name(r)).unlink(missing_ok=True)
    if reports is None:
        raise GrapeposeError(
            f"a rank stopped without reporting ({lost}): {folder.results_path} holds the {frames} frames the ranks "
            f"had finished, and their journals are kept ({out / PART_GLOB}): run the job again with --resume to "
            "do the rest, or with --overwrite to redo it"
        )
    for r, rep in enumerate(reports):
        if rep.fatal or rep.error:
            raise OutputError(f"rank {r}: {rep.fatal or rep.error}; the {frames} frames the ranks finished "
                              f"are in {folder.results_path} (--resume does the rest)")  # fmt: skip
    signum = stop.signum or next((x.signum for x in reports if x.signum), None)
    return PredictOutcome(
        out, folder.results_path, frames=sum(x.frames for x in reports),
        inputs=len(setup.sources) - sum(len(x.failures) for x in reports), seconds=max(x.seconds for x in reports),
        people=len(results), drawn=sum(x.drawn for x in reports), saved=frames,
        failures=(*setup.failures, *(m for x in reports for m in x.failures)),
        stopped_by=stop_signal(any(x.interrupted for x in reports), signum),
        rank_frames=tuple(x.frames for x in reports),
    )  # fmt: skip
