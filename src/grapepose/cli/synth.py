"""`grapepose synth`: write a synthetic crowd dataset in COCO keypoint format."""

from __future__ import annotations

import argparse
import json

from grapepose.cli import options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    from grapepose.synth.scene import MAX_SIZE, MIN_SIZE

    opt.add_scene(p, "sparse (few separated people), crowd (mixed) or hard (dense groups); default crowd",
                  default="crowd")  # fmt: skip
    p.add_argument("--num-images", type=opt.int_range(1), required=True, metavar="N",
                   help="number of images")
    p.add_argument("--size", type=opt.int_range(MIN_SIZE, MAX_SIZE), default=512, metavar="S",
                   help=f"image side in pixels ({MIN_SIZE} to {MAX_SIZE}, default 512)")
    p.add_argument("--seed", type=opt.int_range(0, opt.SEED_MAX), default=0, metavar="S",
                   help="dataset seed; image i depends only on (seed, i)")
    opt.add_out(p, "dir", "writes DIR/images/ and DIR/annotations.json (all at once at the end; DIR must be new "
                "or empty)", required=True)  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--keypoints", default="coco", metavar="SET", help="coco (17) or crowdpose (14); default coco")
    opt.add_workers(p, 1, "parallel processes (default 1)", lo=1)
    p.add_argument("--format", default="jpg", dest="fmt", metavar="EXT", help="jpg (default) or png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from grapepose.synth import generate_dataset
    from grapepose.io.files import check_output_path

    check_output_path(args.out, "dir")
    summary = generate_dataset(
        args.out, args.scene, args.num_images, size=args.size, seed=args.seed, keypoints=args.keypoints,
        workers=args.workers, fmt=args.fmt, progress=not args.no_progress, overwrite=args.overwrite,
    )  # fmt: skip
    print(json.dumps(summary))
    return 0
