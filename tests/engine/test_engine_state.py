"""Optimizer groups, lr schedule, resumable state and the batch stream (no network needed)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from grapepose.config import TrainConfig
from grapepose.engine.checkpoint import capture_rng, load_state, restore_rng, save_state
from grapepose.engine.optim import build_optimizer, build_scheduler, lr_multiplier
from grapepose.engine.precision import resolve_precision
from grapepose.engine.sampling import BatchStream
from grapepose.errors import CheckpointError, ConfigError


class TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 3)
        self.context = nn.Linear(3, 2)

    def global_context_parameters(self):  # noqa: ANN201
        return self.context.parameters()


def test_one_or_two_param_groups() -> None:
    model = TwoPart()
    (group,) = build_optimizer(model, TrainConfig(lr=1e-3)).param_groups
    assert len(group["params"]) == 4 and group["lr"] == 1e-3
    base, side = build_optimizer(model, TrainConfig(lr=3e-5, transformer_lr=3e-4)).param_groups
    assert [p.shape for p in side["params"]] == [p.shape for p in model.context.parameters()]
    assert side["lr"] == 3e-4 and base["lr"] == 3e-5 and len(base["params"]) == 2


def test_warmup_then_steps_and_cosine() -> None:
    cfg = TrainConfig(epochs=10, warmup_steps=4, lr_steps=(5, 8), lr_factor=0.1)
    spe = 3
    assert [lr_multiplier(s, cfg, spe) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_multiplier(14, cfg, spe) == 1.0
    assert lr_multiplier(15, cfg, spe) == pytest.approx(0.1)
    assert lr_multiplier(24, cfg, spe) == pytest.approx(0.01)
    cos = TrainConfig(epochs=10, warmup_steps=0, schedule="cosine")
    assert lr_multiplier(0, cos, spe) == 1.0 and lr_multiplier(15, cos, spe) == pytest.approx(0.5)
    assert lr_multiplier(30, cos, spe) == pytest.approx(0.0)
    opt = build_optimizer(TwoPart(), TrainConfig(lr=1.0))
    sched = build_scheduler(opt, cfg, spe)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])


def test_precision_resolution() -> None:
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"
    p = resolve_precision("fp16", torch.device("cpu"))
    assert p.needs_scaler and p.scaler().is_enabled()
    assert not resolve_precision("bf16", torch.device("cpu")).scaler().is_enabled()
    with pytest.raises(ConfigError):
        resolve_precision("fp8", torch.device("cpu"))


def test_rng_roundtrip() -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    random.gauss(0, 1), np.random.randn()  # leave cached Gaussians behind
    state = capture_rng()
    a = (random.random(), random.gauss(0, 1), np.random.randn(3), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(state)
    b = (random.random(), random.gauss(0, 1), np.random.randn(3), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2]) and torch.equal(a[3], b[3])


def _state(model: nn.Module, step: int) -> dict:
    opt = build_optimizer(model, TrainConfig())
    return {"version": 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": build_scheduler(opt, TrainConfig(), 2).state_dict(), "epoch": 0, "step": step,
            "rng": capture_rng(), "config": {"name": "x", "train": {"lr": 1e-3}}}


def test_state_roundtrip_weights_only_and_errors(tmp_path) -> None:  # noqa: ANN001
    model = TwoPart()
    path = tmp_path / "last.pt"
    save_state(path, _state(model, 7))
    loaded = torch.load(path, weights_only=True)  # plain data only
    assert loaded["step"] == 7 and torch.equal(loaded["model"]["body.weight"], model.body.weight)
    assert load_state(path)["config"]["name"] == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp files left
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_state(tmp_path / "bad.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a grapepose training state"):
        load_state(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="file not found"):
        load_state(tmp_path / "missing.pt")


class Numbers(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"i": torch.tensor(i)}


def _take(stream: BatchStream, start: int, n: int) -> list[list[int]]:
    it = stream.iterate(start)
    return [next(it)["i"].tolist() for _ in range(n)]


def test_stream_resumes_exactly_and_splits_ranks() -> None:
    full = _take(BatchStream(Numbers(), 3, seed=5), 0, 9)  # 3 batches per pass, 3 passes
    assert full[:3] != full[3:6]  # reshuffled per pass
    assert sorted(sum(full[:3], [])) == sorted(set(sum(full[:3], [])))  # no repeats within a pass
    for start in (1, 3, 4, 7):
        assert _take(BatchStream(Numbers(), 3, seed=5), start, 9 - start) == full[start:]
    r0 = _take(BatchStream(Numbers(), 2, rank=0, world_size=2, seed=5), 0, 2)
    r1 = _take(BatchStream(Numbers(), 2, rank=1, world_size=2, seed=5), 0, 2)
    assert not set(sum(r0, [])) & set(sum(r1, []))
    with pytest.raises(ConfigError, match="batch_size"):
        BatchStream(Numbers(), 6, world_size=2)


def test_backbone_split_puts_everything_but_the_backbone_at_the_fast_rate() -> None:
    class WithBackbone(TwoPart):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Linear(2, 2)

    model = WithBackbone()
    slow, fast = build_optimizer(model, TrainConfig(lr=3e-5, transformer_lr=3e-4, lr_split="backbone")).param_groups
    assert [id(p) for p in slow["params"]] == [id(p) for p in model.backbone.parameters()]
    assert len(fast["params"]) == 4 and fast["lr"] == 3e-4
