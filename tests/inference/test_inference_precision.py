"""The one precision resolver: names -> what runs, `auto`, and the CPU capability check (simulated CPUs)."""

from __future__ import annotations

import pytest
import torch

from grapepose._config_checks import RULES
from grapepose.config import PRECISIONS
from grapepose.errors import ConfigError
from grapepose.inference import precision as prec
from grapepose.inference.precision import AUTO_ENV, Precision, resolve_precision


CPU = torch.device("cpu")
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})  # bf16 and VNNI, no AMX
CASCADE_LAKE = frozenset({"avx2", "avx512f", "avx512_vnni"})  # VNNI only
OLD = frozenset({"avx2", "fma"})  # neither


@pytest.fixture
def cpu(monkeypatch):
    """Set the simulated CPU's flags and whether OpenVINO is installed: `cpu(flags, openvino=True)`."""
    monkeypatch.delenv(AUTO_ENV, raising=False)

    def simulate(flags: frozenset[str], openvino: bool = True) -> None:
        monkeypatch.setattr(prec, "cpu_features", lambda: flags)
        monkeypatch.setattr(prec, "openvino_available", lambda: openvino)

    return simulate


def test_config_rule_lists_every_precision():
    assert RULES["test.dtype"] == PRECISIONS


def test_auto_on_a_bf16_cpu_is_openvino_bf16(cpu):
    cpu(ZEN4)
    assert resolve_precision("auto", CPU) == Precision("bf16", "openvino", "bf16 (OpenVINO)")
    assert resolve_precision(None, CPU).name == "bf16"


@pytest.mark.parametrize(
    ("flags", "openvino", "note"),
    [
        (CASCADE_LAKE, True, "fp32 (this CPU has none of avx512_bf16, amx_bf16)"),
        (OLD, True, "fp32 (this CPU has none of avx512_bf16, amx_bf16)"),
        (ZEN4, False, "fp32 (bf16 on the CPU needs openvino: pip install 'grapepose[cpu]')"),
    ],
)
def test_auto_falls_back_to_fp32_and_says_why(cpu, flags, openvino, note):
    cpu(flags, openvino)
    assert resolve_precision("auto", CPU) == Precision("fp32", "torch", note)


def test_named_precisions_on_a_capable_cpu(cpu):
    cpu(ZEN4)
    assert resolve_precision("fp32", CPU) == Precision("fp32", "torch")
    assert resolve_precision("bf16", CPU) == Precision("bf16", "openvino")
    assert resolve_precision("int8", CPU) == Precision("int8", "openvino")
    assert resolve_precision("fp32", CPU).dtype == torch.float32
    assert resolve_precision("bf16", CPU).dtype == torch.float32  # no autocast around OpenVINO


@pytest.mark.parametrize(
    ("flags", "openvino", "name", "message"),
    [
        (OLD, True, "bf16", "--precision bf16: this CPU has none of avx512_bf16, amx_bf16; use fp32 or int8"),
        (CASCADE_LAKE, True, "bf16", "--precision bf16: this CPU has none of avx512_bf16, amx_bf16; use fp32 or int8"),
        (OLD, True, "int8", "--precision int8: this CPU has none of avx512_vnni, avx_vnni, amx_int8; use fp32"),
        (ZEN4, True, "fp16", "--precision fp16 needs CUDA; on the CPU use fp32, bf16 or int8"),
        (ZEN4, False, "int8", "--precision int8 on the CPU runs with OpenVINO, which is not installed: "
                              "pip install 'grapepose[cpu]'"),
        (ZEN4, True, "fp8", "--precision must be one of auto, fp32, bf16, fp16, int8, got 'fp8'"),
    ],
)  # fmt: skip
def test_unsupported_precision_is_one_line(cpu, flags, openvino, name, message):
    cpu(flags, openvino)
    with pytest.raises(ConfigError) as e:
        resolve_precision(name, CPU)
    assert str(e.value) == message


def test_int8_on_vnni_without_bf16(cpu):
    cpu(CASCADE_LAKE)
    assert resolve_precision("int8", CPU) == Precision("int8", "openvino")


def test_an_int8_file_decides_auto_and_refuses_other_precisions(cpu):
    cpu(CASCADE_LAKE)
    assert resolve_precision("auto", CPU, file_precision="int8") == Precision(
        "int8", "openvino", "int8 (the model file is int8)"
    )
    with pytest.raises(ConfigError) as e:
        resolve_precision("fp32", CPU, file_precision="int8")
    assert str(e.value) == "--precision fp32: the model file is quantized to int8; use --precision int8 or auto"
    cpu(OLD)
    with pytest.raises(ConfigError, match="none of avx512_vnni"):
        resolve_precision("auto", CPU, file_precision="int8")


def test_int8_is_refused_on_cuda():
    with pytest.raises(ConfigError) as e:
        resolve_precision("int8", torch.device("cuda"))
    assert str(e.value) == "--precision int8 runs on the CPU only; on cuda use bf16, fp16 or fp32"


def test_environment_pins_what_auto_means(cpu, monkeypatch):
    cpu(ZEN4)
    monkeypatch.setenv(AUTO_ENV, "fp32")
    assert resolve_precision("auto", CPU) == Precision("fp32", "torch")
    assert resolve_precision("bf16", CPU).name == "bf16"  # a named precision wins
    assert resolve_precision("auto", CPU, file_precision="int8").name == "int8"  # and so does an int8 file
    monkeypatch.setenv(AUTO_ENV, "fast")
    with pytest.raises(ConfigError) as e:
        resolve_precision("auto", CPU)
    assert str(e.value) == "GRAPEPOSE_PRECISION must be one of auto, fp32, bf16, fp16, int8, got 'fast'"


def test_cpu_supports_reads_the_flags(cpu):
    cpu(CASCADE_LAKE)
    assert prec.cpu_supports("int8") and not prec.cpu_supports("bf16") and prec.cpu_supports("fp32")


def test_cpu_features_parses_proc_cpuinfo():
    prec.cpu_features.cache_clear()
    flags = prec.cpu_features()
    assert isinstance(flags, frozenset)
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        assert flags == frozenset()
        return
    line = next((x for x in text.splitlines() if x.startswith("flags")), None)
    assert flags == (frozenset(line.split(":", 1)[1].split()) if line else frozenset())
