"""`grapepose predict` under torchrun: rank 0's once-only checks, every rank's share, rank 0's merge.

See `grapepose.io.shard` for the split and the merge; this module runs them and talks to the user:
rank 0 prints the outcome of the whole job (and exits with the status one process would have), the
other ranks print only their own error lines, prefixed `[rank r]`, and exit 0 once rank 0 has their
report.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from grapepose.errors import GrapeposeError


def _prefix_logging(prefix: str) -> None:
    """Log lines of this rank start with `[rank r]`; it logs warnings and errors only (rank 0 talks)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    logging.getLogger("grapepose").setLevel(logging.WARNING)


def _setup(args: argparse.Namespace, world: int, report: Any) -> tuple[Any, dict[str, Any]]:
    """Rank 0: check and lock the output folder, expand and split the inputs (or say why not)."""
    from grapepose.io.files import check_output_path
    from grapepose.io.journal import OutputFolder
    from grapepose.io.shard import plan
    from grapepose.io.sources import expand_sources

    from grapepose.cli.predict import _resume_flag

    folder = None
    try:
        resume = _resume_flag(args)
        out = check_output_path(args.out, "dir")
        folder = OutputFolder(out, overwrite=args.overwrite, resume=resume).open(journal=False)
        if folder.finished_before:
            from grapepose.io.resume import nothing_to_resume

            return folder, {"nothing": nothing_to_resume(folder)}
        sources, failures = expand_sources(list(args.sources), skip_outputs_in=out)
        todo = list(range(len(sources)))
        if resume:  # the earlier job's finished lines go into results.jsonl; the rest is split
            from grapepose.io.resume import start_resumed

            todo, said = start_resumed(folder, sources, track=args.track)
            if said:
                print(said)
        for message in failures:
            report(message)
        shares = plan([sources[i] for i in todo], world, track=args.track, max_frames=max(0, args.max_frames))
        shares = [[todo[j] for j in share] for share in shares]
    except (GrapeposeError, OSError) as e:
        if folder is not None:
            folder.close()
        msg = str(e) if isinstance(e, GrapeposeError) else f"{getattr(e, 'filename', '') or ''}: {e.strerror or e}"
        return None, {"error": msg}
    return folder, {"out": str(out), "sources": sources, "failures": failures, "shares": shares}


def run_sharded(args: argparse.Namespace) -> int:
    """`predict` as one rank of a torchrun job (WORLD_SIZE > 1)."""
    from grapepose.io.shard import Shard

    shard = Shard(args.device)
    prefix = f"[rank {shard.rank}] " if shard.rank else ""
    if shard.rank:
        _prefix_logging(prefix)
    folder = None
    try:
        from grapepose.cli.predict import _reporter

        report = _reporter(prefix)
        if shard.rank == 0:
            folder, job = _setup(args, shard.world, report)
        job = shard.broadcast(job if shard.rank == 0 else None)
        if "error" in job:  # rank 0 says it (one line, exit status 2); the others just leave
            if shard.rank == 0:
                raise GrapeposeError(job["error"])
            return 0
        if "nothing" in job:  # --resume of a job that went to its end
            if shard.rank == 0:
                print(job["nothing"])
            return 0
        return _run(args, shard, folder, job, report, prefix)
    except GrapeposeError as e:
        if shard.rank == 0:
            raise
        print(f"{prefix}grapepose predict: error: {e}", file=sys.stderr)  # e.g. rank 0 is gone
        return 2
    finally:
        if folder is not None:
            folder.close()
        shard.close()


