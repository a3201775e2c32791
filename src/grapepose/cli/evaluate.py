"""`grapepose evaluate`: OKS AP/AR of a model (or of a results file) on a COCO-format keypoint set.

Under `torchrun` (WORLD_SIZE > 1) the images are sharded over the ranks and the results gathered
on rank 0, which writes them and scores them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from grapepose.cli import options as opt
from grapepose.config import TEST_MODES
from grapepose.errors import ConfigError, GrapeposeError

log = logging.getLogger(__name__)

_KINDS = ("coco", "crowdpose", "ochuman")


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt.add_weights(p, "model: a checkpoint (.safetensors, the authors' .pth/.pth.tar, .onnx), 'demo' or a preset "
                    "name (untrained)")
    p.add_argument("--results", metavar="JSON", help="score this COCO keypoint results file instead of a model")
    p.add_argument("--ann", metavar="JSON", required=True, help="COCO-format keypoint annotation file")
    p.add_argument("--data", metavar="ROOT", help="image folder (the annotation's file_name is relative to it)")
    opt.add_preset(p, "config preset for weights without an embedded config, e.g. crowdpose_w32")
    p.add_argument("--kind", choices=_KINDS, help="evaluation protocol (default: detected from the annotation)")
    p.add_argument("--mode", choices=list(TEST_MODES), help="test mode: default (1 scale + flip), fast (no flip), "
                   "reference (scales 0.5 1 2 + flip + fp16, as the authors' script)")  # fmt: skip
    opt.add_test_flags(p, "from --mode, else the model's config")
    opt.add_precision(p, shown="from --mode, else the model's config")
    opt.add_device(p)
    opt.add_batch_size(p, 1, "images per forward pass (default 1)")
    opt.add_read_threads(p, 2)
    p.add_argument("--limit", type=opt.int_range(1), metavar="N",
                   help="evaluate only the first N images (by id); they alone are scored")
    opt.add_out(p, "file", "write the COCO results here")
    opt.add_overrides(p, "test.nms_distance=0.1 (test.* keys only)")


def run(args: argparse.Namespace) -> int:
    from grapepose.io.files import check_output_path

    if bool(args.weights) == bool(args.results):
        raise ConfigError("give exactly one of --weights (run a model) or --results (score a results file)")
    bad = [o for o in args.overrides if not o.startswith("test.")]
    if bad:
        raise ConfigError(f"evaluate takes test.* overrides only (the model's own config is used), got {bad[0]}")
    if args.results:
        if args.out:
            raise ConfigError("--out writes a model's results; with --results there is nothing to write")
        ids = None
        if args.limit is not None:
            from grapepose.evaluation import annotated_images, load_annotation

            ids = [im.id for im in annotated_images(load_annotation(args.ann), ".", args.ann)][: args.limit]
        return _score(args.results, args, image_ids=ids)
    if not args.data:
        raise ConfigError("--weights needs --data (the image folder)")
    if args.out:
        check_output_path(args.out, "file")  # before the (long) evaluation
    return _run_model(args)


def _score(results: Any, args: argparse.Namespace, name: str | None = None, sigmas: Any = None,
           image_ids: list[int] | None = None) -> int:
    from grapepose.evaluation import evaluate_results, format_metrics_table

    metrics = evaluate_results(results, args.ann, args.kind, sigmas=sigmas, image_ids=image_ids)
    label = name or Path(args.results or args.weights).stem
    print(format_metrics_table(metrics, label))
    return 0


def _run_model(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from grapepose.api import PoseEstimator
    from grapepose.evaluation import ground_truth_images, read_image_as_stored
    from grapepose.io.files import atomic_write_json
    from grapepose.utils.distributed import cleanup_distributed, setup_distributed

    _, images = ground_truth_images(args.ann, args.data, args.kind, args.limit)  # before any work
    job = setup_distributed(args.device)
    rank, world = job.rank, job.world_size
    try:
        estimator = PoseEstimator.from_pretrained(
            args.weights, device=job.device, preset=args.preset, overrides=opt.flag_overrides(args),
            batch_size=args.batch_size,
        )  # fmt: skip
        shard = images[rank::world]
        results: list[dict[str, Any]] = []
        errors: list[tuple[int, str]] = []  # (image id, why it could not be used)
        stream = estimator.predictor.iter_predict(
            [im.path for im in shard], reader=read_image_as_stored, progress=rank == 0 and sys.stderr.isatty(),
            workers=args.read_threads,
        )  # fmt: skip
        for im, res in zip(shard, stream):
            if isinstance(res, GrapeposeError):
                errors.append((im.id, str(res)))
                continue
            if im.height and im.width and res.image_size != (im.height, im.width):
                log.warning("%s: image is %sx%s but the annotation says %sx%s", im.path, res.image_size[1],
                            res.image_size[0], im.width, im.height)  # fmt: skip
            results += res.to_coco(im.id)
        if world > 1:
            gathered: list[Any] | None = [None] * world if rank == 0 else None
            dist.gather_object((results, errors), gathered, dst=0)
            if rank != 0:
                return 0
            results = [r for part in gathered for r in part[0]]  # type: ignore[union-attr]
            errors = [e for part in gathered for e in part[1]]  # type: ignore[union-attr]
        results.sort(key=lambda r: (r["image_id"], -r["score"]))
        for _, e in errors:
            log.warning("skipped: %s", e)
        if errors:
            print(f"{len(errors)} of {len(images)} images could not be used (see warnings above); "
                  f"the scores are over the other {len(images) - len(errors)}", file=sys.stderr)  # fmt: skip
        unwritten: OSError | None = None
        if args.out:
            try:
                atomic_write_json(args.out, results)
                log.info("wrote %d results to %s", len(results), args.out)
            except OSError as failed:  # e.g. a full disk: the metrics of the whole evaluation are printed first
                unwritten = failed
        if len(errors) == len(images) and images:
            first = errors[0][1]
            raise GrapeposeError(f"none of the {len(images)} images in {args.ann} could be read (first: {first})")
        # Only the images predicted are scored (`--limit`, unreadable ones): a person in an image never
        # seen is not a miss of the model.
        failed = {i for i, _ in errors}
        ids = [im.id for im in images if im.id not in failed] if args.limit is not None or errors else None
        code = _score(results, args, Path(args.weights).stem, sigmas=estimator.spec.sigmas, image_ids=ids)
        if unwritten is not None:
            raise unwritten
        return code
    finally:
        cleanup_distributed()

