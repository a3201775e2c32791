"""`grapepose convert`: the authors' `.pth`/`.pth.tar` checkpoint (or any readable one) -> our safetensors."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="checkpoint to convert (.pth, .pth.tar or .safetensors)")
    p.add_argument("dst", metavar="DST", help="output .safetensors file (written atomically)")
    p.add_argument(
        "--preset",
        default=None,
        help="preset or YAML config giving the architecture and the config stored in DST "
        "(default: inferred from the weights: K from the heatmap head, width from the backbone)",
    )
    p.add_argument("--half", action="store_true", help="store weights as fp16 (BatchNorm stays fp32)")


def run(args: argparse.Namespace) -> int:
    from grapepose.models import load_model, save_model

    model = load_model(args.src, preset=args.preset)
    save_model(model, args.dst, half=args.half)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.src} -> {args.dst}: {model.config.name}, {n:,} parameters, {'fp16' if args.half else 'fp32'}")
    return 0
