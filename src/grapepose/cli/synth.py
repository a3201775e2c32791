"""`grapepose synth`: write a synthetic crowd dataset in COCO keypoint format."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="crowd", metavar="NAME",
                   help="sparse (few separated people), crowd (mixed) or hard (dense groups); default crowd")
    p.add_argument("--num-images", type=int, required=True, metavar="N", help="number of images")
    p.add_argument("--size", type=int, default=512, metavar="S", help="image side in pixels (64..4096, default 512)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; image i depends only on (seed, i)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes DIR/images/ and DIR/annotations.json (all at once at the end; DIR must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--keypoints", default="coco", metavar="SET", help="coco (17) or crowdpose (14); default coco")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="parallel processes (default 1)")
    p.add_argument("--format", default="jpg", dest="fmt", metavar="EXT", help="jpg (default) or png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from grapepose.synth import generate_dataset

    summary = generate_dataset(
        args.out, args.preset, args.num_images, size=args.size, seed=args.seed, keypoints=args.keypoints,
        workers=args.workers, fmt=args.fmt, progress=not args.no_progress, overwrite=args.overwrite,
    )  # fmt: skip
    print(json.dumps(summary))
    return 0
