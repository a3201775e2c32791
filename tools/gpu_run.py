#!/usr/bin/env python3
"""`./dev gpu-run`: turn one short GPU slot into CUDA test results, a speed table and a trained demo model.

    ./dev gpu-run [--minutes 9] [--out DIR] [--ablation] [--dry-run] [--only PHASES]
    ./dev gpu-run --fetch-wheels        # on a CPU machine, before: fills .gpu/ (git-ignored, carried)

Phases, in order, each timed and each allowed to fail without stopping the later ones (docs/BENCHMARKS.md):
install, cuda_tests, bench, train, export, eval. DIR receives bench.jsonl, tests.log, train.log,
run.log, demo.safetensors, eval.md and summary.json (rewritten after every phase), with a `_dekr`
suffix under --ablation. Scratch files (the run directory, the held-out set) go to --work.

This file needs only the standard library: it runs under the GPU machine's own python3, whose
torch is preinstalled; the jobs that import grapepose live in tools/gpu_jobs.py and run as child
processes, so a crash or a hang in one of them costs only its phase.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
JOBS = Path(__file__).resolve().with_name("gpu_jobs.py")
CARRY = REPO / ".gpu"  # git-ignored; `--fetch-wheels` fills it, the device `run` call carries it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_plan.py beside this file, however it is started
from gpu_plan import (  # noqa: E402
    PHASES,
    GPU_BUDGET,
    DRY_TRAIN_S,
    DRY_PHASE_TIMEOUT_S,
    TRAIN_PRESET,
    TRAIN_SCENE,
    TRAIN_SEED,
    EVAL_SEED,
    EVAL_IMAGES,
    GPU_TRAIN,
    DRY_TRAIN,
    TINY_MODEL,
    GPU_BENCH,
    WHEELS,
    WHEEL_PLATFORMS,
    CARRY_LIMIT_MB,
    cuda_test_files,
    _junit_counts,
    _read_jsonl,
    dry_bench_plan,
    compare_reference,
)

class UsageError(Exception):
    """Bad command line: reported as one `gpu-run: error:` line, exit status 2."""


# ---------------------------------------------------------------------------------------- helpers
def _now() -> float:
    return time.time()


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])[-3000:]


def _say(msg: str) -> None:
    print(f"[gpu-run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclasses.dataclass
class Child:
    """Outcome of one child process."""

    rc: int | None  # None: killed at its timeout
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


def run_child(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> Child:
    """Run `cmd` in the repo with stdout+stderr appended to `log`; kill its whole process group at `timeout`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
        try:
            rc: int | None = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            rc = None
            out.write(f"\n[gpu-run] killed after {timeout:.0f} s (phase time limit)\n")
    return Child(rc, time.monotonic() - t0)


class PhaseFailed(Exception):
    """A phase's own failure; its message goes into summary.json."""


