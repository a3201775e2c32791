"""`grapepose bench decode`: decoding time per image for planted outputs (docs/DESIGN.md, "Decoding").

Figures are medians (and minima, `best_ms`: on a shared machine the least disturbed run).
`--compare-old` also times the reference decoder (`grapepose.testing.reference_decode`: full-
resolution maps) in the same run, alternating with `decode` in blocks of `--block` calls, so a shared
or throttled machine slows both alike. The first `--warm` calls of each block are not timed: right
after the reference decoder, whose full-resolution maps sweep about 100 MB, the caches hold its
data, and the first calls of `decode` would pay for it. `--block 1` alternates call by call and
times every call.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

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
    p.add_argument("--block", type=opt.int_range(1), default=6, metavar="N",
                   help="with --compare-old: calls of one decoder in a row (default 6; 1: call by call)")
    p.add_argument("--warm", type=opt.int_range(0), default=2, metavar="N",
                   help="with --compare-old: untimed calls at the start of each block (default 2)")
    p.add_argument("--threads", type=opt.int_range(1), nargs="+",
                   help="CPU thread counts to measure (default: torch's current)")
    p.add_argument("--compare-old", action="store_true",
                   help="also time the reference decoder (full-resolution maps) in the same run")  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from grapepose.bench._timing import time_calls
    from grapepose.config import TestConfig
    from grapepose.inference import decode
    from grapepose.keypoints import keypoint_spec
    from grapepose.testing.planted import plant_outputs, random_people
    from grapepose.testing.reference_decode import reference_decode

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = (4 * args.grid, 4 * args.grid)
    spec = keypoint_spec(args.keypoints)
    cfg = TestConfig(flip=args.flip)
    decoders = {"ms_per_image": decode}
    if args.compare_old:
        decoders["old_ms_per_image"] = reference_decode

    def on_device(o: Any) -> Any:
        return type(o)(*(None if t is None else t.to(dev) for t in o))

    threads_before = torch.get_num_threads()
    thread_counts = args.threads or [threads_before]
    figures: dict[str, dict[str, dict[str, float]]] = {name: {} for name in decoders}
    best: dict[str, dict[str, dict[str, float]]] = {name: {} for name in decoders}
    found: dict[str, int] = {}
    try:
        for nt in thread_counts:
            torch.set_num_threads(nt)
            for name in decoders:
                figures[name][str(nt)], best[name][str(nt)] = {}, {}
            for n in args.people or [5, 15, 30]:
                people = [random_people(n, spec.num_keypoints, size, seed=i, min_gap=40) for i in range(args.batch)]
                out = on_device(plant_outputs(people, size))
                kw: dict[str, Any] = {}
                if args.flip:
                    fo = plant_outputs(people, size, flipped=True, flip_index=spec.flip_index)
                    kw = {"flipped": on_device(fo), "flip_index": spec.flip_index}
                times: dict[str, list[float]] = {name: [] for name in decoders}
                block = args.block if len(decoders) > 1 else 1
                warm = min(args.warm, block - 1) if block > 1 else 0  # untimed calls at the start of each block
                rounds = 2 + args.repeats if block == 1 else -(-args.repeats // (block - warm))

                def call(name: str, fn: Any) -> None:
                    with torch.inference_mode():  # as `Predictor` runs both (a few % for the reference one)
                        res = fn(out, cfg, **kw)  # noqa: B023 - called within this iteration
                    if name == "ms_per_image":
                        found[str(n)] = sum(len(r.scores) for r in res) // args.batch  # noqa: B023

                for i in range(rounds):
                    for name, fn in decoders.items():  # alternating: both see the same machine state
                        untimed, timed = (warm, block - warm) if block > 1 else ((1, 0) if i < 2 else (0, 1))
                        timing = time_calls(lambda: call(name, fn), timed, untimed, dev)  # noqa: B023
                        wanted = args.repeats - len(times[name])  # the last block may time more than needed
                        times[name] += [s * 1000.0 / args.batch for s in timing.calls[:wanted]]
                for name in decoders:
                    figures[name][str(nt)][str(n)] = round(statistics.median(times[name]), 2)
                    best[name][str(nt)][str(n)] = round(min(times[name]), 2)
    finally:
        torch.set_num_threads(threads_before)
    result: dict[str, Any] = {"device": str(dev), "grid": args.grid, "batch": args.batch, "flip": args.flip}
    single = len(thread_counts) == 1
    for name, per_threads in figures.items():
        result[name] = per_threads[str(thread_counts[0])] if single else per_threads
        fastest = best[name]
        result[name.replace("ms_per_image", "best_ms")] = fastest[str(thread_counts[0])] if single else fastest
    if single:
        result["threads"] = thread_counts[0]
    if args.compare_old:
        for key, table in (("speedup", figures), ("best_speedup", best)):
            new, old = table["ms_per_image"], table["old_ms_per_image"]
            ratio = {t: {n: round(old[t][n] / max(new[t][n], 1e-9), 1) for n in new[t]} for t in new}
            result[key] = ratio[str(thread_counts[0])] if single else ratio
    result["people_found"] = found
    return result
