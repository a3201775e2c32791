"""`grapepose bench decode`: decoding time per image for planted outputs (docs/DESIGN.md, "Decoding").

The planted outputs are what a perfect network would output for people at known joints: their
training targets (`build_targets`), visibility as logits of +-6, and for the flip test the targets
of the mirrored, `flip_shift`-ed input. Figures are medians (and minima, `best_ms`: on a shared
machine the least disturbed run).
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from grapepose.cli import options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=opt.int_range(0), action="append",
                   help="people per image (repeatable; default 5, 15, 30)")
    opt.add_device(p, default="cpu")
    p.add_argument("--grid", type=opt.int_range(1), default=128,
                   help="output grid side; the input is 4x (default 128)")
    p.add_argument("--keypoints", type=opt.int_range(1), default=14, help="K (default 14, CrowdPose)")
    opt.add_batch_size(p, 1, "images decoded together (default 1)", dest="batch")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True, help="merge flipped outputs too")
    iters = opt.int_range(1)
    p.add_argument("--iters", dest="repeats", type=iters, default=10, metavar="N",
                   help="timed runs (default 10, after 2 warm-up runs)")
    p.add_argument("--threads", type=opt.int_range(1), nargs="+",
                   help="CPU thread counts to measure (default: torch's current)")  # fmt: skip


_SIGMA, _CENTER_SIGMA = 2.0, 4.0  # grid cells: the training targets' sigmas on the default 128 grid


def _people(n: int, k: int, side: int, seed: int) -> np.ndarray:
    """`[n, K, 2]` joints (x, y) in pixels of a `side x side` input, each person in its own cell of a
    near-square layout (so that all of them are apart), at a random place in it, in a random pose."""
    rng = np.random.default_rng(seed)
    cols = max(1, math.ceil(math.sqrt(n)))
    cell = side / cols
    slot = rng.permutation(cols * cols)[:n]
    centers = (np.stack([slot % cols, slot // cols], -1) + 0.5 + rng.uniform(-0.15, 0.15, (n, 2))) * cell
    return centers[:, None] + rng.uniform(-0.3, 0.3, (n, k, 2)) * cell


def _outputs(people: Sequence[np.ndarray], grid: int, stride: int, flip_index: Sequence[int] | None = None,
             flip_shift: int = 0) -> Any:  # fmt: skip
    """A `GrapeOutput` for a batch of images with `people` (`[N, K, 2]` input pixels each) on a `grid x grid`
    output; with `flip_index`, the outputs of the mirrored input, shifted `flip_shift` px left."""
    import torch

    from grapepose.data.targets import build_targets
    from grapepose.models import GrapeOutput

    heat, offsets, vis = [], [], []
    for joints in people:
        joints = np.asarray(joints, dtype=np.float64)
        if flip_index is not None:
            joints = joints[:, list(flip_index)]
            joints[..., 0] = stride * grid - 1 - flip_shift - joints[..., 0]
        labelled = np.concatenate([joints / stride, np.ones((*joints.shape[:2], 1))], -1)
        t = build_targets(labelled, (grid, grid), sigma=_SIGMA, center_sigma=_CENTER_SIGMA)
        heat.append(t.heatmaps)
        offsets.append(t.offsets)
        vis.append(12.0 * t.visibility - 6.0)
    off = torch.from_numpy(np.stack(offsets))
    return GrapeOutput(torch.from_numpy(np.stack(heat)), off, off, torch.from_numpy(np.stack(vis)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from grapepose.bench._timing import time_calls
    from grapepose.config import TestConfig
    from grapepose.inference.decode import STRIDE, decode
    from grapepose.keypoints import keypoint_spec

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    spec = keypoint_spec(args.keypoints)
    cfg = TestConfig(flip=args.flip)

    def on_device(o: Any) -> Any:
        return type(o)(*(None if t is None else t.to(dev) for t in o))

    threads_before = torch.get_num_threads()
    thread_counts = args.threads or [threads_before]
    figures: dict[str, dict[str, float]] = {}
    best: dict[str, dict[str, float]] = {}
    found: dict[str, int] = {}
    try:
        for nt in thread_counts:
            torch.set_num_threads(nt)
            figures[str(nt)], best[str(nt)] = {}, {}
            for n in args.people or [5, 15, 30]:
                people = [_people(n, spec.num_keypoints, STRIDE * args.grid, seed=i) for i in range(args.batch)]
                out = on_device(_outputs(people, args.grid, STRIDE))
                kw: dict[str, Any] = {}
                if args.flip:
                    fo = _outputs(people, args.grid, STRIDE, spec.flip_index, cfg.flip_shift)
                    kw = {"flipped": on_device(fo), "flip_index": spec.flip_index}

                def call() -> None:
                    with torch.inference_mode():  # as `Predictor` runs it
                        res = decode(out, cfg, **kw)  # noqa: B023 - called within this iteration
                    found[str(n)] = sum(len(r.scores) for r in res) // args.batch  # noqa: B023

                timing = time_calls(call, args.repeats, 2, dev)
                times = [s * 1000.0 / args.batch for s in timing.calls]
                figures[str(nt)][str(n)] = round(statistics.median(times), 2)
                best[str(nt)][str(n)] = round(min(times), 2)
    finally:
        torch.set_num_threads(threads_before)
    result: dict[str, Any] = {"device": str(dev), "grid": args.grid, "batch": args.batch, "flip": args.flip}
    single = len(thread_counts) == 1
    result["ms_per_image"] = figures[str(thread_counts[0])] if single else figures
    result["best_ms"] = best[str(thread_counts[0])] if single else best
    if single:
        result["threads"] = thread_counts[0]
    result["people_found"] = found
    return result
