"""`grapepose predict`: poses in images, folders, globs, videos or a webcam -> COCO JSON + drawings.

The flags become a `PredictJob` and a model loader; `grapepose.predict_job` runs the job (in one
process, or as one rank under torchrun) and this module prints its outcome: the summary line, the
failed inputs, and the exit status.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from grapepose.cli import options as opt
from grapepose.errors import GrapeposeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from grapepose.api import PoseEstimator
    from grapepose.predict_job import PredictJob, PredictOutcome


def add_arguments(p: argparse.ArgumentParser) -> None:
    from grapepose.visualize import MIN_JOINT_SCORE

    arg = p.add_argument
    arg("sources", nargs="+", metavar="SOURCE",
        help="image, folder, glob ('clips/*.mp4'), video file or webcam index (0)")
    opt.add_weights(p, "checkpoint (.safetensors, authors' .pth.tar, .onnx) or 'demo' (default)")
    opt.add_preset(p, "alone: an untrained network of this preset; with --weights: the config of a file without one")
    opt.add_device(p)
    opt.add_batch_size(p, None, "frames per forward pass (default: 16 on CUDA, 2 on CPU)")
    opt.add_test_flags(p, "from the config")
    opt.add_precision(p)
    opt.add_max_megapixels(p, "an image file declaring more pixels is a failed input, refused before decoding")
    arg("--score-thr", type=opt.float_range(0.0), default=0.1, metavar="T",
        help="drop people scoring lower (0 keeps all, for evaluation)")
    opt.add_out(p, "dir", "output folder (default: outputs/predict)", default="outputs/predict")
    arg("--show-black", action="store_true", help="also draw the skeletons on black (<name>_black.*)")
    arg("--min-joint-score", type=opt.float_range(0.0, 1.0), default=MIN_JOINT_SCORE, metavar="T",
        help=f"drawings leave out joints whose per-joint confidence is below T, and their limbs "
             f"(default {MIN_JOINT_SCORE:g}; 0 draws all; the JSON keeps every joint)")
    arg("--track", action="store_true", help="stable person ids across the frames of each video / image sequence")
    arg("--backend", choices=("torch", "onnxruntime"), default=None,
        help="run PyTorch or an exported .onnx file (default: from the --weights file; int8 .onnx: OpenVINO)")
    arg("--no-draw", action="store_true", help="write only the JSON results")
    arg("--overwrite", action="store_true",
        help="replace the results.json (and drawings) of an earlier run in --out (default: refuse to start)")
    arg("--resume", action="store_true",
        help="continue an earlier run in --out that was stopped or killed: inputs it finished are kept, the rest "
             "are done (same SOURCEs and options)")
    opt.add_overrides(p, "test.base_size=384")
    arg("--max-frames", type=opt.int_range(0), default=0, metavar="N",
        help="stop each video/webcam after N frames (0: no limit; Ctrl-C also stops a webcam)")


def _estimator(args: argparse.Namespace, overrides: list[str], device: torch.device | None = None) -> PoseEstimator:
    from grapepose.api import PoseEstimator
    from grapepose.utils.device import resolve_device

    device_name = str(device if device is not None else resolve_device(args.device))
    batch_size = args.batch_size or (16 if device_name.startswith("cuda") else 2)
    source = args.weights if args.weights is not None else (args.preset or "demo")
    is_onnx = str(source).lower().endswith(".onnx")
    if args.backend == "onnxruntime" and not is_onnx:
        raise GrapeposeError(f"--backend onnxruntime runs an exported .onnx file, not {source} (see grapepose export)")
    if args.backend == "torch" and is_onnx:
        raise GrapeposeError(f"{source}: an .onnx file runs with --backend onnxruntime")
    preset = args.preset if args.weights is not None else None
    return PoseEstimator.from_pretrained(
        source, device=device_name, preset=preset, overrides=overrides, batch_size=batch_size
    )


def _job(args: argparse.Namespace) -> PredictJob:
    from grapepose.predict_job import PredictJob, PredictOptions

    options = PredictOptions(
        out_dir=args.out, draw=not args.no_draw, black=args.show_black, track=args.track,
        score_threshold=args.score_thr, max_frames=max(0, args.max_frames), min_joint_score=args.min_joint_score,
        max_megapixels=args.max_megapixels,
    )  # fmt: skip
    return PredictJob(tuple(args.sources), options, overwrite=args.overwrite, resume=args.resume)


def _reporter(prefix: str = "") -> Callable[[str], None]:
    from tqdm import tqdm

    def report(message: str) -> None:
        tqdm.write(f"{prefix}grapepose predict: error: {message}", file=sys.stderr)

    return report


def run(args: argparse.Namespace) -> int:
    from grapepose.utils.distributed import world_size

    job = _job(args)
    overrides = opt.flag_overrides(args)
    if world_size() > 1:
        return _run_sharded(args, job, overrides)
    from grapepose.predict_job import run_job

    return _report(run_job(job, lambda: _estimator(args, overrides).predictor, report=_reporter(), say=print))


def _prefix_logging(prefix: str) -> None:
    """Log lines of this rank start with `[rank r]`; it logs warnings and errors only (rank 0 talks)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    logging.getLogger("grapepose").setLevel(logging.WARNING)


