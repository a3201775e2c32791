"""`./dev gpu-run` (tools/gpu_run.py): the dry run end to end on the CPU, bad input, failure isolation."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "gpu_run.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("gpu_run", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_run"] = module
    spec.loader.exec_module(module)
    return module


gpu_run = _load_tool()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`./dev gpu-run --dry-run`, with this test run's python instead of ./dev (which may reinstall)."""
    base = tmp_path_factory.mktemp("gpu_run")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(TOOL), "--dry-run", "--out", str(base / "out"), "--work", str(base / "work")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=REPO)
    return base / "out", proc


@pytest.mark.slow
def test_dry_run_writes_every_output_file(dry_run):
    out, proc = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = {"bench.jsonl", "tests.log", "train.log", "run.log", "demo.safetensors", "eval.md", "summary.json"}
    assert {p.name for p in out.iterdir()} == names
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # what comes back from the device
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry-run" and summary["failed_phases"] == []
    assert list(summary["phases"]) == list(gpu_run.PHASES)
    for name, phase in summary["phases"].items():
        assert phase["status"] == "ok" and phase["wall_s"] > 0, (name, phase)
    assert summary["env"]["torch"] == torch.__version__ and summary["env"]["missing"] == []
    assert summary["train"]["steps"] > 0 and summary["train"]["images_per_s"] > 0
    assert summary["phases"]["cuda_tests"]["tests"] >= 10  # every CUDA-only test was collected (and skipped)
    assert summary["files"]["demo.safetensors"] == (out / "demo.safetensors").stat().st_size


def test_dry_run_bench_has_one_json_line_per_topic(dry_run):
    out, _ = dry_run
    lines = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert [x["bench"] for x in lines] == ["forward", "train", "predict", "decode"]
    assert all("error" not in x and x["wall_s"] > 0 for x in lines), lines


def test_dry_run_model_loads_with_config_and_keypoint_metadata(dry_run):
    from safetensors import safe_open

    import grapepose
    from grapepose.keypoints import keypoint_spec

    out, _ = dry_run
    model = grapepose.load_model(out / "demo.safetensors")
    coco = keypoint_spec("coco")
    cfg = model.config
    assert cfg.name == "demo" and cfg.model.backbone == "hrnet_w18_small_v2" and cfg.model.global_context
    assert (cfg.data.keypoint_names, cfg.data.flip_index, cfg.data.sigmas) == (coco.names, coco.flip_index, coco.sigmas)
    with safe_open(str(out / "demo.safetensors"), framework="pt") as f:
        convs = [f.get_tensor(k).dtype for k in f.keys() if f.get_slice(k).get_shape().__len__() == 4]  # noqa: SIM118
    assert len(convs) > 100 and set(convs) == {torch.float16}  # an fp16 release (BatchNorm stays fp32)


def test_dry_run_eval_table_has_the_ap_columns(dry_run):
    out, _ = dry_run
    text = (out / "eval.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Model |"))
    assert [c.strip() for c in header.strip("|").split("|")][:10] == [
        "Model", "AP", "AP50", "AP75", "AR", "AR50", "AR75", "APeasy", "APmed", "APhard"]
    assert "seed 9000001 (training used seed 0)" in text
    assert "probe:" in (out / "train.log").read_text()


