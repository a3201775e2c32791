"""`grapepose bench targets`: training-target generation ms/image (`build_targets`)."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np

from grapepose.bench._timing import time_calls
from grapepose.cli import options as opt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--people", type=opt.int_range(0), default=15, help="people per image")
    p.add_argument("--grid", type=opt.int_range(1), default=128, help="output grid side")
    p.add_argument("--keypoints", type=opt.int_range(1), default=14, help="keypoint types K")
    p.add_argument("--iters", type=opt.int_range(1), default=200, help="images timed")
    p.add_argument("--seed", type=opt.int_range(0, opt.SEED_MAX), default=0, help="scene seed")


def random_scene(rng: np.random.Generator, people: int, k: int, grid: int) -> np.ndarray:
    """`[people, k, 3]` joints in grid units: people spread over the grid, some joints unlabelled or outside."""
    centers = rng.uniform(0, grid, size=(people, 2))
    spread = rng.uniform(grid / 64, grid / 8, size=(people, 1))
    j = np.empty((people, k, 3))
    j[..., :2] = centers[:, None, :] + rng.normal(size=(people, k, 2)) * spread[..., None]
    j[..., 2] = rng.choice([0.0, 1.0, 2.0], size=(people, k), p=[0.2, 0.3, 0.5])
    return j


def _median_ms(fn: Any, scenes: list[np.ndarray], warmup: int = 0) -> float:
    """Median ms of `fn(scene)` over every scene, after `warmup` untimed calls on the first ones."""
    cycled = itertools.cycle(scenes)
    return time_calls(lambda: fn(next(cycled)), len(scenes), warmup).median_ms


def run(args: argparse.Namespace) -> dict[str, Any]:
    from grapepose.data.targets import build_targets

    rng = np.random.default_rng(args.seed)
    g = args.grid
    kw = {"sigma": g / 64, "center_sigma": g / 64 + 2}
    scenes = [random_scene(rng, args.people, args.keypoints, g) for _ in range(max(args.iters, 1))]
    out: dict[str, Any] = {"people": args.people, "grid": g, "keypoints": args.keypoints, "iters": len(scenes)}
    out["ms_per_image"] = round(_median_ms(lambda s: build_targets(s, (g, g), **kw), scenes, warmup=5), 3)
    return out
