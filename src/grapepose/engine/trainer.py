"""The training loop: one process or one rank of a `torchrun` DDP job.

Example:
    >>> trainer = Trainer(load_config("crowdpose_w32"), "runs/cp", device="cuda")
    >>> trainer.fit()                       # resumes from runs/cp/last.pt when it exists

A run directory holds `config.yaml`, TensorBoard logs (`tb/`), `last.pt` (the resumable state,
written atomically after every epoch, every `train.checkpoint_interval` steps and when `fit`
stops early), `best.safetensors` (best validation AP) and `final.safetensors`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from grapepose.config import Config, config_from_dict, config_to_dict, load_config
from grapepose.engine import checkpoint as ckpt
from grapepose.engine.losses import GrapeLoss
from grapepose.engine.monitor import Monitor
from grapepose.engine.optim import build_optimizer, build_scheduler
from grapepose.engine.precision import resolve_precision
from grapepose.engine.sampling import BatchStream
from grapepose.engine.setup import build_train_source, check_people, initialize_weights, seed_everything, source_spec
from grapepose.engine.step import apply_update, forward_backward
from grapepose.errors import CheckpointError, ConfigError, GrapeposeError
from grapepose.io.files import atomic_write_text
from grapepose.utils.distributed import all_reduce_mean, barrier, broadcast_, setup_distributed
from grapepose.utils.memory import retain_freed_memory

__all__ = ["Trainer", "FitResult", "NonFiniteLossError"]

log = logging.getLogger(__name__)


class NonFiniteLossError(GrapeposeError):
    """The loss became NaN or infinite; the run stopped before the bad optimizer step."""


@dataclass(frozen=True)
class FitResult:
    """Where `fit` stopped."""

    step: int  # optimisation steps done
    epoch: int  # epochs completed (= the 0-based epoch a resumed run continues in)
    steps_per_epoch: int
    finished: bool  # all `train.epochs` done
    best_ap: float  # -1 without validation
    last_losses: dict[str, float]


class Trainer:
    """Trains a GRAPE network on one device (a DDP rank when started by torchrun).

    Args:
        config: resolved config, preset name or YAML path.
        run_dir: output folder (None: nothing written, no resume).
        source: training sample source (`len`, `load(i) -> Sample`); None: `KeypointDataset` of
            `config.data.root/ann`.
        val_source: validation `KeypointDataset` (None: from `config.data.val_root/val_ann`, if set).
        device: "cpu", "cuda" or None (CUDA when available).
        workers: DataLoader workers (None: `config.data.num_workers`).
        weights: initialise from this trained model (ignored when resuming).
        init_backbone: initialise the backbone from HRNet ImageNet weights (ignored when resuming).
        resume: continue from `run_dir/last.pt` when it exists.
        progress: show a tqdm bar on rank 0.
    """

    def __init__(self, config: Config | str, run_dir: str | os.PathLike[str] | None = None, *,
                 source: Any = None, val_source: Any = None, device: str | torch.device | None = None,
                 workers: int | None = None, weights: str | os.PathLike[str] | None = None,
                 init_backbone: str | os.PathLike[str] | None = None, resume: bool = True,
                 progress: bool = True) -> None:  # fmt: skip
        from grapepose.data import TrainingDataset
        from grapepose.models import build_model

        self.config = cfg = load_config(config)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dist = setup_distributed(device)
        self.device = self.dist.device
        if self.device.type == "cpu":  # a CPU step's large tensors would each fault in new pages
            retain_freed_memory()
        tcfg = cfg.train
        seed_everything(tcfg.seed, tcfg.deterministic)
        self.precision = resolve_precision(tcfg.amp, self.device)
        self.progress = progress and self.dist.is_main

        # Data: the same shuffled stream on every rank, split by DistributedSampler.
        source = source if source is not None else build_train_source(cfg)
        check_people(source)
        self.spec = source_spec(source, cfg)
        # The keypoint spec is resolved here, once (from the dataset's JSON), and saved with every file.
        self.config = cfg = dataclasses.replace(cfg, keypoints=self.spec)
        dataset = TrainingDataset(source, self.spec, cfg.data, train=True, seed=tcfg.seed)
        workers = cfg.data.num_workers if workers is None else workers
        workers = min(workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else workers)
        self.stream = BatchStream(dataset, tcfg.batch_size, self.dist.rank, self.dist.world_size, tcfg.seed,
                                  workers, pin_memory=self.device.type == "cuda")  # fmt: skip
        self.steps_per_epoch = tcfg.steps_per_epoch or self.stream.batches_per_pass
        self.val_source = val_source
        if self.val_source is None and cfg.data.val_ann:
            from grapepose.data import KeypointDataset

            self.val_source = KeypointDataset.from_config(cfg.data, val=True)
        check_people(self.val_source, "validate")

        # Model: identical initial weights on every rank (DDP also broadcasts rank 0's).
        torch.manual_seed(tcfg.seed)
        model = build_model(cfg)
        self.model: nn.Module = model
        self.step, self.best_ap = 0, -1.0
        self.seconds_per_step = 0.0  # mean time of this run's steps (saved, so a resumed chunk can check its limit)
        resuming = self._resume_wanted(resume)
        if not resuming:
            initialize_weights(model, weights, init_backbone)
        elif weights or init_backbone:
            log.info("resuming: --weights / --init-backbone are ignored")
        model.to(self.device)
        if self.device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        if self.dist.distributed and tcfg.sync_bn:
            if self.device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same parameters, new BN modules
                self.model = model
            else:
                log.warning("train.sync_bn needs CUDA; using per-process BatchNorm on %s", self.device)
        self.optimizer = build_optimizer(model, tcfg)
        self.scheduler = build_scheduler(self.optimizer, tcfg, self.steps_per_epoch)
        self.scaler = self.precision.scaler()
        self.criterion: nn.Module = GrapeLoss.from_config(tcfg)
        if resuming:
            self._load(self.run_dir / "last.pt")  # type: ignore[operator]
        self.net: nn.Module = model
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.history: collections.deque[dict[str, float]] = collections.deque(maxlen=10_000)
        self._last_saved_step = self.step if resuming else -1
        self._deadline: float | None = None  # set by `fit(max_seconds=...)`
        if self.dist.is_main and self.run_dir is not None:
            stale = ckpt.remove_stale_temporaries(self.run_dir)
            if stale:
                log.warning("%s: removed %d half-written file(s) of an interrupted run (%s)", self.run_dir,
                            len(stale), ", ".join(p.name for p in stale))  # fmt: skip
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        log.info(
            "training %s on %d x %s (%s), %d images/step, %d steps/epoch, %d epochs",
            cfg.name, self.dist.world_size, self.device, self.precision.name,
            tcfg.batch_size * self.dist.world_size, self.steps_per_epoch, tcfg.epochs,
        )  # fmt: skip

    # ---------------------------------------------------------------- resume / save
    def _resume_wanted(self, resume: bool) -> bool:
        if not resume or self.run_dir is None:
            return False
        here = torch.tensor([float((self.run_dir / "last.pt").is_file())], device=self.device)
        seen = all_reduce_mean(here).item()
        if 0.0 < seen < 1.0:
            raise CheckpointError(f"{self.run_dir / 'last.pt'}: visible on some ranks only; put the run "
                                  "directory on a filesystem every node shares")  # fmt: skip
        return seen == 1.0

    def _load(self, path: Path) -> None:
        state = ckpt.load_state(path)
        saved = config_from_dict(state["config"])
        if saved.model != self.config.model:
            diff = [k for k in config_to_dict(self.config)["model"]
                    if getattr(saved.model, k) != getattr(self.config.model, k)]  # fmt: skip
            raise CheckpointError(f"{path}: saved for another network (model.{diff[0]} differs); "
                                  "use a new --out to start a new run")  # fmt: skip
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{path}: model weights do not fit ({str(e).splitlines()[0]})") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_ap = float(state.get("best_ap", -1.0))
        self.seconds_per_step = float(state.get("seconds_per_step", 0.0))
        if int(state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            log.warning("%s: steps per epoch changed from %s to %d; epoch boundaries move",
                        path, state.get("steps_per_epoch"), self.steps_per_epoch)  # fmt: skip
        rng = state["rng"]
        ranks = rng.get("ranks")
        ckpt.restore_rng(ranks[self.dist.rank] if ranks and self.dist.rank < len(ranks) else rng)
        log.info("resuming from %s at epoch %d, step %d", path, self.step // self.steps_per_epoch, self.step)

    def state_dict(self) -> dict[str, Any]:
        """The resumable state (tensors and plain data only)."""
        return {
            "version": ckpt.STATE_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": self.step // self.steps_per_epoch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "best_ap": self.best_ap,
            "seconds_per_step": self.seconds_per_step,
            "rng": self._gather_rng(),
            "config": config_to_dict(self.config),
        }

    def _gather_rng(self) -> dict[str, Any]:
        """This rank's RNG states; in DDP also every rank's torch/CUDA states under `ranks`."""
        mine = ckpt.capture_rng()
        if not self.dist.distributed:
            return mine
        import torch.distributed as dist

        ranks: list[dict[str, Any]] = [dict(mine) for _ in range(self.dist.world_size)]
        for key in ("torch", "cuda"):  # the generators dropout draws from differ per rank
            if key not in mine:
                continue
            local = mine[key].to(self.device)
            gathered = [torch.empty_like(local) for _ in range(self.dist.world_size)]
            dist.all_gather(gathered, local)
            for r, t in enumerate(gathered):
                ranks[r][key] = t.cpu()
        return dict(mine, ranks=ranks)

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's BatchNorm statistics (DDP only syncs them at the next forward)."""
        if self.dist.distributed:
            for buf in self.model.buffers():
                broadcast_(buf)

    def save(self) -> None:
        """Write `last.pt` (rank 0 writes; every rank takes part in gathering RNG states)."""
        self._sync_buffers()
        state = self.state_dict()
        if self.dist.is_main and self.run_dir is not None:
            ckpt.save_state(self.run_dir / "last.pt", state)
            log.debug("saved %s at step %d", self.run_dir / "last.pt", self.step)
        self._last_saved_step = self.step

    def _export(self, name: str) -> None:
        if self.dist.is_main and self.run_dir is not None:
            from grapepose.models import save_model

            save_model(self.model, self.run_dir / name, self.config)

    # ---------------------------------------------------------------- training
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step; returns the losses averaged over the ranks."""
        losses = forward_backward(self.net, batch, self.criterion, self.precision, self.scaler, self.optimizer,
                                  self.device)  # fmt: skip
        names = list(losses)
        values = all_reduce_mean(torch.stack([losses[k].detach().float() for k in names]))
        result = dict(zip(names, values.tolist(), strict=True))
        if not all(math.isfinite(v) for v in result.values()):
            saved = self.run_dir is not None and self._last_saved_step >= 0
            where = f"{self.run_dir / 'last.pt'} (step {self._last_saved_step})" if saved else "none written"
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.step // self.steps_per_epoch}, step {self.step} "
                f"({', '.join(f'{k}={v:.4g}' for k, v in result.items())}); stopped before the bad update. "
                f"Last good checkpoint: {where}. Try a lower train.lr, train.grad_clip or train.amp=fp32"
            )
        apply_update(self.model, self.optimizer, self.scaler, self.scheduler, self.config.train.grad_clip)
        self.step += 1
        return result

    def fit(self, max_steps: int | None = None, max_seconds: float | None = None) -> FitResult:
        """Train until `train.epochs` are done, the global step reaches `max_steps`, or `max_seconds` pass.

        Stopping early writes `last.pt`, so running `fit` again (or the same command) resumes
        exactly where it stopped (a time limit stops after a whole step; every rank stops at the same one).
        """
        if max_seconds and max_seconds < self.seconds_per_step:
            raise ConfigError(
                f"a time limit of {max_seconds:.3g} s is below one training step of this run "
                f"({self.seconds_per_step:.3g} s per step so far): it would stop after one step; give more time"
            )
        self._deadline = time.monotonic() + max_seconds if max_seconds else None
        tcfg, spe = self.config.train, self.steps_per_epoch
        total = tcfg.epochs * spe
        end = total if max_steps is None else min(total, max_steps)
        monitor = Monitor(self.run_dir / "tb" if self.dist.is_main and self.run_dir else None,
                          tcfg.log_interval, tcfg.batch_size * self.dist.world_size)  # fmt: skip
        start = self.step
        with contextlib.ExitStack() as stack:
            stack.callback(monitor.close)
            if self.progress:  # log lines go above the progress bar instead of through it
                stack.enter_context(logging_redirect_tqdm())
            if self.step < end:
                log.info("epoch %d, step %d -> %d", self.step // spe, self.step, end)
                self._run(end, monitor)
            if self._last_saved_step != self.step and self.step > 0:
                self.save()
            if self.step >= total and (self.step > start or not self._final_exists()):
                if self.val_source is not None and (tcfg.val_interval <= 0 or tcfg.epochs % tcfg.val_interval):
                    self._validate(monitor)  # a last validation when the interval skipped the end
                self._export("final.safetensors")
                log.info("finished %d epochs (%d steps)", tcfg.epochs, self.step)
        self._sync_buffers()
        barrier()
        last = self.history[-1] if self.history else {}
        return FitResult(self.step, self.step // spe, spe, self.step >= total, self.best_ap, last)

    def _run(self, end: int, monitor: Monitor) -> None:
        """Optimisation steps up to global step `end`, with the end-of-epoch work."""
        tcfg, spe = self.config.train, self.steps_per_epoch
        batches = self.stream.iterate(self.step)
        self.net.train()
        while self.step < end:
            epoch = self.step // spe
            stop = min((epoch + 1) * spe, end)
            bar = tqdm(total=spe, initial=self.step - epoch * spe, desc=f"epoch {epoch}", unit="step",
                       disable=not self.progress, dynamic_ncols=True, leave=False)  # fmt: skip
            with bar:
                while self.step < stop:
                    started = time.monotonic()
                    losses = self.train_step(next(batches))
                    took, n = time.monotonic() - started, min(self.step, 100)  # a mean over the last ~100 steps
                    self.seconds_per_step = (self.seconds_per_step * (n - 1) + took) / n if n > 1 else took
                    self.history.append(losses)
                    monitor.update(self.step, epoch, losses, [g["lr"] for g in self.optimizer.param_groups])
                    bar.set_postfix(loss=f"{losses['total']:.4g}", img_s=f"{monitor.images_per_s:.1f}", refresh=False)
                    bar.update(1)
                    every = tcfg.checkpoint_interval
                    if every > 0 and self.step % every == 0 and self.step % spe:
                        self.save()
                    if self._time_up():
                        log.info("time limit reached at step %d", self.step)
                        end = stop = self.step
            if self.step % spe == 0:  # epoch done
                self._end_of_epoch(self.step // spe, monitor)
                monitor.restart_clock()

    def _time_up(self) -> bool:
        """Whether `fit`'s time limit has passed (rank 0 decides, so all ranks stop together)."""
        if self._deadline is None:
            return False
        up = torch.tensor([float(time.monotonic() >= self._deadline)], device=self.device)
        return bool(broadcast_(up).item())

    def _final_exists(self) -> bool:
        """Whether rank 0 sees `final.safetensors` (the same answer on every rank)."""
        if self.run_dir is None:
            return True  # nothing to write
        seen = self.dist.is_main and self.run_dir is not None and (self.run_dir / "final.safetensors").is_file()
        return bool(broadcast_(torch.tensor([float(seen)], device=self.device)).item())

    def _end_of_epoch(self, epochs_done: int, monitor: Monitor) -> None:
        interval = self.config.train.val_interval
        if self.val_source is not None and interval > 0 and epochs_done % interval == 0:
            self._validate(monitor)
        self.save()

    def _validate(self, monitor: Monitor) -> None:
        """AP on the validation set (rank 0); keeps `best.safetensors`."""
        if self.dist.is_main:
            from grapepose.engine.validation import validate

            t0 = time.perf_counter()
            metrics = validate(self.model, self.config, self.val_source, self.device, progress=self.progress)
            self.model.train()
            ap = float(metrics.get("AP", float("nan")))
            monitor.scalars("val", metrics, self.step)
            log.info("validation at step %d: AP %.4f (best %.4f, %.0f s)", self.step, ap, max(ap, self.best_ap),
                     time.perf_counter() - t0)  # fmt: skip
            if ap > self.best_ap:
                self.best_ap = ap
                self._export("best.safetensors")
        self.best_ap = float(broadcast_(torch.tensor([self.best_ap], device=self.device)).item())
        self.net.train()

