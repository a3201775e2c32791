"""`grapepose bench joints`: how well the per-joint confidence tells joints that are there from absent ones.

Runs a model on a COCO-format keypoint set whose annotations say which joints are labelled
(v = 2 visible, v = 1 occluded) and which are absent (v = 0; the synthetic generator writes v = 0
for joints outside the image and face points turned away from the camera), matches predicted
people to annotated ones by OKS (as COCO evaluation does) and reports, over the joints of matched
people, the ROC AUC of `Poses.joint_scores` for labelled against absent, and the shares of absent
and of labelled joints that `--min-joint-score` hides (`grapepose.evaluation.joints`).
"""

from __future__ import annotations

import argparse
from typing import Any

from grapepose.cli import options as opt

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from grapepose.visualize import MIN_JOINT_SCORE

    opt.add_weights(p, "model file (.safetensors, the authors' .pth.tar, .onnx) or 'demo' (default)", default="demo")
    opt.add_preset(p, "config for weights without an embedded one, e.g. crowdpose_w32")
    p.add_argument("--data", metavar="ROOT", required=True, help="image folder (file_name is relative to it)")
    p.add_argument("--ann", metavar="JSON", required=True, help="COCO-format keypoint annotation file")
    p.add_argument("--min-joint-score", type=opt.float_range(0.0, 1.0), default=MIN_JOINT_SCORE, metavar="T",
                   help=f"report the shares of joints hidden below T (default {MIN_JOINT_SCORE:g}, as drawings)")
    p.add_argument("--min-oks", type=opt.float_range(0.0, 1.0), default=0.5, metavar="X",
                   help="OKS at which a prediction matches an annotated person (default 0.5)")
    p.add_argument("--limit", type=opt.int_range(1), metavar="N", help="only the first N images (by id)")
    opt.add_test_flags(p, "the model's config")
    opt.add_precision(p, shown="the model's config")
    opt.add_device(p)
    opt.add_batch_size(p, 2, "images per forward pass (default 2)")
    opt.add_read_threads(p, 2)
    opt.add_overrides(p, "test.flip=false")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from collections import defaultdict

    from grapepose.api import PoseEstimator
    from grapepose.bench._timing import time_calls
    from grapepose.errors import GrapeposeError
    from grapepose.evaluation import ground_truth_images, read_image_as_stored
    from grapepose.evaluation.joints import JointSamples

    gt, images = ground_truth_images(args.ann, args.data, limit=args.limit)
    est = PoseEstimator.from_pretrained(args.weights, device=args.device, preset=args.preset,
                                        overrides=opt.flag_overrides(args), batch_size=args.batch_size)  # fmt: skip
    if est.spec.num_keypoints != gt.num_keypoints:
        raise GrapeposeError(f"{args.ann}: has {gt.num_keypoints} keypoints, the model {est.spec.num_keypoints}")
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in gt.annotations:
        by_image[a["image_id"]].append(a)
    samples = JointSamples(est.spec.sigmas, args.min_oks)
    skipped = 0

    def run_all() -> None:
        nonlocal skipped
        stream = est.predictor.iter_predict([im.path for im in images], reader=read_image_as_stored,
                                            workers=args.read_threads)  # fmt: skip
        for im, poses in zip(images, stream):
            if isinstance(poses, GrapeposeError):
                skipped += 1
                continue
            samples.add(poses, by_image[im.id])

    seconds = time_calls(run_all, 1).seconds
    if skipped == len(images):
        raise GrapeposeError(f"none of the {len(images)} images in {args.ann} could be read")
    cfg = est.config.test
    return {
        "weights": str(args.weights), "ann": str(args.ann), "images": len(images) - skipped, "skipped": skipped,
        "device": str(est.device), "precision": est.predictor.precision.name, "flip": cfg.flip,
        "scales": list(cfg.scales), "min_oks": args.min_oks, **samples.report(args.min_joint_score),
        "seconds": round(seconds, 1),
    }  # fmt: skip
