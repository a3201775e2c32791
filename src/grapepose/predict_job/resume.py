"""`predict --resume`: what an earlier, stopped run in the same folder already finished.

The earlier run's journal lines (its `results.jsonl`, or the `results.rank<r>.jsonl` of a torchrun
job) name their input by index. An image is done when it has its line; a video when its `done`
line says it was read to its end (a video stopped halfway is redone from its first frame: a video
file cannot be appended to); with `--track`, an image sequence only when all of its images are
(track ids run through the sequence). Failed inputs left no line and are tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grapepose.io.sources import Source
from grapepose.predict_job.journal import OutputError, OutputFolder

__all__ = ["resume_plan", "start_resumed"]


def _name(line: dict[str, Any]) -> str | None:
    return line.get("file_name", line.get("video"))


def resume_plan(
    lines: Sequence[dict[str, Any]], sources: Sequence[Source], journal: Path, track: bool = False
) -> tuple[list[dict[str, Any]], set[int]]:
    """The earlier run's lines worth keeping and the indices of the inputs they finish.

    Args:
        lines: every complete line of the earlier run's journals (`OutputFolder.previous`).
        sources: this run's inputs (`expand_sources`); they must be the earlier run's.
        journal: the journal's path, for the error message.
        track: the run gives track ids (an image sequence is kept whole or redone whole).

    Returns:
        The lines of finished inputs (a line repeated by an interrupted resume once) and those inputs.

    Raises:
        OutputError: the lines do not belong to these inputs (other SOURCEs, or a journal without
            input indices, written before `--resume` existed).
    """
    seen: set[tuple[Any, ...]] = set()
    unique: list[dict[str, Any]] = []
    images: set[int] = set()
    videos: set[int] = set()
    for line in lines:
        i = line.get("source")
        if not isinstance(i, int) or _name(line) is None:
            raise OutputError(f"{journal}: this journal does not name its inputs (an older grapepose wrote it); "
                              "it cannot be resumed: pass --overwrite to start again")  # fmt: skip
        if not 0 <= i < len(sources) or sources[i].name != _name(line):
            now = sources[i].name if 0 <= i < len(sources) else "missing"
            raise OutputError(f"{journal}: the earlier run read other inputs (its input {i + 1} was "
                              f"{_name(line)}, now it is {now}); give --resume the same SOURCEs, or pass "
                              "--overwrite")  # fmt: skip
        key = (i, line.get("frame", 0), bool(line.get("done")))
        if key in seen:  # a resume stopped between writing its journal and removing the older parts
            continue
        seen.add(key)
        unique.append(line)
        if line.get("done"):
            videos.add(i)
        elif sources[i].kind == "image":
            images.add(i)
    done = images | {i for i in videos if sources[i].kind == "video"}
    if track:  # a sequence's track ids start at its first image
        groups: dict[Any, set[int]] = {}
        for i, s in enumerate(sources):
            if s.kind == "image":
                groups.setdefault(s.group, set()).add(i)
        for members in groups.values():
            if not members <= done:
                done -= members
    return [line for line in unique if line["source"] in done], done


def start_resumed(folder: OutputFolder, sources: Sequence[Source], track: bool = False) -> tuple[list[int], str]:
    """Start `folder`'s journal with what its earlier run finished; the inputs left to do.

    Returns:
        The indices of `sources` still to run, and the line to print ("" when nothing was kept).

    Raises:
        OutputError: see `resume_plan`; or the journal cannot be written.
    """
    lines, done = resume_plan(folder.previous, sources, folder.path, track=track)
    folder.start(lines)
    todo = [i for i in range(len(sources)) if i not in done]
    said = (f"resuming: {len(done)} of {len(sources)} inputs ({folder.frames} frames) finished before, in "
            f"{folder.path}") if lines else ""  # fmt: skip
    return todo, said
