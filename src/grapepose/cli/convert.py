"""`grapepose convert`: the authors' `.pth`/`.pth.tar` checkpoint (or any readable one) -> our safetensors."""

from __future__ import annotations

import argparse
import logging

from grapepose.cli import options as opt

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="checkpoint to convert (.pth, .pth.tar or .safetensors)")
    opt.add_out(p, "file", "output .safetensors file (written atomically)")
    opt.add_preset(p, "preset or YAML config giving the architecture and the config stored in the output "
                   "(default: inferred from the weights: K from the heatmap head, width from the backbone)")
    p.add_argument("--half", action="store_true", help="store weights as fp16 (BatchNorm stays fp32)")
    p.add_argument("--info", metavar="JSON", default=None,
                   help="a JSON object stored in the output as the model's record (how it was made: command, "
                        "data, held-out AP); replaces the record SRC carries")


def run(args: argparse.Namespace) -> int:
    from grapepose.errors import GrapeposeError
    from grapepose.models import load_model, save_model
    from grapepose.io.files import check_output_path

    if args.out is None:
        raise GrapeposeError("give the output file: --out OUT.safetensors")
    check_output_path(args.out, "file")  # before the checkpoint is read
    info = _read_info(args.info) if args.info is not None else None
    model = load_model(args.src, preset=args.preset)
    save_model(model, args.out, half=args.half, info=info)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.src} -> {args.out}: {model.config.name}, {n:,} parameters, {'fp16' if args.half else 'fp32'}")
    return 0


def _read_info(path: str) -> dict[str, object]:
    """The JSON object in `path` (one error line naming the file otherwise)."""
    from grapepose.errors import GrapeposeError
    from grapepose.io.files import read_json

    info = read_json(path, "--info")
    if not isinstance(info, dict):
        raise GrapeposeError(f"{path}: expected a JSON object, got a {type(info).__name__}")
    return info