# ---------------------------------------------------------------------------------------- the run
class GpuRun:
    """One run of the programme: the phases, their shared paths and the summary."""

    def __init__(self, args: argparse.Namespace, t0: float | None = None) -> None:
        self.args = args
        self.dry = args.dry_run
        self.budget = GPU_BUDGET
        self.t0 = t0 or _now()  # the budget counts from the start of the command (the CUDA check included)
        self.end = self.t0 + args.minutes * 60  # everything must be over by then (minus the margin)
        self.out = Path(args.out).resolve()
        self.work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="grapepose-gpu-run-"))
        sfx = "_dekr" if args.ablation else ""
        self.files = {name: self.out / f"{name}{sfx}{ext}" for name, ext in (
            ("bench", ".jsonl"), ("tests", ".log"), ("train", ".log"), ("run", ".log"), ("demo", ".safetensors"),
            ("eval", ".md"), ("summary", ".json"))}  # fmt: skip
        self.run_dir = self.work / f"run{sfx}"
        self.site = self.work / "site"  # carried wheels go here when the environment is not writable
        self.summary: dict[str, Any] = {
            "programme": "tools/gpu_run.py", "mode": "dry-run" if self.dry else "gpu", "ablation": args.ablation,
            "model": "GRAPE" if not args.ablation else "DEKR-style (model.global_context=false)",
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.t0)), "minutes": args.minutes,
            "budget_s": dataclasses.asdict(self.budget), "phases": {}, "argv": sys.argv[1:],
        }  # fmt: skip

    # -- environment of every child: the repo's sources first, then wheels installed to the side
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(REPO / "src"), *([str(self.site)] if self.site.is_dir() else [])]
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("OMP_NUM_THREADS", "1" if self.dry else "8")
        return env

    def job(self, name: str, spec: dict[str, Any], log: Path, timeout: float) -> dict[str, Any]:
        """Run `tools/gpu_jobs.py NAME SPEC RESULT` and return its result dict."""
        spec_path = self.work / "specs" / f"{name}.json"
        result_path = self.work / "results" / f"{name}.json"
        _atomic_write(spec_path, json.dumps(spec, indent=1))
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.unlink(missing_ok=True)
        child = run_child([sys.executable, str(JOBS), name, str(spec_path), str(result_path)], log, timeout, self.env())
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
        result["child_s"] = round(child.seconds, 1)
        if not child.ok:
            why = "killed at its time limit" if child.rc is None else f"exit status {child.rc}"
            tail = _tail(log)
            last = (tail.splitlines() or [""])[-1].strip()
            raise PhaseFailed(f"{name} job {why}: {last}\n(log {log.name}:)\n{tail}", result)
        return result

    def save_summary(self) -> None:
        self.summary["wall_s"] = round(_now() - self.t0, 1)
        self.summary["files"] = {p.name: p.stat().st_size for p in self.files.values() if p.is_file()}
        _atomic_write(self.files["summary"], json.dumps(self.summary, indent=1, default=str) + "\n")

    def phase_timeout(self, seconds: float) -> float:
        return DRY_PHASE_TIMEOUT_S if self.dry else seconds

    # -- the phases ------------------------------------------------------------------------------
    def install(self) -> dict[str, Any]:
        """Carried wheels of missing packages, the project itself (no deps), then an environment probe."""
        info: dict[str, Any] = {}
        wheels = sorted((CARRY / "wheels").glob("*.whl"))
        missing = [w for w in wheels if not _installed(w.name.split("-")[0])]
        info["wheels_carried"] = [w.name for w in wheels]
        info["wheels_installed"] = [w.name for w in missing]
        log = self.files["run"]
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--disable-pip-version-check"]  # fmt: skip
        if missing:
            done = False
            if not self.dry:  # into the machine's environment (bare, ours for the slot)
                done = run_child([*pip, *map(str, missing)], log, 60).ok
            if not done:  # never touch this environment in a dry run: install to the side
                if not run_child([*pip, "--target", str(self.site), *map(str, missing)], log, 60).ok:
                    raise PhaseFailed(f"installing {', '.join(w.name for w in missing)} failed:\n{_tail(log)}", info)
                info["wheels_target"] = str(self.site)
        if self.dry:
            info["editable_install"] = "skipped in a dry run (children import src/ through PYTHONPATH)"
        else:
            child = run_child([*pip, "--no-build-isolation", "-e", str(REPO)], log, 90)
            info["editable_install"] = "ok" if child.ok else "failed; children import src/ through PYTHONPATH"
            self._link_shared_data(info)
        env = self.job("env", {"device": "cpu" if self.dry else "cuda"}, log, 60)
        self.summary["env"] = env
        if env.get("missing"):
            raise PhaseFailed(f"packages still missing: {', '.join(env['missing'])}", info)
        return info

    def _link_shared_data(self, info: dict[str, Any]) -> None:
        """The tests read ../shared/data beside the repo; on the GPU machine it comes carried in .gpu/."""
        target, carried = REPO.parent / "shared" / "data", CARRY / "shared_data"
        if not target.exists() and carried.is_dir():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(carried, target_is_directory=True)
                info["shared_data"] = f"linked {target} -> {carried}"
            except OSError as e:
                info["shared_data"] = f"could not link {target}: {e}"

    def cuda_tests(self) -> dict[str, Any]:
        """Every test guarded by `skipif(not torch.cuda.is_available())` (named *cuda*), with junit counts."""
        files = cuda_test_files()
        junit = self.work / "junit.xml"
        junit.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-k", "cuda",
               f"--junitxml={junit}", "-o", "timeout=120", *map(str, files)]  # fmt: skip
        child = run_child(cmd, self.files["tests"], self.phase_timeout(self.budget.cuda_tests_s), self.env())
        counts = _junit_counts(junit)
        info: dict[str, Any] = {"files": [str(f.relative_to(REPO)) for f in files], **counts}
        if not child.ok:
            why = "killed at its time limit" if child.rc is None else f"pytest exit status {child.rc}"
            raise PhaseFailed(f"{why}: {counts}; see {self.files['tests'].name}:\n{_tail(self.files['tests'])}", info)
        if not self.dry and counts.get("skipped"):
            info["warning"] = "tests skipped on the GPU machine; see tests.log (-rs lists why)"
        return info

    def bench(self) -> dict[str, Any]:
        plan = GPU_BENCH if not self.dry else dry_bench_plan(GPU_BENCH)
        self.files["bench"].unlink(missing_ok=True)
        spec = {"plan": plan, "out": str(self.files["bench"]), "validate": GPU_BENCH if self.dry else []}
        result = self.job("bench", spec, self.files["run"], self.phase_timeout(self.budget.bench_s))
        lines = _read_jsonl(self.files["bench"])
        self.summary["bench"] = lines
        self.summary["vs_reference_h100"] = compare_reference(lines)
        errors = [line for line in lines if "error" in line] + [{"error": e} for e in result.get("invalid", [])]
        info = {"lines": len(lines), "errors": len(errors)}
        if errors:
            raise PhaseFailed(f"{len(errors)} benchmark(s) failed: {errors[0]['error']}", info)
        return info

    def train(self) -> dict[str, Any]:
        cfg = DRY_TRAIN if self.dry else GPU_TRAIN
        start = _now()
        deadline = start + DRY_TRAIN_S if self.dry else self.end - self.budget.after_train_s
        if deadline - start < (1 if self.dry else self.budget.min_train_s / 2):
            raise PhaseFailed(f"only {deadline - start:.0f} s left for training; nothing trained")
        overrides = [*cfg["overrides"], f"train.seed={TRAIN_SEED}", f"train.batch_size={cfg['batch']}",
                     f"data.input_size={cfg['size']}", f"data.output_size={cfg['size'] // 4}",
                     f"test.base_size={cfg['size']}", f"data.num_workers={cfg['workers']}",
                     f"train.steps_per_epoch={cfg['steps_per_epoch']}",
                     *(TINY_MODEL if self.dry else []),
                     *(["model.global_context=false"] if self.args.ablation else [])]  # fmt: skip
        spec = {
            "preset": TRAIN_PRESET, "scene": TRAIN_SCENE, "overrides": overrides, "length": cfg["length"],
            "run_dir": str(self.run_dir), "device": "cpu" if self.dry else "cuda", "deadline": deadline,
            "probe_s": cfg["probe_s"], "restart_s": cfg["restart_s"], "workers": cfg["workers"],
            "validate_overrides": [*GPU_TRAIN["overrides"], "model.global_context=false"] if self.dry else [],
        }  # fmt: skip
        self.files["train"].unlink(missing_ok=True)
        # The child stops itself before the deadline; the kill after it is for a hang.
        result = self.job("train", spec, self.files["train"], deadline - _now() + 20)
        self.summary["train"] = result
        return {k: result.get(k) for k in ("steps", "images", "images_per_s", "finished")}

    def export(self) -> dict[str, Any]:
        spec = {"run_dir": str(self.run_dir), "out": str(self.files["demo"]), "ablation": self.args.ablation,
                "limit_mib": 16}  # fmt: skip
        self.files["demo"].unlink(missing_ok=True)
        result = self.job("export", spec, self.files["run"], self.phase_timeout(self.budget.export_s))
        self.summary["export"] = result
        return result

    def eval(self) -> dict[str, Any]:
        size = (DRY_TRAIN if self.dry else GPU_TRAIN)["size"]
        spec = {
            "weights": str(self.files["demo"]), "scene": TRAIN_SCENE, "num_images": 4 if self.dry else EVAL_IMAGES,
            "size": size, "seed": EVAL_SEED, "dir": str(self.work / "heldout"), "device": "cpu" if self.dry else "cuda",
            "workers": 1 if self.dry else 8, "batch": 1 if self.dry else 8, "md": str(self.files["eval"]),
            "label": "DEKR-style demo" if self.args.ablation else "demo", "train_seed": TRAIN_SEED,
        }  # fmt: skip
        # Whatever time is left before the margin, within the phase's own budget.
        timeout = self.phase_timeout(min(self.budget.eval_s, max(self.end - self.budget.margin_s - _now(), 10)))
        result = self.job("eval", spec, self.files["run"], timeout)
        self.summary["eval"] = result
        return {k: result.get("metrics", {}).get(k) for k in ("AP", "AP50", "AP75", "APeasy", "APmed", "APhard")}

    # -- driver ----------------------------------------------------------------------------------
    def run(self, phases: dict[str, Callable[[], dict[str, Any]]] | None = None) -> int:
        """Run the selected phases in order; a failing phase is recorded and the next one runs."""
        phases = phases or {name: getattr(self, name) for name in PHASES}
        selected = self.args.only or list(phases)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        _say(f"{self.summary['mode']} run, {self.args.minutes:g} min, out {self.out}, work {self.work}")
        failed = []
        for name, fn in phases.items():
            record: dict[str, Any] = {"status": "skipped"}
            if name in selected:
                _say(f"{name} ...")
                t = time.monotonic()
                try:
                    record = {"status": "ok", **(fn() or {})}
                except PhaseFailed as e:
                    extra = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], dict) else {}
                    record = {"status": "failed", "error": str(e.args[0]), **extra}
                except Exception as e:  # a bug in this programme must not cost the later phases either
                    record = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
                record["wall_s"] = round(time.monotonic() - t, 1)
                if record["status"] != "ok":
                    failed.append(name)
                _say(f"{name}: {record['status']} in {record['wall_s']} s"
                     + (f" -- {record['error'].splitlines()[0]}" if "error" in record else ""))  # fmt: skip
            self.summary["phases"][name] = record
            self.save_summary()
        self.summary["failed_phases"] = failed
        self.save_summary()
        _say(f"done in {self.summary['wall_s']} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all phases ok")
             + f"; summary {self.files['summary']}")  # fmt: skip
        return 1 if failed else 0


