"""Resumable training state (`last.pt`): tensors and plain data only.

The file holds the model and optimizer/scheduler/grad-scaler state, the position in training
(epoch, global step), the best validation AP, every random-number generator's state as tensors,
the resolved config as a dict and a format version. It is written atomically and read with
`torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grapepose.errors import CheckpointError
from grapepose.io.files import atomic_save
from grapepose.models import read_torch_file

__all__ = ["STATE_VERSION", "capture_rng", "restore_rng", "save_state", "load_state", "remove_stale_temporaries"]

# What `atomic_path` leaves when a run is killed mid-write (kill -9, power loss): `.last.<random>.tmp.pt`, ...
_TEMPORARY_PATTERNS = (".last.*.tmp.pt", ".best.*.tmp.safetensors", ".final.*.tmp.safetensors", ".config.*.tmp.yaml")


def remove_stale_temporaries(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete half-written checkpoint temporaries of an earlier, killed run in `run_dir`; returns them."""
    found = sorted(p for pattern in _TEMPORARY_PATTERNS for p in Path(run_dir).glob(pattern) if p.is_file())
    for p in found:
        p.unlink(missing_ok=True)
    return found

STATE_VERSION = 1
_REQUIRED = ("version", "model", "optimizer", "scheduler", "epoch", "step", "rng", "config")


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (current device's) CUDA generator states, as tensors."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(py_state, dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": float("nan") if gauss is None else float(gauss),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_pos": int(pos),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached),
        "torch": torch.get_rng_state(),
    }
    assert kind == "MT19937"
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device (one GPU per process)
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng`."""
    gauss = state["python_gauss"]
    random.setstate(
        (int(state["python_version"]), tuple(int(v) for v in state["python"].tolist()),
         None if gauss != gauss else float(gauss))  # fmt: skip
    )
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
         int(state["numpy_has_gauss"]), float(state["numpy_cached_gaussian"]))  # fmt: skip
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write a training state atomically (the old file stays intact until the new one is complete)."""
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise ValueError(f"training state lacks {missing}")
    atomic_save(path, lambda tmp: _torch_save(state, tmp))


def _torch_save(state: dict[str, Any], path: Path) -> None:
    # through a Python file, so a failed write (a full disk) reaches `atomic_save` as the OSError it is
    with open(path, "wb") as f:
        torch.save(state, f)


def load_state(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training state written by `save_state`.

    Raises:
        CheckpointError: the file is unreadable, not a training state, or of a newer version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        state = read_torch_file(path, map_location)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any other unpickling/format error is a bad file too
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(f"{path}: not a readable training state ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict) or any(k not in state for k in _REQUIRED):
        raise CheckpointError(f"{path}: not a grapepose training state (keys {sorted(state)[:8]})"
                              if isinstance(state, dict) else f"{path}: not a grapepose training state")
    if int(state["version"]) > STATE_VERSION:
        raise CheckpointError(f"{path}: training-state version {state['version']} is newer than this "
                              f"grapepose supports ({STATE_VERSION})")  # fmt: skip
    return state
