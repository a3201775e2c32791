"""`predict` under torchrun: the inputs split over the ranks, one journal per rank, one merge.

Rank 0 alone checks the output folder, takes its lock and expands the SOURCE arguments; it hands
every rank the same list of inputs and the same split (`plan`). Each rank predicts its share on its
own device and journals every finished frame to `results.rank<r>.jsonl` in the output folder
(`PartJournal`, fsynced per batch like the one-process journal), each line tagged with its input's
index. When every rank is done (`Shard.wait_all`), rank 0 merges the parts in input order and gives
the image ids exactly as one process would (`merge_parts`), so `results.json` is the same file.

A rank that dies closes its sockets: the others learn it within a heartbeat (a tiny all-gather
every half second on a group of its own), so nobody waits forever, and a rank that is merely slow
keeps answering. The output folder must be one folder that every rank sees (one machine, or a
shared file system).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from grapepose.errors import GrapeposeError
from grapepose.io.sources import Source
from grapepose.predict_job.journal import (
    JOURNAL_NAME,
    OutputError,
    OutputFolder,
    merge_lines,
    part_name,
    read_journal_lines,
)

__all__ = ["Shard", "PartJournal", "plan", "merge_parts", "HEARTBEAT_TIMEOUT_S"]

log = logging.getLogger(__name__)

HEARTBEAT_PERIOD_S = 0.5
HEARTBEAT_TIMEOUT_S = 60.0  # a rank silent this long (a lost machine; a dead process is seen at once) is gone
SETUP_TIMEOUT_S = 1800.0  # the other ranks wait this long for rank 0 to expand the inputs

T = TypeVar("T")


def _weight(src: Source, max_frames: int) -> int:
    """Work of one input: 1 for an image, the frame count for a video (as far as its container says)."""
    if src.kind == "image":
        return 1
    import cv2

    cap = cv2.VideoCapture(str(src.path))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    cap.release()
    n = max(n, 1)
    return min(n, max_frames) if max_frames else n


def plan(sources: Sequence[Source], world: int, track: bool = False, max_frames: int = 0) -> list[list[int]]:
    """Split inputs over `world` ranks: the indices of `sources` each rank runs, in input order.

    A video is one unit; with `track`, so is each SOURCE argument's sequence of images (its ids must
    come from one tracker). Units go largest first (a video weighs its frames) to the least-loaded
    rank, the lower rank on a tie, so images alone are dealt round-robin. The split depends only on
    its arguments: every rank can check it.

    Raises:
        GrapeposeError: a webcam is among the inputs (it belongs to one machine and one process).
    """
    units: list[list[int]] = []
    sequence: dict[int, int] = {}  # SOURCE argument -> its unit, with track
    for i, src in enumerate(sources):
        if src.kind == "webcam":
            raise GrapeposeError(f"{src}: a webcam cannot be split over torchrun ranks; run it without torchrun")
        if track and src.kind == "image":
            if src.group in sequence:
                units[sequence[src.group]].append(i)
                continue
            sequence[src.group] = len(units)
        units.append([i])
    weights = [sum(_weight(sources[i], max_frames) for i in unit) for unit in units]
    load, shares = [0] * world, [[] for _ in range(world)]  # type: ignore[var-annotated]
    for u in sorted(range(len(units)), key=lambda u: (-weights[u], u)):
        r = min(range(world), key=lambda r: (load[r], r))
        shares[r].extend(units[u])
        load[r] += weights[u]
    return [sorted(share) for share in shares]


class PartJournal(OutputFolder):
    """One rank's journal, `results.rank<r>.jsonl` in the job's output folder (rank 0 holds the lock)."""

    def __init__(self, out_dir: str | os.PathLike[str], rank: int) -> None:
        super().__init__(out_dir, overwrite=True)
        self.path = self.out_dir / part_name(rank)

    def open(self, journal: bool = True) -> PartJournal:
        try:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        return self


def merge_parts(
    out_dir: str | os.PathLike[str], sources: Sequence[Source], world: int
) -> tuple[list[dict[str, Any]], int]:
    """The COCO results of every rank's journal, as one process would have written them, and their frame count.

    With the lines an earlier, resumed job kept in `results.jsonl`; see `journal.merge_lines`.
    """
    lines: list[dict[str, Any]] = []
    for path in [Path(out_dir) / JOURNAL_NAME] + [Path(out_dir) / part_name(r) for r in range(world)]:
        if path.exists():
            lines += read_journal_lines(path)
    return merge_lines(lines, sources)


def _brief(e: BaseException) -> str:
    """The first sentence of a gloo/c10d error, without its source location."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    return text.split(". ")[0].rstrip(".")


class Shard:
    """This process's place in a torchrun `predict` job; joins the job's (gloo) process group.

    Args:
        device: `--device` ("cuda" means the GPU at LOCAL_RANK).

    Raises:
        GrapeposeError: the process group cannot be joined (one line).
    """

    def __init__(self, device: str | None) -> None:
        import torch.distributed as dist

        from grapepose.utils.distributed import setup_distributed

        try:  # only small Python objects travel: gloo, even when the model runs on CUDA
            info = setup_distributed(device, timeout_s=SETUP_TIMEOUT_S, backend="gloo")
            self._beat = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=HEARTBEAT_TIMEOUT_S))
        except (RuntimeError, ValueError) as e:
            raise GrapeposeError(f"cannot join the torchrun job ({_brief(e)})") from None
        self.rank, self.world, self.device = info.rank, info.world_size, info.device
        self._done = threading.Event()
        self._error: str | None = None
        self._thread: threading.Thread | None = None

    def broadcast(self, obj: T) -> T:
        """Rank 0's `obj` on every rank (the others pass a placeholder, e.g. None)."""
        import torch.distributed as dist

        box = [obj]
        try:
            dist.broadcast_object_list(box, src=0)
        except RuntimeError as e:
            raise GrapeposeError(f"lost contact with rank 0 ({_brief(e)})") from None
        return box[0]

    def start_heartbeat(self) -> None:
        """Start answering the others' heartbeats (every rank, before its work)."""
        self._thread = threading.Thread(target=self._heartbeat, name="grapepose-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        import torch
        import torch.distributed as dist

        try:
            while True:
                flags = [torch.zeros(1, dtype=torch.int32) for _ in range(self.world)]
                mine = torch.tensor([int(self._done.is_set())], dtype=torch.int32)
                dist.all_gather(flags, mine, group=self._beat)
                if all(int(f) for f in flags):  # every rank sees the same flags: all leave together
                    return
                time.sleep(HEARTBEAT_PERIOD_S)
        except RuntimeError as e:
            self._error = _brief(e)

    def wait_all(self) -> str | None:
        """Say this rank is done and wait for the others; None, or why some rank can no longer answer."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        return self._error

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's `obj` on rank 0 (None elsewhere); call after `wait_all` returned None."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.rank == 0 else None  # filled by gather_object
        try:
            dist.gather_object(obj, out, dst=0)
        except RuntimeError as e:
            raise GrapeposeError(f"lost contact with the other ranks ({_brief(e)})") from None
        return out

    def close(self) -> None:
        from grapepose.utils.distributed import cleanup_distributed

        try:
            cleanup_distributed()
        except RuntimeError:  # a peer is gone: nothing left to tear down politely
            pass