# ---------------------------------------------------------------------------------------- pieces
def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist.replace("_", "-"))
        return True
    except metadata.PackageNotFoundError:
        return False


def fetch_wheels(dest: Path = CARRY) -> int:
    """Fill DEST (git-ignored) with the wheels the GPU machine lacks and the test fixtures; report its size."""
    wheels = dest / "wheels"
    if wheels.is_dir():
        shutil.rmtree(wheels)  # one version of each: two would stop the whole install there
    wheels.mkdir(parents=True)
    plat = [a for p in WHEEL_PLATFORMS for a in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *plat, "-d", str(wheels), *WHEELS]  # fmt: skip
    _say(" ".join(cmd))
    if subprocess.run(cmd).returncode:
        raise UsageError("pip download failed (see above); it needs PyPI access on this machine")
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        if (dest / "shared_data").exists():
            shutil.rmtree(dest / "shared_data")
        shutil.copytree(shared, dest / "shared_data")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 2**20
    names = sorted(p.name for p in wheels.iterdir())
    _say(f"{dest}: {size:.1f} MiB ({len(names)} wheels: {', '.join(names)}; test fixtures: {shared.is_dir()})")
    if size > CARRY_LIMIT_MB:
        raise UsageError(f"{dest} is {size:.1f} MiB, over the {CARRY_LIMIT_MB:g} MiB that may travel with the repo")
    return 0


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--minutes: {text!r} is not a number") from None
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="./dev gpu-run", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--minutes", type=_minutes, default=9.0,
                   help="wall-clock budget of the whole run (default 9: ends before the device's 10-minute limit)")
    p.add_argument("--out", default="outputs/gpu-run", help="result folder (default outputs/gpu-run)")
    p.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    p.add_argument("--ablation", action="store_true", help="train the DEKR-style variant (model.global_context=false)")
    p.add_argument("--dry-run", action="store_true", help="every phase on the CPU at toy size (seconds each)")
    p.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=None,
                   metavar="PHASES", help=f"comma-separated subset of: {', '.join(PHASES)}")  # fmt: skip
    p.add_argument("--fetch-wheels", action="store_true",
                   help=f"on a CPU machine with PyPI: fill {CARRY.name}/ with what the GPU machine lacks, then stop")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Bad input is found before anything starts."""
    if args.only:
        unknown = [x for x in args.only if x not in PHASES]
        if unknown:
            raise UsageError(f"--only: unknown phase {unknown[0]!r}; phases: {', '.join(PHASES)}")
    need = (GPU_BUDGET.fixed_s + GPU_BUDGET.min_train_s) / 60
    if args.minutes < need:
        b = GPU_BUDGET
        parts = ", ".join(f"{k} {v / 60:.3g}" for k, v in (
            ("install", b.install_s), ("CUDA tests", b.cuda_tests_s), ("bench", b.bench_s), ("export", b.export_s),
            ("eval", b.eval_s), ("margin", b.margin_s), ("training at least", b.min_train_s)))  # fmt: skip
        raise UsageError(f"--minutes {args.minutes:g} is below the {need:g} minutes the phases need ({parts}); "
                         f"give --minutes {need:g} or more")  # fmt: skip
    if not args.dry_run:
        reason = _cuda_missing()
        if reason:
            raise UsageError(f"no CUDA device: {reason}. Run this on the GPU machine (see docs/BENCHMARKS.md), "
                             "or pass --dry-run to rehearse every phase on the CPU")  # fmt: skip


def _cuda_missing() -> str | None:
    """Why CUDA cannot be used by this python, or None (asked in a child: this process stays torch-free)."""
    code = "import torch; print(torch.__version__, torch.cuda.is_available())"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return "`import torch` did not finish in 120 s"
    if proc.returncode:
        return f"{sys.executable} cannot import torch ({(proc.stderr.strip().splitlines() or ['?'])[-1]})"
    version, available = proc.stdout.split()
    return None if available == "True" else f"torch {version} under {sys.executable} sees none"


def main(argv: list[str] | None = None) -> int:
    t0 = _now()
    try:
        args = parse_args(argv)
        if args.fetch_wheels:
            return fetch_wheels()
        check_args(args)
    except UsageError as e:
        print(f"gpu-run: error: {e}", file=sys.stderr)
        return 2
    return GpuRun(args, t0).run()


if __name__ == "__main__":
    sys.exit(main())
