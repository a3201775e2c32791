"""Run by the DDP test under torchrun: `grapepose train ARGS...`, then save this rank's weights.

Usage: python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py OUT_DIR ARGS...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from grapepose.cli.main import main
from grapepose.engine import trainer as trainer_module

if __name__ == "__main__":
    out, argv = Path(sys.argv[1]), sys.argv[2:]
    torch.set_num_threads(1)
    original_fit = trainer_module.Trainer.fit

    def fit_and_dump(self: trainer_module.Trainer, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        result = original_fit(self, *args, **kwargs)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"state": state, "step": self.step, "world": self.dist.world_size,
                    "batches_per_pass": self.stream.batches_per_pass}, out / f"rank{os.environ['RANK']}.pt")
        return result

    trainer_module.Trainer.fit = fit_and_dump  # type: ignore[method-assign]
    sys.exit(main(argv))
