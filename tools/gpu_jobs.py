"""The jobs of `./dev gpu-run` that import grapepose, each run as its own child process.

    python tools/gpu_jobs.py JOB SPEC.json RESULT.json

JOB is env, bench, train, export or eval; SPEC is written by tools/gpu_run.py, RESULT is the job's
figures (written atomically, also part-way through where a kill could come). Each job goes through
the package's own commands and APIs (`grapepose bench|synth|evaluate`, `Trainer`, `save_model`).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("grapepose.gpu_run")


def _write(path: str | Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _cli(argv: list[str]) -> tuple[int, str]:
    """Run `grapepose ARGV` in this process; (exit status, what it printed on stdout)."""
    from grapepose.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: bad flags
            rc = int(e.code or 0) if isinstance(e.code, int) else 2
    return rc, buf.getvalue()


# ---------------------------------------------------------------------------------------- env
def job_env(spec: dict[str, Any], result: str) -> None:
    """Versions, the GPU and whether every package the run needs imports."""
    import importlib
    import platform

    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count()}  # fmt: skip
    missing = []
    for mod in ("grapepose", "torchvision", "timm", "cv2", "yaml", "safetensors", "faster_coco_eval", "tqdm",
                "tensorboard", "pytest", "pytest_timeout"):  # fmt: skip
        try:
            m = importlib.import_module(mod)
            info[f"version_{mod}"] = getattr(m, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - any import failure means it is missing
            missing.append(f"{mod} ({type(e).__name__})")
    if not any(m.startswith("grapepose ") for m in missing):
        info["grapepose_path"] = str(Path(importlib.import_module("grapepose").__file__).parent)
    if spec["device"] == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_count=torch.cuda.device_count(), gpu_memory_gb=round(p.total_memory / 2**30, 1),
                    capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda)  # fmt: skip
        for key, probe in (("cudnn", lambda: torch.backends.cudnn.version()),
                           ("bf16", lambda: torch.cuda.is_bf16_supported()),
                           ("nccl", lambda: str(torch.cuda.nccl.version()))):  # fmt: skip
            try:  # extras: a probe that fails must not fail the install phase
                info[key] = probe()
            except Exception as e:  # noqa: BLE001
                info[key] = f"unknown ({type(e).__name__})"
    info["missing"] = missing
    _write(result, info)
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------- bench
def job_bench(spec: dict[str, Any], result: str) -> None:
    """`grapepose bench` for each plan entry, one JSON line each into spec["out"] as it finishes."""
    import argparse

    import torch

    from grapepose.cli import bench as bench_cli

    invalid = []
    for argv in spec.get("validate", []):  # the dry run checks the GPU plan's flags without running it
        parser = argparse.ArgumentParser(prog="grapepose bench", exit_on_error=False)
        bench_cli.add_arguments(parser)
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                parser.parse_args(argv)
        except (SystemExit, argparse.ArgumentError) as e:
            invalid.append(f"GPU plan entry {' '.join(argv)}: {getattr(err, 'getvalue', lambda: '')().strip() or e}")
    out = Path(spec["out"])
    done = 0
    for argv in spec["plan"]:
        t0 = time.perf_counter()
        try:
            rc, text = _cli(["bench", *argv])
            lines = [x for x in text.splitlines() if x.startswith("{")]
            line = json.loads(lines[-1]) if rc == 0 and lines else {"bench": argv[0], "error": f"exit status {rc}"}
        except Exception as e:  # noqa: BLE001 - one failing benchmark must not stop the others
            line = {"bench": argv[0], "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        line["argv"] = " ".join(argv)
        line["wall_s"] = round(time.perf_counter() - t0, 2)
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        print(json.dumps(line), flush=True)
        done += 1
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    _write(result, {"done": done, "invalid": invalid})
    if invalid:
        print("\n".join(invalid), file=sys.stderr)


# ---------------------------------------------------------------------------------------- train
def job_train(spec: dict[str, Any], result: str) -> None:
    """Probe the throughput, fit the cosine schedule to the time left, train until the deadline.

    A probe run (a first `Trainer.fit` with a time limit) measures steady steps/s; the real run
    resumes from its `last.pt` with `train.epochs` set so that the schedule ends at the deadline
    (a resumed run follows its new `train.epochs`). `last.pt` is rewritten every
    `train.steps_per_epoch` steps, so a kill leaves a usable model for the export phase.
    """
    import torch

    from grapepose.config import load_config
    from grapepose.engine.setup import source_spec
    from grapepose.engine.trainer import Trainer
    from grapepose.synth import SyntheticSource

    class TimedTrainer(Trainer):
        """A Trainer that notes when each optimisation step ended (for the throughput)."""

        step_times: list[float]

        def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
            losses = super().train_step(batch)
            self.step_times.append(time.monotonic())
            return losses

    def steady_rate(times: list[float]) -> float | None:
        """Steps per second over the later two thirds of `times` (the first steps pay for warm-up)."""
        if len(times) < 4:
            return None
        k = len(times) // 3
        return (len(times) - 1 - k) / max(times[-1] - times[k], 1e-6)

    load_config(spec["preset"], [*spec["overrides"], *spec.get("validate_overrides", [])])  # dry run: GPU keys too
    import cv2

    cv2.setNumThreads(1)  # set before the DataLoader forks: 14 workers share 16 cores, one thread each
    deadline = float(spec["deadline"])
    out: dict[str, Any] = {"preset": spec["preset"], "scene": spec["scene"], "overrides": spec["overrides"]}

    def build(epochs: int, resume: bool) -> TimedTrainer:
        cfg = load_config(spec["preset"], [*spec["overrides"], f"train.epochs={epochs}"])
        source = SyntheticSource(spec["scene"], size=cfg.data.input_size, seed=cfg.train.seed, length=spec["length"],
                                 spec=source_spec(None, cfg))  # fmt: skip
        trainer = TimedTrainer(cfg, spec["run_dir"], source=source, device=spec["device"], workers=spec["workers"],
                               resume=resume, progress=False)  # fmt: skip
        trainer.step_times = []
        return trainer

    t0 = time.monotonic()
    probe = build(10_000, resume=False)  # a long schedule: the probe stays in the warm-up anyway
    spe, batch = probe.steps_per_epoch, probe.config.train.batch_size
    out["startup_s"] = round(time.monotonic() - t0, 1)
    t1 = time.monotonic()
    probe.fit(max_seconds=spec["probe_s"])
    rate = steady_rate(probe.step_times) or probe.step / max(time.monotonic() - t1, 1e-6)
    steps_done = probe.step
    out["probe"] = {"steps": steps_done, "seconds": round(time.monotonic() - t1, 1),
                    "images_per_s": round(rate * batch, 1)}  # fmt: skip
    del probe  # its DataLoader workers are gone with its batch iterator
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    left = deadline - time.time() - spec["restart_s"]
    total = steps_done + int(rate * max(left, 0) * 0.97)
    epochs = max(steps_done // spe + 1, total // spe)
    out.update(steps_planned=epochs * spe, epochs_planned=epochs, steps_per_epoch=spe, batch=batch)
    _write(result, out)
    log.info("probe: %.1f steps/s (%.0f img/s); schedule fitted to %d steps (%d epochs of %d)",
             rate, rate * batch, epochs * spe, epochs, spe)  # fmt: skip

    main = build(epochs, resume=True)
    t2 = time.monotonic()
    fit = main.fit(max_seconds=max(deadline - time.time(), 1.0))
    seconds = time.monotonic() - t2
    steady = steady_rate(main.step_times)
    out.update(
        steps=fit.step, images=fit.step * batch, finished=fit.finished, epochs_done=fit.epoch,
        train_s=round(time.monotonic() - t0, 1), main_s=round(seconds, 1),
        images_per_s=round((steady or (fit.step - steps_done) / max(seconds, 1e-6)) * batch, 1),
        last_losses={k: round(v, 5) for k, v in fit.last_losses.items()}, device=str(main.device),
        precision=main.precision.name, workers=spec["workers"],
    )  # fmt: skip
    if main.device.type == "cuda":
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated(main.device) / 2**30, 2)
    _write(result, out)
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------- export
def job_export(spec: dict[str, Any], result: str) -> None:
    """`run_dir/last.pt` -> fp16 safetensors with the config and the keypoint metadata inside."""
    import dataclasses
    import hashlib

    from grapepose.config import config_from_dict
    from grapepose.engine.checkpoint import load_state
    from grapepose.engine.setup import source_spec
    from grapepose.models import build_model, load_model, save_model

    path = Path(spec["run_dir"]) / "last.pt"
    if not path.is_file():
        raise SystemExit(f"{path}: no checkpoint (training wrote none)")
    state = load_state(path)
    cfg = config_from_dict(state["config"])
    kp = source_spec(None, cfg)
    data = dataclasses.replace(cfg.data, root="", ann="", val_root="", val_ann="", keypoint_names=kp.names,
                               flip_index=kp.flip_index, sigmas=kp.sigmas)  # fmt: skip
    cfg = dataclasses.replace(cfg, name="demo_dekr" if spec["ablation"] else "demo", data=data)
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    out = Path(spec["out"])
    save_model(model, out, cfg, half=True)
    size = out.stat().st_size
    if size > spec["limit_mib"] * 2**20:
        raise SystemExit(f"{out}: {size / 2**20:.1f} MiB, over the {spec['limit_mib']} MiB limit")
    load_model(out)  # it must load as shipped
    info = {"from": str(path), "step": int(state["step"]), "bytes": size, "mib": round(size / 2**20, 2),
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "config_name": cfg.name}  # fmt: skip
    _write(result, info)
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------- eval
def job_eval(spec: dict[str, Any], result: str) -> None:
    """Render a held-out set (`grapepose synth`), run `grapepose evaluate` on it, write eval.md."""
    from grapepose.evaluation import evaluate_results, format_metrics_table

    root = Path(spec["dir"])
    synth = ["synth", "--scene", spec["scene"], "--num-images", str(spec["num_images"]), "--size", str(spec["size"]),
             "--seed", str(spec["seed"]), "--out", str(root), "--workers", str(spec["workers"]),
             "--no-progress"]  # fmt: skip
    t0 = time.perf_counter()
    rc, text = _cli(synth)
    if rc:
        raise SystemExit(f"grapepose {' '.join(synth)}: exit status {rc}")
    made = json.loads([x for x in text.splitlines() if x.startswith("{")][-1])
    synth_s = time.perf_counter() - t0
    results = root / "results.json"
    evaluate = ["evaluate", "--weights", spec["weights"], "--data", str(root / "images"), "--ann",
                str(root / "annotations.json"), "--kind", "crowdpose", "--device", spec["device"],
                "--batch-size", str(spec["batch"]), "--out", str(results)]  # fmt: skip
    t1 = time.perf_counter()
    rc, text = _cli(evaluate)
    if rc:
        raise SystemExit(f"grapepose {' '.join(evaluate)}: exit status {rc}")
    eval_s = time.perf_counter() - t1
    metrics = evaluate_results(results, root / "annotations.json", kind="crowdpose")
    n = spec["num_images"]
    md = "\n".join([
        f"# {spec['label']} model on held-out synthetic `{spec['scene']}` scenes", "",
        f"{n} images of {spec['size']}² rendered with seed {spec['seed']} (training used seed {spec['train_seed']}); "
        "AP easy/medium/hard split by the images' `crowdIndex` at 0.2 and 0.8 (CrowdPose protocol), "
        "17 COCO keypoints with the COCO OKS sigmas.", "",
        format_metrics_table(metrics, spec["label"]), "",
        f"- scenes: {json.dumps({k: v for k, v in made.items() if k != 'annotations'})}",
        f"- commands: `grapepose {' '.join(synth)}` then `grapepose {' '.join(evaluate)}`",
        f"- weights: `{Path(spec['weights']).name}`; device {spec['device']}; "
        f"render {synth_s:.1f} s, predict + score {eval_s:.1f} s", "",
    ])  # fmt: skip
    Path(spec["md"]).write_text(md)
    info = {"metrics": metrics, "images": n, "seed": spec["seed"], "scenes": made, "synth_s": round(synth_s, 1),
            "evaluate_s": round(eval_s, 1), "images_per_s": round(n / max(eval_s, 1e-6), 1)}  # fmt: skip
    _write(result, info)
    print(md)


JOBS = {"env": job_env, "bench": job_bench, "train": job_train, "export": job_export, "eval": job_eval}

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    name, spec_path, result_path = sys.argv[1:4]
    JOBS[name](json.loads(Path(spec_path).read_text()), result_path)
