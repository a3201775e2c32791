"""The one device resolver and the one dtype resolver."""

from __future__ import annotations

import pytest
import torch

from grapepose.errors import ConfigError
from grapepose.utils.device import resolve_device, resolve_dtype


@pytest.mark.parametrize("spec", [None, "auto", ""])
def test_auto_is_cuda_when_available(spec):
    assert resolve_device(spec).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_and_device_objects():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["banana", "mps:x", "meta"])
def test_unknown_device_is_one_line(spec):
    with pytest.raises(ConfigError) as e:
        resolve_device(spec)
    assert str(e.value) == f"device {spec!r} is not one of auto, cpu, cuda, cuda:N"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda():
    with pytest.raises(ConfigError) as e:
        resolve_device("cuda:0")
    assert str(e.value) == "device 'cuda:0': CUDA is not available on this machine"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range():
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError) as e:
        resolve_device(f"cuda:{n}")
    assert str(e.value) == f"device 'cuda:{n}': this machine has {n} CUDA device(s)"
    assert resolve_device("cuda", local_rank=n) == torch.device("cuda", 0)


def test_dtypes():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("fp16", cpu) == torch.float16 and resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16
    with pytest.raises(ConfigError) as e:
        resolve_dtype("fp8", cpu, "train.amp")
    assert str(e.value) == "train.amp must be one of auto, fp32, bf16, fp16, got 'fp8'"
