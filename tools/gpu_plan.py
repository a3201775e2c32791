"""What `./dev gpu-run` runs: phase budgets, the training and benchmark plans, and pure helpers.

Standard library only, like tools/gpu_run.py (the runner), which imports it from this folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

PHASES = ("install", "cuda_tests", "bench", "train", "export", "eval")


@dataclasses.dataclass(frozen=True)
class Budget:
    """Seconds each fixed phase may take (also its hard timeout); training gets what is left.

    The GPU figures are estimates: H200.md/KINDS.md (import torch + CUDA init ~5-10 s per process,
    cuDNN autotuning a few seconds per new shape) plus the CPU dry run, whose phases run the same
    code at toy size, so they measure the fixed costs (process starts, imports, collection). On the
    shared 2-core machine (load ~10, 2026-12-01) they took: install 9 s (mostly the env probe's
    imports), cuda_tests 13 s (collection; all skipped), bench 14 s (4 benches), train 12 s (of
    which 3 s probe + 1.5 s fitted run), export 7 s, eval 8 s: 81 s in all.
    """

    install_s: float  # carried wheels + `pip install --no-deps -e .` (~10 s) + an env probe (~8 s)
    cuda_tests_s: float  # pytest start + collection ~15 s, ~10 CUDA tests, a 2-process DDP step ~20 s
    bench_s: float  # one process: ~13 benches of 2-6 s each (W32 build + autotune dominate); the
    #                 ordered plan puts the figures docs/DESIGN.md compares first, so a cut loses the least
    export_s: float  # last.pt -> fp16 safetensors, one process without CUDA
    eval_s: float  # 200 held-out images: render (~3 s on 8 processes), predict + flip (~25 s), score
    margin_s: float  # process exits, summary writing, and slack before the device's 10-minute limit
    min_train_s: float  # below this the model is not worth a slot

    @property
    def fixed_s(self) -> float:
        return self.install_s + self.cuda_tests_s + self.bench_s + self.export_s + self.eval_s + self.margin_s

    @property
    def after_train_s(self) -> float:
        """Time kept free after training: export + eval + margin (~1.6 min)."""
        return self.export_s + self.eval_s + self.margin_s


# With --minutes 9: install 0.67 + tests 1 + bench 1.25 (2.9 min before training), training ~4.5
# (more when the phases before it finish early: its deadline is fixed from the start time), then
# export 0.25 + eval 1 + margin 0.33 (1.6 min).
GPU_BUDGET = Budget(install_s=40, cuda_tests_s=60, bench_s=75, export_s=15, eval_s=60, margin_s=20, min_train_s=60)
# The dry run (CPU, toy sizes) is generous per phase: the CPU machines are small and shared.
DRY_TRAIN_S = 12.0  # training time of a dry run, probe included
DRY_PHASE_TIMEOUT_S = 150.0

TRAIN_PRESET = "coco_w18s"
TRAIN_SCENE = "crowd"  # the synthetic scene preset trained and evaluated on
TRAIN_SEED = 0  # SyntheticSource seed of the training stream (also train.seed)
EVAL_SEED = 9_000_001  # held-out scenes: never a training seed (nor the demo's 2026)
EVAL_IMAGES = 200
GPU_TRAIN = {
    "size": 384, "batch": 32, "workers": 14, "steps_per_epoch": 50, "probe_s": 25.0, "restart_s": 6.0,
    "length": 1_000_000, "overrides": ["train.amp=bf16", "train.schedule=cosine", "train.warmup_steps=200",
                                       "train.lr=1e-3", "train.log_interval=50"],
}  # fmt: skip
DRY_TRAIN = {
    "size": 64, "batch": 2, "workers": 1, "steps_per_epoch": 2, "probe_s": 3.0, "restart_s": 1.0, "length": 64,
    "overrides": ["train.amp=fp32", "train.schedule=cosine", "train.warmup_steps=2", "train.log_interval=1"],
}  # fmt: skip
TINY_MODEL = ["model.d_model=32", "model.dim_feedforward=64", "model.nhead=2", "model.num_encoder_layers=1",
              "model.num_decoder_layers=1"]  # fmt: skip

# `grapepose bench TOPIC ARGS`, most important first (docs/DESIGN.md, "Reference speed": forward b1/b32, train b16).
GPU_BENCH = [
    ["forward", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "1", "--precision", "bf16",
     "--channels-last", "--device", "cuda", "--iters", "20", "--warmup", "5"],
    ["forward", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "32", "--precision", "bf16",
     "--channels-last", "--device", "cuda", "--iters", "10", "--warmup", "3"],
    ["train", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "16", "--precision", "bf16",
     "--device", "cuda", "--steps", "10", "--warmup", "3"],
    ["predict", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "1", "--precision", "bf16",
     "--device", "cuda", "--iters", "10"],
    ["decode", "--device", "cuda", "--batch-size", "1", "--iters", "10"],
    ["forward", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "16", "--precision", "bf16",
     "--channels-last", "--device", "cuda", "--iters", "10", "--warmup", "3"],
    ["forward", "--preset", "coco_w18s", "--size", "512", "--batch-size", "1", "--precision", "bf16", "--channels-last",
     "--device", "cuda", "--iters", "20", "--warmup", "5"],
    ["forward", "--preset", "coco_w18s", "--size", "512", "--batch-size", "32", "--precision", "bf16",
     "--channels-last", "--device", "cuda", "--iters", "10", "--warmup", "3"],
    ["train", "--preset", "coco_w18s", "--size", "384", "--batch-size", "32", "--precision", "bf16", "--device", "cuda",
     "--steps", "10", "--warmup", "3"],
    ["predict", "--preset", "coco_w18s", "--size", "512", "--batch-size", "1", "--precision", "bf16",
     "--device", "cuda", "--iters", "10"],
    ["predict", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "16", "--precision", "bf16",
     "--device", "cuda", "--iters", "5"],
    ["decode", "--device", "cuda", "--batch-size", "16", "--iters", "5"],
    ["forward", "--preset", "crowdpose_w32", "--size", "512", "--batch-size", "1", "--precision", "fp16",
     "--channels-last", "--device", "cuda", "--iters", "20", "--warmup", "5"],
]  # fmt: skip
# docs/DESIGN.md, Reference speed: the reference's own figures on an H100 (fp16), compared in summary.json.
REFERENCE_H100 = {"forward_b1_images_per_s": 21.0, "forward_b1_fp16_images_per_s": 21.0,
                  "forward_b32_images_per_s": 164.0, "train_b16_images_per_s": 48.0,
                  "train_b16_memory_gb": 50.0}  # fmt: skip

# `--fetch-wheels`: what the GPU machine lacks (KINDS.md lists what it has), for CPython 3.12.
# faster-coco-eval needs only numpy (there). pytest and pytest-timeout are there too, but travel
# as insurance: the install phase installs a carried wheel only when its package is missing.
WHEELS = ["faster-coco-eval==1.8.0", "pytest-timeout==2.4.0", "pytest==9.2.0", "pluggy==1.7.0", "iniconfig==2.3.1"]
WHEEL_PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                   "manylinux2014_x86_64", "manylinux1_x86_64"]  # fmt: skip
CARRY_LIMIT_MB = 40.0  # the device call moves 64 MiB in all; the repo itself is ~1 MiB


def cuda_test_files(root: Path = REPO / "tests") -> list[Path]:
    """Test files that hold a CUDA-only test (`torch.cuda.is_available()` in a skipif)."""
    return sorted(p for p in root.rglob("test_*.py") if "cuda.is_available()" in p.read_text(errors="replace"))


def _junit_counts(path: Path) -> dict[str, int]:
    import xml.etree.ElementTree as ET

    if not path.is_file():
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        for k in counts:
            counts[k] += int(s.get(k, 0))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dry_bench_plan(plan: list[list[str]]) -> list[list[str]]:
    """One benchmark per topic (the small model's where there is one) at toy size on the CPU.

    The flags are the GPU plan's, with small values; the bench job also parses every GPU entry.
    """
    small = {"--size": "64", "--batch-size": "1", "--iters": "1", "--warmup": "0", "--steps": "1",
             "--device": "cpu", "--precision": "fp32"}  # fmt: skip
    out = []
    for topic in dict.fromkeys(argv[0] for argv in plan):
        entries = [argv for argv in plan if argv[0] == topic]
        argv = next((a for a in entries if TRAIN_PRESET in a), entries[0])
        new = [small[prev] if prev in small else v for prev, v in zip(["", *argv], argv)]
        new += {"decode": ["--grid", "64", "--people", "3"], "predict": ["--no-flip"]}.get(topic, [])
        new += TINY_MODEL if topic in ("forward", "train") else []
        out.append(new)
    return out


def compare_reference(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Our CUDA figures next to the reference's H100 ones (docs/DESIGN.md, Reference speed), where both exist."""

    def find(topic: str, batch: int, dtype: str) -> dict[str, Any] | None:
        return next((x for x in lines if x.get("bench") == topic and x.get("batch") == batch and "w32" in
                     str(x.get("preset")) and x.get("dtype") == dtype and "cuda" in str(x.get("device"))),
                    None)  # fmt: skip

    out: dict[str, Any] = {}
    for key, topic, batch, dtype, field in (
        ("forward_b1_images_per_s", "forward", 1, "bf16", "images_per_s"),
        ("forward_b1_fp16_images_per_s", "forward", 1, "fp16", "images_per_s"),
        ("forward_b32_images_per_s", "forward", 32, "bf16", "images_per_s"),
        ("train_b16_images_per_s", "train", 16, "bf16", "images_per_s"),
        ("train_b16_memory_gb", "train", 16, "bf16", "peak_memory_gb"),
    ):
        line = find(topic, batch, dtype)
        ours = line.get(field) if line else None
        ref = REFERENCE_H100[key]
        out[key] = {"ours": ours, "ours_dtype": dtype, "reference_h100_fp16": ref,
                    "ratio": round(ours / ref, 2) if isinstance(ours, (int, float)) and ref else None}  # fmt: skip
    return out
