"""Running the network with OpenVINO on the CPU: bf16 from a PyTorch model, int8 from a calibrated ONNX file.

OpenVINO won the measurements in docs/BENCHMARKS.md: its fused attention and convolutions in bf16
run the network 2-2.5x faster than PyTorch fp32 on a CPU with avx512_bf16. Converting a PyTorch
model (tracing it) takes about a minute for W32, so the converted graph is kept on disk
(`cache_dir()`), under a key made of the weights, the architecture and the library versions.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from grapepose.config import Config
from grapepose.errors import CheckpointError, GrapeposeError
from grapepose.export.onnx import FlatOutputs
from grapepose.inference.precision import cpu_supports
from grapepose.models.kernels import use_kernels
from grapepose.utils.signals import keep_signal_stack

__all__ = ["CACHE_ENV", "OpenVinoModel", "cache_dir", "model_key", "openvino_ir", "openvino_module"]

log = logging.getLogger(__name__)

CACHE_ENV = "GRAPEPOSE_CACHE"
_IR_NAME = "model.xml"


def _openvino():  # noqa: ANN202 - the module
    try:
        import openvino
    except ImportError:
        raise GrapeposeError("bf16 and int8 on the CPU run with OpenVINO: pip install 'grapepose[cpu]'") from None
    return openvino


def cache_dir() -> Path:
    """Where converted models are kept: `$GRAPEPOSE_CACHE`, else `$XDG_CACHE_HOME/grapepose` or ~/.cache/grapepose."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "grapepose"


def model_key(model: nn.Module, *parts: str) -> str:
    """A hex digest of `model`'s weights and architecture, the library versions and `parts`."""
    digest = hashlib.sha256()
    hparams = getattr(model, "hparams", None)
    versions = [torch.__version__, _openvino().__version__]
    digest.update(json.dumps([type(model).__name__, hparams, versions, parts], sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def openvino_ir(model: nn.Module) -> Path:
    """The OpenVINO IR (`.xml`, fp32 weights) of `model` in the cache, converted on first use.

    Batch, height and width stay dynamic. The cache entry is written in a temporary folder and
    renamed into place, so a stopped conversion leaves nothing half written.
    """
    ov = _openvino()
    folder = cache_dir() / "openvino" / model_key(model, "ir")
    if (folder / _IR_NAME).is_file():
        return folder / _IR_NAME
    log.info("converting the model for OpenVINO (once; kept in %s)", folder)
    wrapper = FlatOutputs(copy.deepcopy(model).float().cpu()).eval()
    # The own deformable conv (grid_sample + matmul: standard operators), whatever GRAPEPOSE_KERNELS says.
    with torch.no_grad(), warnings.catch_warnings(), use_kernels("own"), keep_signal_stack():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks, not for our users
        converted = ov.convert_model(
            wrapper, example_input=torch.zeros(1, 3, 128, 128), input=[ov.PartialShape([-1, 3, -1, -1])]
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the cache entry reads like any other folder
        ov.save_model(converted, str(tmp / _IR_NAME), compress_to_fp16=False)
        with contextlib.suppress(OSError):  # another process may have finished first: keep its copy
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / _IR_NAME


class OpenVinoModel(nn.Module):
    """A GRAPE network compiled by OpenVINO for the CPU, behind the network's interface.

    Args:
        source: an OpenVINO IR (`.xml`) or an ONNX file (`grapepose export`, fp32 or int8).
        precision: `bf16` (bf16 inference precision) or `int8` (an int8 file; its other operators
            run in bf16 where the CPU has bf16 instructions, else fp32).
        config: the model's config (default: none; `from_file` reads an ONNX file's own).
        threads: CPU threads (default: `torch.get_num_threads()`).
    """

    def __init__(
        self, source: str | os.PathLike[str], precision: str, config: Config | None = None, threads: int | None = None
    ) -> None:
        super().__init__()
        ov = _openvino()
        self.path, self.precision, self.config = Path(source), precision, config
        hint = "bf16" if cpu_supports("bf16") else "f32"
        settings = {
            "INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        }  # fmt: skip
        try:
            with keep_signal_stack():
                self.compiled = ov.Core().compile_model(str(self.path), "CPU", settings)
                self._request = self.compiled.create_infer_request()
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with multi-line messages
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{self.path}: OpenVINO cannot compile the model ({first})") from None
        self._lock = threading.Lock()  # one inference request, used by one caller at a time
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        """`[B, 3, H, W]` normalised float (H, W multiples of 64) -> `GrapeOutput` (float32, CPU)."""
        from grapepose.models import GrapeOutput

        x = np.ascontiguousarray(images.detach().float().cpu().numpy())
        with self._lock, keep_signal_stack():
            results = self._request.infer({0: x})
            outs = [torch.from_numpy(np.array(results[o])) for o in self.compiled.outputs]
        if len(outs) == 3:  # a network without the visibility head
            outs.append(None)  # type: ignore[arg-type]
        return GrapeOutput(*outs)


def openvino_module(
    model: nn.Module, precision: str, threads: int | None = None, base_size: int | None = None
) -> OpenVinoModel:
    """`model` (a PyTorch network) compiled by OpenVINO at `precision` (`bf16` or `int8`).

    int8 without a calibrated file calibrates on the default images (`calibration_images(None)`,
    `base_size` pixels: the test size, default `model.config.test.base_size`) once and keeps the
    file in the cache; `grapepose export --precision int8 --calibrate DIR` writes one calibrated on
    your own images.
    """
    config = getattr(model, "config", None)
    # One compiled module per model, precision and setting in this process (e.g. the per-request
    # test variants of `grapepose serve`); an in-place change of the weights makes a new one.
    key = (precision, threads or torch.get_num_threads(), base_size, sum(p._version for p in model.parameters()))
    held = _COMPILED.setdefault(model, {})
    if key not in held:
        held[key] = _compile(model, precision, config, threads, base_size)
    return held[key]


_COMPILED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, OpenVinoModel]] = weakref.WeakKeyDictionary()


def _compile(
    model: nn.Module, precision: str, config: Config | None, threads: int | None, base_size: int | None
) -> OpenVinoModel:
    if precision == "bf16":
        return OpenVinoModel(openvino_ir(model), "bf16", config, threads)
    if precision != "int8":
        raise GrapeposeError(f"OpenVINO runs bf16 or int8 here, not {precision}")
    from grapepose.export.quantize import calibration_images, quantize_int8
    from grapepose.inference.preprocess import network_input

    size = base_size or (config.test.base_size if config is not None else 512)
    path = cache_dir() / "int8" / f"{model_key(model, 'int8', str(size))}.onnx"
    if not path.is_file():
        images, about = calibration_images(None, size=size)
        log.info("quantizing the model to int8 on %s (once; kept in %s)", about, path.parent)
        path.parent.mkdir(parents=True, exist_ok=True)
        at_size = None if config is None else replace(config, test=replace(config.test, base_size=size))
        quantize_int8(model, path, [network_input(im, size) for im in images], at_size, about)
    return OpenVinoModel(path, "int8", config, threads)