def _run(args: argparse.Namespace, shard: Any, folder: Any, job: dict[str, Any], report: Any, prefix: str) -> int:
    from grapepose.cli import options as opt
    from grapepose.cli.predict import _estimator, _options, _signals
    from grapepose.io.runner import PredictSummary, run_predict
    from grapepose.io.shard import PartJournal

    args.out = Path(job["out"])
    sources, mine = job["sources"], job["shares"][shard.rank]
    part = PartJournal(args.out, shard.rank)
    shard.start_heartbeat()
    stop = threading.Event()
    previous = _signals(stop)
    summary, error = PredictSummary(), None
    try:
        part.open()
        if mine:  # a rank without inputs (more ranks than inputs) loads no model
            estimator = _estimator(args, opt.flag_overrides(args), device=shard.device)
            summary = run_predict(estimator, sources, _options(args, progress=shard.rank == 0), report=report,
                                  journal=part, stop=stop, part=mine)  # fmt: skip
    except GrapeposeError as e:  # e.g. no model on this rank's GPU: the others go on, rank 0 says it at the end
        error = str(e)
    except KeyboardInterrupt:  # a second Ctrl-C while the model loads
        summary.interrupted = True
    finally:
        part.close()  # synced; removed when empty
    mine_report = {
        "frames": summary.frames, "failures": summary.failures, "drawn": len(summary.written),
        "seconds": summary.seconds, "interrupted": summary.interrupted, "fatal": summary.fatal, "error": error,
        "signum": getattr(stop, "signum", None),
    }  # fmt: skip
    try:
        lost = shard.wait_all()
        reports = shard.gather(mine_report) if lost is None else None
    except KeyboardInterrupt:
        lost, reports = "interrupted while waiting for the other ranks", None
    except GrapeposeError as e:
        lost, reports = str(e), None
    if shard.rank != 0:
        for s, h in previous.items():
            signal.signal(s, h)
        if lost is None:
            return 0
        kept = f"; the {summary.frames} frames this rank finished are in {part.path}" if summary.frames else ""
        print(f"{prefix}grapepose predict: error: {lost}{kept}", file=sys.stderr)
        return 2
    return _merge(args, shard, folder, job, stop, previous, reports, lost)


def _merge(
    args: argparse.Namespace, shard: Any, folder: Any, job: dict[str, Any], stop: threading.Event,
    previous: dict[int, Any], reports: list[dict[str, Any]] | None, lost: str | None,
) -> int:
    """Rank 0: one `results.json` from every part, the parts removed, the job's outcome."""
    from grapepose.cli.predict import _outcome
    from grapepose.io.journal import PART_GLOB, OutputError, part_name
    from grapepose.io.shard import merge_parts

    sources, world = job["sources"], shard.world
    errors = [(r, x["error"]) for r, x in enumerate(reports or []) if x["error"]]
    if errors and not any(x["frames"] for x in reports or []):  # e.g. no such weights file: nothing ran
        r, error = errors[0]
        raise GrapeposeError(error if r == 0 else f"rank {r}: {error}")
    for s in previous:  # the merge takes milliseconds: let it finish
        signal.signal(s, signal.SIG_IGN)
    # a job that did not go to its end keeps its journals, for --resume
    complete = reports is not None and not any(x["interrupted"] or x["fatal"] or x["error"] for x in reports)
    try:
        results, frames = merge_parts(args.out, sources, world)
        try:
            folder.finish(results, keep_journal=not complete)
        except OutputError as e:
            raise OutputError(f"{e} (each rank's finished frames are kept in {args.out / PART_GLOB})") from None
        for r in range(world) if complete else ():
            (args.out / part_name(r)).unlink(missing_ok=True)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if reports is None:
        raise GrapeposeError(
            f"a rank stopped without reporting ({lost}): {folder.results_path} holds the {frames} frames the ranks "
            f"had finished, and their journals are kept ({args.out / PART_GLOB}): run the job again with --resume to "
            "do the rest, or with --overwrite to redo it"
        )
    for r, rep in enumerate(reports):
        if rep["fatal"] or rep["error"]:
            raise OutputError(f"rank {r}: {rep['fatal'] or rep['error']}; the {frames} frames the ranks finished "
                              f"are in {folder.results_path} (--resume does the rest)")  # fmt: skip
    if not getattr(stop, "signum", None):
        stop.signum = next((x["signum"] for x in reports if x["signum"]), None)  # type: ignore[attr-defined]
    counts = " + ".join(str(x["frames"]) for x in reports)
    failures = job["failures"] + [m for x in reports for m in x["failures"]]
    return _outcome(
        args, stop, frames=sum(x["frames"] for x in reports),
        inputs=len(sources) - sum(len(x["failures"]) for x in reports), seconds=max(x["seconds"] for x in reports),
        people=len(results), results_path=folder.results_path, drawn=sum(x["drawn"] for x in reports),
        failures=failures, interrupted=any(x["interrupted"] for x in reports), ranks=f" on {world} ranks ({counts})",
        saved=frames,
    )  # fmt: skip

