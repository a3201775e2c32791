"""`grapepose predict`: poses in images, folders, globs, videos or a webcam -> COCO JSON + drawings."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from grapepose.errors import GrapeposeError

_OVERRIDE = re.compile(r"^(model|data|test|train)\.[A-Za-z_][\w.]*=")


def add_arguments(p: argparse.ArgumentParser) -> None:
    arg = p.add_argument
    arg("sources", nargs="+", metavar="SOURCE",
        help="image, folder, glob ('clips/*.mp4'), video file or webcam index (0); "
        "section.key=value arguments are config overrides (e.g. test.base_size=384)")
    arg("--weights", default=None, help="checkpoint (.safetensors, authors' .pth.tar, .onnx) or 'demo' (default)")
    arg("--preset", default=None,
        help="alone: an untrained network of this preset; with --weights: the config of a file without one")
    arg("--device", default=None, help="cpu or cuda (default: cuda when available)")
    arg("--batch-size", type=int, default=None, help="frames per forward pass (default: 16 on CUDA, 2 on CPU)")
    arg("--flip", action=argparse.BooleanOptionalAction, default=None, help="flip test (default: from the config)")
    arg("--scales", type=float, nargs="+", default=None, help="test scales, e.g. 0.5 1 2 (default: from the config)")
    arg("--score-thr", type=float, default=0.1, help="drop people scoring lower (0 keeps all, for evaluation)")
    arg("--out", type=Path, default=Path("outputs/predict"), help="output folder (default: outputs/predict)")
    arg("--show-black", action="store_true", help="also draw the skeletons on black (<name>_black.*)")
    arg("--track", action="store_true", help="stable person ids across the frames of each video / image sequence")
    arg("--backend", choices=("torch", "onnxruntime"), default="torch", help="run PyTorch or an exported .onnx file")
    arg("--no-draw", action="store_true", help="write only the JSON results")
    arg("--set", action="append", default=[], metavar="KEY=VALUE",
        help="config override, e.g. test.base_size=384 (repeatable; same as a positional one)")
    arg("--max-frames", type=int, default=0,
        help="stop each video/webcam after N frames (0: no limit; Ctrl-C also stops a webcam)")


def _check_out_dir(out: Path) -> None:
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise GrapeposeError(f"{out}: output folder is not writable ({e.strerror or e})") from None


def _estimator(args: argparse.Namespace, overrides: list[str]):  # noqa: ANN202 - PoseEstimator, imported lazily
    import torch

    from grapepose.api import PoseEstimator

    from grapepose.utils.device import resolve_device

    device = str(resolve_device(args.device))
    batch_size = args.batch_size or (16 if device.startswith("cuda") else 2)
    if batch_size < 1:
        raise GrapeposeError(f"--batch-size must be >= 1, got {batch_size}")
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


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from grapepose.io.files import atomic_write_json
    from grapepose.io.runner import PredictOptions, run_predict
    from grapepose.io.sources import expand_sources

    positional = [s for s in args.sources if _OVERRIDE.match(s) and not Path(s).exists()]
    specs = [s for s in args.sources if s not in positional]
    overrides = positional + list(args.set)
    if args.flip is not None:
        overrides.append(f"test.flip={str(args.flip).lower()}")
    if args.scales:
        overrides.append(f"test.scales=[{','.join(str(s) for s in args.scales)}]")
    if not specs:
        raise GrapeposeError("no SOURCE given (an image, folder, glob, video or webcam index)")
    _check_out_dir(args.out)
    estimator = _estimator(args, overrides)

    def report(message: str) -> None:
        tqdm.write(f"grapepose predict: error: {message}", file=sys.stderr)

    sources, failures = expand_sources(specs)
    for message in failures:
        report(message)
    opts = PredictOptions(
        out_dir=args.out, draw=not args.no_draw, black=args.show_black, track=args.track,
        score_threshold=args.score_thr, max_frames=max(0, args.max_frames),
    )  # fmt: skip
    summary = run_predict(estimator, sources, opts, report=report)
    failures += summary.failures
    json_path = args.out / "results.json"
    atomic_write_json(json_path, summary.results)
    rate = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    people = len(summary.results)
    print(
        f"{summary.frames} frames from {len(sources) - len(summary.failures)} inputs in {summary.seconds:.1f} s "
        f"({rate:.2f} img/s), {people} people -> {json_path}"
        + (f", {len(summary.written)} drawn files in {args.out}" if summary.written else "")
    )
    if summary.interrupted:
        print("stopped by Ctrl-C; finished outputs were kept", file=sys.stderr)
    if failures:
        print(f"grapepose predict: {len(failures)} input(s) failed:", file=sys.stderr)
        for message in failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 130 if summary.interrupted and not any(s.kind == "webcam" for s in sources) else 0
