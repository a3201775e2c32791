"""`grapepose export`: write a model as an ONNX file (dynamic batch/height/width, standard operators).

By default only standard ONNX operators (the adaptive block as GridSample + MatMul, opset 18);
`--deform-op` keeps the ONNX DeformConv operator (opset 19) for runtimes that have it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from grapepose.errors import GrapeposeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, help="checkpoint (.safetensors or the authors' .pth.tar) or 'demo'")
    p.add_argument("--preset", default=None, help="config for checkpoints without one; alone: an untrained network")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="output format (onnx)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file, e.g. model.onnx")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18; 19 with --deform-op)")
    p.add_argument("--deform-op", action="store_true",
                   help="export the adaptive block as ONNX DeformConv (opset >= 19) instead of GridSample + MatMul")
    p.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"),
                   help="example input traced during export (multiples of 64; the file takes any)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the file with onnxruntime and compare with PyTorch (default: on)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="fp32 (default), or int8: convolutions quantized on calibration images, run with OpenVINO "
                   "(predict --weights FILE; see docs/EXPORT.md)")  # fmt: skip
    p.add_argument("--calibrate", metavar="DIR", default=None,
                   help="int8: folder of images to calibrate on, in name order (default: synthetic crowd scenes); "
                   "the same images give the same file")  # fmt: skip
    p.add_argument("--calibration-images", type=int, default=8, metavar="N",
                   help="int8: how many calibration images (default 8)")


def run(args: argparse.Namespace) -> int:
    import logging
    import time

    import torch

    from grapepose.api import resolve_weights
    from grapepose.config import PRESETS
    from grapepose.export.onnx import DEFAULT_OPSET, DEFORM_OP_MIN_OPSET, check_opset, export_onnx
    from grapepose.models import build_model, load_model
    from grapepose.io.files import check_output_path

    opset = args.opset if args.opset is not None else (DEFORM_OP_MIN_OPSET if args.deform_op else DEFAULT_OPSET)
    check_opset(opset, args.deform_op)  # before the (slow) model loading
    if args.weights is None and args.preset is None:
        raise GrapeposeError("give --weights (a checkpoint or 'demo') or --preset (an untrained network)")
    if any(s <= 0 or s % 64 for s in args.size):
        raise GrapeposeError(f"--size {args.size[0]} {args.size[1]}: height and width must be positive multiples of 64")
    if args.precision == "int8" and args.deform_op:
        raise GrapeposeError("--deform-op writes an fp32 file; int8 files keep the standard operators")
    if args.precision != "int8" and args.calibrate is not None:
        raise GrapeposeError("--calibrate is for --precision int8")
    if args.calibration_images < 1:
        raise GrapeposeError(f"--calibration-images must be >= 1, got {args.calibration_images}")
    check_output_path(args.out, "file")  # before the (slow) export
    if args.weights is None:
        if args.preset not in PRESETS:
            raise GrapeposeError(f"unknown preset {args.preset!r}; presets: {', '.join(PRESETS)}")
        logging.getLogger("grapepose").warning(
            "exporting an untrained %s network with random weights; its predictions are meaningless", args.preset
        )
        model = build_model(args.preset)
    else:
        model = load_model(resolve_weights(args.weights), preset=args.preset)
    if args.precision == "int8":
        return _export_int8(model, args)
    start = time.perf_counter()
    path = export_onnx(model, args.out, opset=opset, example_size=tuple(args.size), deform_op=args.deform_op)
    took = time.perf_counter() - start
    size_mb = path.stat().st_size / 1e6
    form = "DeformConv" if args.deform_op else "standard operators"
    print(f"wrote {path} ({size_mb:.1f} MB, opset {opset}, {form}) in {took:.1f} s")
    if args.check:
        from grapepose.inference.onnx_runtime import OnnxModel

        x = torch.randn(1, 3, *args.size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = model.eval()(x)
        got = OnnxModel(path)(x)
        diff = max(float((a - b).abs().max()) for a, b in zip(got, ref) if a is not None and b is not None)
        print(f"onnxruntime vs PyTorch on a {args.size[0]}x{args.size[1]} input: max abs difference {diff:.2e}")
        if not diff < 1e-3:
            path.unlink()
            raise GrapeposeError(f"{path}: onnxruntime output differs from PyTorch by {diff:.2e}; file removed")
    return 0


def _export_int8(model: Any, args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from grapepose.export.quantize import calibration_images, quantize_int8
    from grapepose.inference.preprocess import network_input

    size = model.config.test.base_size
    images, about = calibration_images(args.calibrate, args.calibration_images, size=size)
    start = time.perf_counter()
    path = quantize_int8(model, args.out, [network_input(im, size) for im in images], about=about)
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB, int8 convolutions, calibrated on {about}) in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    if args.check:
        import torch

        from grapepose.api import PoseEstimator

        from grapepose.errors import ConfigError

        try:
            est = PoseEstimator.from_onnx(path, device="cpu")
        except ConfigError as e:  # no OpenVINO or no VNNI here: the file is still good elsewhere
            print(f"not checked here: {e}")
            return 0
        x = torch.randn(1, 3, *args.size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = model.eval()(x)
            got = est.predictor.model(x)
        diff = max(float((a - b).abs().max()) for a, b in zip(got, ref) if a is not None and b is not None)
        scale = max(float(np.abs(r.numpy()).max()) for r in ref if r is not None)
        print(f"int8 ({type(est.predictor.model).__name__}) vs PyTorch fp32 on a {args.size[0]}x{args.size[1]} "
              f"noise input: max abs difference {diff:.2e} (outputs up to {scale:.2g})")  # fmt: skip
    return 0
