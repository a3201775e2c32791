"""Run by the predict-under-torchrun test: `grapepose predict ARGS...` whose rank CRASH_RANK dies
(exit status 3, no clean-up) right after its first frame is synced to its journal.

Usage: python -m torch.distributed.run --standalone --nproc_per_node=2 shard_crash_worker.py CRASH_RANK ARGS...
"""

from __future__ import annotations

import os
import sys

from grapepose.cli.main import main
from grapepose.predict_job import shard

if __name__ == "__main__":
    crash_rank, argv = int(sys.argv[1]), sys.argv[2:]
    original_sync = shard.PartJournal.sync

    def sync_then_die(self: shard.PartJournal) -> None:
        original_sync(self)
        if self.frames and int(os.environ["RANK"]) == crash_rank:
            os._exit(3)

    shard.PartJournal.sync = sync_then_die  # type: ignore[method-assign]
    sys.exit(main(argv))