def _run_sharded(args: argparse.Namespace, job: PredictJob, overrides: list[str]) -> int:
    """`predict` as one rank of a torchrun job: rank 0 prints the job's outcome (and exits with the status one
    process would have); the other ranks print only their own error lines, prefixed `[rank r]`."""
    from grapepose.predict_job.shard import Shard
    from grapepose.predict_job.sharded import run_sharded

    shard = Shard(args.device)
    prefix = f"[rank {shard.rank}] " if shard.rank else ""
    if shard.rank:
        _prefix_logging(prefix)
    try:
        outcome = run_sharded(job, shard, lambda: _estimator(args, overrides, device=shard.device).predictor,
                              report=_reporter(prefix), say=print)  # fmt: skip
    except GrapeposeError as e:
        if shard.rank == 0:
            raise
        print(f"{prefix}grapepose predict: error: {e}", file=sys.stderr)  # e.g. rank 0 is gone
        return 2
    finally:
        shard.close()
    return 0 if outcome is None else _report(outcome)


def _report(outcome: PredictOutcome) -> int:
    """Print the summary line (and the failures) of a finished job; its exit status."""
    if outcome.finished_before:
        print(f"{outcome.results_path}: the earlier run in {outcome.out_dir} went to its end; nothing to resume")
        return 0
    frames, seconds = outcome.frames, outcome.seconds
    rate = frames / seconds if seconds > 0 else 0.0
    counts = " + ".join(map(str, outcome.rank_frames))
    ranks = f" on {len(outcome.rank_frames)} ranks ({counts})" if outcome.rank_frames else ""
    print(
        f"{frames} frames from {outcome.inputs} inputs in {seconds:.1f} s ({rate:.2f} img/s){ranks}, "
        f"{outcome.people} people -> {outcome.results_path}"
        + (f", {outcome.drawn} drawn files in {outcome.out_dir}" if outcome.drawn else "")
    )
    if outcome.stopped_by is not None:
        how = "SIGTERM" if outcome.stopped_by == signal.SIGTERM else "Ctrl-C"
        rest = "" if outcome.webcam else " (--resume does the rest)"
        print(f"grapepose predict: stopped by {how}; the {outcome.saved} finished frames are in "
              f"{outcome.results_path}{rest}", file=sys.stderr)  # fmt: skip
    if outcome.failures:
        print(f"grapepose predict: {len(outcome.failures)} input(s) failed:", file=sys.stderr)
        for message in outcome.failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    if outcome.stopped_by == signal.SIGTERM:
        return 143
    return 130 if outcome.stopped_by is not None and not outcome.webcam else 0
