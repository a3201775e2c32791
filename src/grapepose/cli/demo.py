"""`grapepose demo`: the whole pipeline on bundled input, with an honest account of what ran.

It predicts on the crowd photos in `../shared/data/demo` (when present) and on freshly generated
synthetic crowd images, writes drawn images and COCO-results JSON, and scores the synthetic images
against their ground truth. With the bundled demo model the AP is meaningful; without it the
network is untrained and the output says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_SHARED_DEMO = Path("shared") / "data" / "demo"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder (default: outputs/demo)")
    p.add_argument("--weights", default="demo", help="checkpoint to run (default: the bundled demo model)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--num-synthetic", type=int, default=4, help="synthetic crowd images to generate and score")
    p.add_argument("--size", type=int, default=384, help="side of the synthetic images (default: 384)")
    p.add_argument("--photos", type=Path, default=None, help="folder of photos (default: ../shared/data/demo)")


def _find_photos(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        for candidate in (base / ".." / _SHARED_DEMO, base / _SHARED_DEMO):
            if candidate.is_dir():
                return candidate.resolve()
    return None


def run(args: argparse.Namespace) -> int:
    from grapepose.api import DEMO_WEIGHTS, PoseEstimator
    from grapepose.evaluation import evaluate_results, format_metrics_table
    from grapepose.io.files import atomic_write_json
    from grapepose.io.runner import PredictOptions, run_predict
    from grapepose.io.sources import expand_sources
    from grapepose.synth import generate_dataset

    trained = not (args.weights == "demo" and not DEMO_WEIGHTS.is_file())
    if trained:
        estimator = PoseEstimator.from_pretrained(args.weights, device=args.device)
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
    photos = _find_photos(args.photos)
    if photos is not None:
        sources, bad = expand_sources([str(photos)])
        failures += bad
        summary = run_predict(estimator, sources, PredictOptions(out_dir=args.out / "photos", score_threshold=0.1), report)
        failures += summary.failures
        atomic_write_json(args.out / "photos" / "results.json", summary.results)
        print(f"photos: {summary.frames} images from {photos}, {len(summary.results)} people -> {args.out / 'photos'}")
    else:
        print("photos: ../shared/data/demo not found; only synthetic images are used")

    synth_dir = args.out / "synthetic"
    generate_dataset(synth_dir, "crowd", args.num_synthetic, size=args.size, seed=2026, keypoints="coco", progress=False,
                     overwrite=True)  # fmt: skip
    sources, bad = expand_sources([str(synth_dir / "images")])
    failures += bad
    summary = run_predict(estimator, sources, PredictOptions(out_dir=synth_dir / "drawn", score_threshold=0.0), report)
    failures += summary.failures
    results_path = synth_dir / "results.json"
    atomic_write_json(results_path, summary.results)
    metrics = evaluate_results(summary.results, synth_dir / "annotations.json", kind="coco")
    label = "demo model" if trained else "UNTRAINED network"
    print(f"synthetic crowd: {summary.frames} images, {len(summary.results)} people -> {results_path}")
    print(format_metrics_table(metrics, f"{label} on synthetic crowd"))
    if failures:
        print(f"grapepose demo: {len(failures)} input(s) failed", file=sys.stderr)
        return 1
    return 0
