"""`grapepose demo`: the whole pipeline on bundled input, with an honest account of what ran.

It predicts on the photos in `--photos DIR` (if given; `./dev demo` passes the project's demo
photos) and on freshly generated synthetic crowd images, writes drawn images and COCO-results
JSON, and scores the synthetic images against their ground truth. With the bundled demo model the
AP is meaningful; without it the network is untrained and the output says so.
"""

from __future__ import annotations

import argparse
import os
import sys

from grapepose.cli import options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    from grapepose.synth.scene import MAX_SIZE, MIN_SIZE

    opt.add_out(p, "dir", "output folder (default: outputs/demo)", default="outputs/demo")
    opt.add_weights(p, "checkpoint to run (default: the bundled demo model)", default="demo")
    opt.add_device(p)
    p.add_argument("--num-synthetic", type=opt.int_range(1), default=4, metavar="N",
                   help="synthetic crowd images to generate and score (default 4)")
    p.add_argument("--size", type=opt.int_range(MIN_SIZE, MAX_SIZE), default=256, metavar="S",
                   help="side of the synthetic images (default: 256, the demo model's held-out size)")
    p.add_argument("--photos", metavar="DIR", default=None,
                   help="folder of photos to predict on too (default: none; `./dev demo` passes the fixture photos)")


def _describe(weights: str, info: dict[str, object]) -> str:
    """What the model is, in plain words, from the record its file carries."""
    if weights != "demo":
        return f"model: {weights}" + (f" ({info['trained_on']})" if info.get("trained_on") else "")
    held = info.get("heldout_ap")
    aps = ", ".join(f"{k} AP {v:.3f}" for k, v in held.items()) if isinstance(held, dict) else "not recorded"
    return (
        f"model: the bundled demo model, {info.get('preset', '?')}, trained on {info.get('trained_on', '?')}.\n"
        "       It is a demonstration of the pipeline, not a real-photo model: expect it to find few people\n"
        "       in real photos. For real photos use the authors' CrowdPose checkpoint (docs/MODELS.md) or a\n"
        f"       GPU training run (docs/TRAINING.md). Its held-out AP on synthetic scenes: {aps}."
    )


def run(args: argparse.Namespace) -> int:
    from grapepose.api import DEMO_WEIGHTS, PoseEstimator
    from grapepose.errors import GrapeposeError
    from grapepose.evaluation import evaluate_results, format_metrics_table
    from grapepose.io.files import atomic_write_json, check_output_path
    from grapepose.io.sources import expand_sources
    from grapepose.predict_job.runner import PredictOptions, run_predict
    from grapepose.synth import generate_dataset

    args.out = check_output_path(args.out, "dir")
    photos = args.photos
    if photos is not None and not os.path.isdir(photos):
        raise GrapeposeError(f"--photos {photos}: not a folder")
    trained = not (args.weights == "demo" and not DEMO_WEIGHTS.is_file())
    if trained:
        estimator = PoseEstimator.from_pretrained(args.weights, device=args.device)
        print(_describe(args.weights, estimator.info), flush=True)
    else:
        print(
            "NOTE: no trained demo model is bundled yet (training one needs a GPU; see docs/BENCHMARKS.md).\n"
            "      This demo runs an UNTRAINED coco_w18s network with random weights: the pipeline is real,\n"
            "      the poses and the AP below are meaningless.",
            flush=True,
        )
        estimator = PoseEstimator.from_pretrained("coco_w18s", device=args.device, overrides=["test.base_size=384"])

    def report(message: str) -> None:
        print(f"grapepose demo: error: {message}", file=sys.stderr)

    failures: list[str] = []
    if photos is not None:
        sources, bad = expand_sources([str(photos)])
        failures += bad
        options = PredictOptions(args.out / "photos", score_threshold=0.1)
        summary = run_predict(estimator.predictor, sources, options, report)
        failures += summary.failures
        atomic_write_json(args.out / "photos" / "results.json", summary.results)
        print(f"photos: {summary.frames} images from {photos}, {len(summary.results)} people -> {args.out / 'photos'}")
    else:
        print("photos: none given (--photos DIR); only synthetic images are used")

    synth_dir = args.out / "synthetic"
    generate_dataset(synth_dir, "crowd", args.num_synthetic, size=args.size, seed=2026, keypoints="coco", progress=False,
                     overwrite=True)  # fmt: skip
    sources, bad = expand_sources([str(synth_dir / "images")])
    failures += bad
    options = PredictOptions(synth_dir / "drawn", score_threshold=0.0)
    summary = run_predict(estimator.predictor, sources, options, report)
    failures += summary.failures
    results_path = synth_dir / "results.json"
    atomic_write_json(results_path, summary.results)
    metrics = evaluate_results(summary.results, synth_dir / "annotations.json", kind="coco")
    label = "demo model" if trained else "UNTRAINED network"
    print(f"synthetic crowd: {summary.frames} images, {len(summary.results)} people -> {results_path}; "
          f"AP {metrics['AP']:.3f} against their ground truth (drawn: {synth_dir / 'drawn'})")
    print(format_metrics_table(metrics, f"{label} on synthetic crowd"))
    if failures:
        print(f"grapepose demo: {len(failures)} input(s) failed", file=sys.stderr)
        return 1
    return 0
