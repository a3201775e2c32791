"""`grapepose predict`: poses in images, folders, globs, videos or a webcam -> COCO JSON + drawings."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from grapepose.cli import options as opt
from grapepose.errors import GrapeposeError


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


def _estimator(args: argparse.Namespace, overrides: list[str], device: Any = None):  # noqa: ANN202 - lazily imported
    from grapepose.api import PoseEstimator
    from grapepose.utils.device import resolve_device

    device = str(device if device is not None else resolve_device(args.device))
    batch_size = args.batch_size or (16 if device.startswith("cuda") else 2)
    source = args.weights if args.weights is not None else (args.preset or "demo")
    is_onnx = str(source).lower().endswith(".onnx")
    if args.backend == "onnxruntime" and not is_onnx:
        raise GrapeposeError(f"--backend onnxruntime runs an exported .onnx file, not {source} (see grapepose export)")
    if args.backend == "torch" and is_onnx:
        raise GrapeposeError(f"{source}: an .onnx file runs with --backend onnxruntime")
    preset = args.preset if args.weights is not None else None
    return PoseEstimator.from_pretrained(
        source, device=device, preset=preset, overrides=overrides, batch_size=batch_size
    )


def _signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl-C / SIGTERM stop the run after the frame in hand (its outputs kept); a second one at once."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.signum = signum  # type: ignore[attr-defined]
        stop.set()

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _resume_flag(args: argparse.Namespace) -> bool:
    resume = bool(getattr(args, "resume", False))
    if resume and getattr(args, "overwrite", False):
        raise GrapeposeError("--resume keeps an earlier run's results and --overwrite replaces them: pass one")
    return resume


def _options(args: argparse.Namespace, progress: bool = True):  # noqa: ANN202 - PredictOptions, imported lazily
    from grapepose.io.runner import PredictOptions

    return PredictOptions(
        out_dir=args.out, draw=not args.no_draw, black=args.show_black, track=args.track,
        score_threshold=args.score_thr, max_frames=max(0, args.max_frames), progress=progress,
        min_joint_score=args.min_joint_score, max_megapixels=args.max_megapixels,
    )  # fmt: skip


def _reporter(prefix: str = ""):  # noqa: ANN202
    from tqdm import tqdm

    def report(message: str) -> None:
        tqdm.write(f"{prefix}grapepose predict: error: {message}", file=sys.stderr)

    return report


def run(args: argparse.Namespace) -> int:
    from grapepose.utils.distributed import world_size

    if world_size() > 1:
        from grapepose.cli._predict_shard import run_sharded

        return run_sharded(args)

    from grapepose.io.files import check_output_path
    from grapepose.io.journal import OutputError, OutputFolder
    from grapepose.io.runner import run_predict
    from grapepose.io.sources import expand_sources

    specs = list(args.sources)
    overrides = opt.flag_overrides(args)
    resume = _resume_flag(args)
    args.out = check_output_path(args.out, "dir")  # before the lock, the model and any work
    folder = OutputFolder(args.out, overwrite=getattr(args, "overwrite", False), resume=resume)
    folder.open(journal=not resume)  # before any work: the lock, and earlier results are not replaced by accident
    if folder.finished_before:
        from grapepose.io.resume import nothing_to_resume

        folder.close()
        print(nothing_to_resume(folder))
        return 0
    stop = threading.Event()
    previous = _signals(stop)
    try:
        report = _reporter()
        sources, failures = expand_sources(specs, skip_outputs_in=args.out)
        todo = None
        if resume:
            from grapepose.io.resume import start_resumed

            todo, said = start_resumed(folder, sources, track=args.track)
            if said:
                print(said)
        estimator = _estimator(args, overrides)
        for message in failures:
            report(message)
        summary = run_predict(estimator, sources, _options(args), report=report, journal=folder, stop=stop,
                              part=todo)  # fmt: skip
        for s in previous:  # writing results.json takes milliseconds: let it finish
            signal.signal(s, signal.SIG_IGN)
        webcam = any(s.kind == "webcam" for s in sources)  # Ctrl-C is how a webcam run ends: nothing to resume
        try:
            stopped = summary.interrupted and not webcam
            results = folder.finish(sources=sources, keep_journal=stopped or bool(summary.fatal))
        except OutputError as e:
            raise OutputError(f"{summary.fatal}; {e}" if summary.fatal else str(e)) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        folder.close()
    if summary.fatal:
        raise OutputError(f"{summary.fatal}; the {folder.frames} frames finished before are in {folder.results_path} "
                          "(--resume does the rest)")  # fmt: skip
    return _outcome(
        args, stop, frames=summary.frames, inputs=len(todo if todo is not None else sources) - len(summary.failures),
        seconds=summary.seconds,
        people=len(results), results_path=folder.results_path, drawn=len(summary.written),
        failures=failures + summary.failures, interrupted=summary.interrupted, saved=folder.frames, webcam=webcam,
    )  # fmt: skip


def _outcome(
    args: argparse.Namespace, stop: threading.Event, *, frames: int, inputs: int, seconds: float, people: int,
    results_path: Any, drawn: int, failures: list[str], interrupted: bool, webcam: bool = False, ranks: str = "",
    saved: int | None = None,
) -> int:
    """Print the summary line (and the failures) of a finished run; its exit status."""
    rate = frames / seconds if seconds > 0 else 0.0
    print(
        f"{frames} frames from {inputs} inputs in {seconds:.1f} s ({rate:.2f} img/s){ranks}, {people} people -> "
        f"{results_path}" + (f", {drawn} drawn files in {args.out}" if drawn else "")
    )
    if interrupted:
        how = "SIGTERM" if getattr(stop, "signum", signal.SIGINT) == signal.SIGTERM else "Ctrl-C"
        rest = "" if webcam else " (--resume does the rest)"
        print(f"grapepose predict: stopped by {how}; the {frames if saved is None else saved} finished frames are in "
              f"{results_path}{rest}", file=sys.stderr)  # fmt: skip
    if failures:
        print(f"grapepose predict: {len(failures)} input(s) failed:", file=sys.stderr)
        for message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    if interrupted and getattr(stop, "signum", None) == signal.SIGTERM:
        return 143
    return 130 if interrupted and not webcam else 0