def test_minutes_below_the_fixed_phases_is_an_error(tmp_path, capsys):
    assert gpu_run.main(["--dry-run", "--minutes", "5", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "gpu-run: error: --minutes 5 is below the 5.5 minutes the phases need (install 0.667, CUDA tests 1, "
        "bench 1.25, export 0.25, eval 1, margin 0.333, training at least 1); give --minutes 5.5 or more\n"
    )
    assert not (tmp_path / "out").exists()


def test_unknown_phase_is_an_error(tmp_path, capsys):
    assert gpu_run.main(["--dry-run", "--only", "bench,trian", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "gpu-run: error: --only: unknown phase 'trian'; phases: install, cuda_tests, bench, train, export, eval\n"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_no_cuda_without_dry_run_names_the_fix(tmp_path, capsys):
    assert gpu_run.main(["--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"gpu-run: error: no CUDA device: torch {torch.__version__} under {sys.executable} sees none. Run this on "
        "the GPU machine (see docs/BENCHMARKS.md), or pass --dry-run to rehearse every phase on the CPU\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_failing_phase_is_recorded_and_the_later_phases_still_run(tmp_path):
    args = gpu_run.parse_args(["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    run = gpu_run.GpuRun(args)
    ran = []

    def failing():
        ran.append("install")
        raise gpu_run.PhaseFailed("pip could not install x", {"wheels_installed": ["x.whl"]})

    def buggy():
        ran.append("cuda_tests")
        raise KeyError("oops")

    def fine():
        ran.append("train")
        return {"steps": 3}

    assert run.run({"install": failing, "cuda_tests": buggy, "train": fine}) == 1
    assert ran == ["install", "cuda_tests", "train"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    phases = summary["phases"]
    assert phases["install"]["status"] == "failed" and phases["install"]["error"] == "pip could not install x"
    assert phases["install"]["wheels_installed"] == ["x.whl"]
    assert phases["cuda_tests"] == {"status": "failed", "error": "KeyError: 'oops'",
                                    "wall_s": phases["cuda_tests"]["wall_s"]}
    assert phases["train"]["status"] == "ok" and phases["train"]["steps"] == 3
    assert summary["failed_phases"] == ["install", "cuda_tests"]


def test_a_hanging_child_is_killed_at_its_time_limit(tmp_path):
    log = tmp_path / "x.log"
    sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
    child = gpu_run.run_child(sleeper, log, 2)
    assert child.rc is None and not child.ok and child.seconds < 30
    assert "started" in log.read_text() and "killed after 2 s (phase time limit)" in log.read_text()


def _skips_without_cuda(node: ast.FunctionDef) -> bool:
    return any("skipif" in ast.unparse(d) and "cuda" in ast.unparse(d) for d in node.decorator_list)


def test_every_cuda_only_test_is_selected_by_the_cuda_phase():
    """The cuda_tests phase runs `-k cuda` over `cuda_test_files()`: each CUDA-only test must be in it."""
    files = set(gpu_run.cuda_test_files())
    unselected = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and _skips_without_cuda(node):
                if path not in files or "cuda" not in node.name + path.stem:
                    unselected.append(f"{path.relative_to(REPO)}::{node.name}")
    assert unselected == []
    assert len(files) >= 5


def test_ablation_trains_without_global_context_into_its_own_files(tmp_path, monkeypatch):
    args = gpu_run.parse_args(["--dry-run", "--ablation", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"),
                               "--only", "train,export,eval"])  # fmt: skip
    run = gpu_run.GpuRun(args)
    specs = {}
    monkeypatch.setattr(run, "job", lambda name, spec, log, timeout: specs.setdefault(name, spec) and {})
    assert run.run() == 0
    assert "model.global_context=false" in specs["train"]["overrides"] and specs["export"]["ablation"] is True
    assert Path(specs["export"]["out"]).name == "demo_dekr.safetensors"
    assert Path(specs["eval"]["md"]).name == "eval_dekr.md"
    assert specs["eval"]["weights"] == specs["export"]["out"] and specs["train"]["run_dir"].endswith("run_dekr")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["summary_dekr.json"]


def test_cuda_figures_are_set_against_the_reference():
    lines = [{"bench": "forward", "preset": "crowdpose_w32", "device": "cuda", "dtype": "bf16", "batch": 32,
              "images_per_s": 328.0},
             {"bench": "forward", "preset": "coco_w18s", "device": "cuda", "dtype": "bf16", "batch": 32,
              "images_per_s": 999.0},
             {"bench": "train", "preset": "crowdpose_w32", "device": "cuda", "dtype": "bf16", "batch": 16,
              "images_per_s": 24.0, "peak_memory_gb": 25.0}]  # fmt: skip
    table = gpu_run.compare_reference(lines)
    assert table["forward_b32_images_per_s"] == {"ours": 328.0, "ours_dtype": "bf16", "reference_h100_fp16": 164.0,
                                                 "ratio": 2.0}  # fmt: skip
    assert table["train_b16_images_per_s"]["ratio"] == 0.5 and table["train_b16_memory_gb"]["ratio"] == 0.5
    assert table["forward_b1_images_per_s"]["ours"] is None  # not measured: no figure invented
