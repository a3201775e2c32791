"""One `predict` run's output folder: a lock against concurrent runs, a journal of finished frames,
and the final `results.json` written from the journal.

The journal (`results.jsonl`) gets one JSON line per finished image or video frame, flushed and
fsynced after every batch, so a run killed at any moment (SIGKILL, power loss, full disk) keeps
every batch it finished. Each line names its input (`source`, the input's index), and a finished
video adds a line of its own (`done`), so a later run can resume (`grapepose.predict_job.resume`).
`results.json` is written atomically from it at the end (also after Ctrl-C or SIGTERM, and after a
write error); the journal is removed when the run went to its end and kept otherwise, for
`--resume`. An existing `results.json` or an unfinished journal is never replaced unless
`overwrite` (or `resume`) is set: the run stops with one line before any work.

Image ids are given here (`ImageIds`): a one-process run numbers its frames as they finish, and
`merge_lines` numbers the lines of several journals (torchrun ranks, a resumed run) again over the
whole job, since no rank knows the frame counts of the inputs before its own.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from grapepose.errors import GrapeposeError
from grapepose.io.files import atomic_write_json, atomic_write_text
from grapepose.io.sources import Source, plain_number
from grapepose.utils.process import process_alive, this_host

__all__ = ["OutputFolder", "OutputError", "ImageIds", "read_journal", "read_journal_lines", "merge_lines",
           "part_name", "LOCK_NAME", "JOURNAL_NAME", "RESULTS_NAME", "PART_GLOB"]  # fmt: skip

log = logging.getLogger(__name__)

LOCK_NAME = ".grapepose-predict.lock"
JOURNAL_NAME = "results.jsonl"
RESULTS_NAME = "results.json"
PART_GLOB = "results.rank*.jsonl"  # the journals of the ranks of a torchrun job (grapepose.predict_job.shard)


def part_name(rank: int) -> str:
    """The journal file of one torchrun rank: `results.rank<r>.jsonl`."""
    return f"results.rank{rank}.jsonl"


class OutputError(GrapeposeError):
    """An output could not be written, or the folder is taken: one line naming the path."""


class ImageIds:
    """COCO image ids, given to finished frames in input order: an image named by a number
    (COCO/CrowdPose style) keeps it; other images and video frames take the next free id."""

    def __init__(self, sources: Sequence[Source], warn: bool = True) -> None:
        numbered = [s for s in sources if s.kind == "image" and plain_number(s.stem) is not None]
        counts = Counter(plain_number(s.stem) for s in numbered)
        self.reserved = {n for n, c in counts.items() if c == 1}
        shared = [s for s in numbered if counts[plain_number(s.stem)] > 1]
        if shared and warn:  # e.g. a/001.jpg and b/001.jpg: one id for two images would merge them in evaluation
            log.warning("%d images share a numbered name with another input (first: %s): they get fresh image ids",
                        len(shared), shared[0])  # fmt: skip
        self.next = 0

    def __call__(self, src: Source) -> int:
        number = plain_number(src.stem) if src.kind == "image" else None
        if number is not None and number in self.reserved:
            return number
        while self.next in self.reserved:
            self.next += 1
        self.next += 1
        return self.next - 1


def _journal_line(raw: bytes) -> dict[str, Any] | None:
    """One journal line as written by `OutputFolder` (a finished frame or a `done` mark); None if it is not one."""
    try:
        line = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(line, dict):
        return None
    results = line.get("results")
    frame = isinstance(results, list) and all(isinstance(entry, dict) for entry in results)
    return line if frame or (results is None and line.get("done") is True) else None


def read_journal_lines(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete line of a journal, one dict per finished frame (a torn last line is ignored).

    A line that is not one of ours (damaged on disk, edited by hand) is skipped with one warning for
    the file: the frames it held are missing from the results, and `--resume` does their inputs again.
    """
    lines: list[dict[str, Any]] = []
    bad: list[int] = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break  # the write of this line did not finish
            line = _journal_line(raw)
            if line is None:
                bad.append(number)
            else:
                lines.append(line)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        log.warning("%s: skipped %d damaged line(s) (line %d%s); --resume does their inputs again",
                    path, len(bad), bad[0], more)  # fmt: skip
    return lines


def read_journal(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The COCO entries of every complete line of a journal (a torn last line is ignored)."""
    return [entry for line in read_journal_lines(path) for entry in line.get("results", ())]


def merge_lines(lines: list[dict[str, Any]], sources: Sequence[Source]) -> tuple[list[dict[str, Any]], int]:
    """The COCO results of journal lines, as one uninterrupted process would have written them, and their frame count.

    Lines are put in input order (a video's frames stay in theirs) and the image ids are given again
    over all the inputs (`ImageIds`), as one process gives them while its frames finish. Lines of
    several journals (torchrun ranks, an earlier run that was resumed) merge the same way.
    """
    frames = sorted((line for line in lines if "results" in line), key=lambda line: line["source"])  # stable
    image_id = ImageIds(sources, warn=False)
    results: list[dict[str, Any]] = []
    for line in frames:
        iid = image_id(sources[line["source"]])
        for entry in line["results"]:
            entry["image_id"] = iid  # the key keeps its place: the file is byte for byte the same
        results += line["results"]
    return results, len(frames)


class OutputFolder:
    """`--out` of one predict run; use as a context manager (takes and releases the lock).

    Args:
        out_dir: the folder (created if missing).
        overwrite: replace the results of an earlier run instead of refusing to start.
        resume: read the journals an earlier run left (`previous`) instead of refusing to start;
            the new journal starts with the lines that `start` is given.

    Raises:
        OutputError: another run holds the folder, or earlier results exist and neither
            `overwrite` nor `resume` is set.
    """

    def __init__(self, out_dir: str | os.PathLike[str], overwrite: bool = False, resume: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self.resume = resume
        self.previous: list[dict[str, Any]] = []  # with `resume`: the lines of the earlier run's journals
        self.finished_before = False  # with `resume`: the earlier run went to its end (results.json, no journal)
        self.lock = self.out_dir / LOCK_NAME
        self.path = self.out_dir / JOURNAL_NAME
        self.results_path = self.out_dir / RESULTS_NAME
        self.frames = 0
        self._file: IO[str] | None = None
        self._locked = False

    # ---------------------------------------------------------------- lock
    def _take_lock(self) -> None:
        me = f"{os.getpid()} {this_host()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid_s, _, host = self.lock.read_text().strip().partition(" ")
                    pid = int(pid_s)
                except (OSError, ValueError):
                    pid, host = -1, ""
                where = "" if host == this_host() else f" on {host}"
                if pid > 0 and process_alive(pid, host):
                    raise OutputError(
                        f"{self.out_dir}: another grapepose predict (pid {pid}{where}) is writing into this folder; "
                        "wait for it or choose another --out "
                        f"(if no such run exists, delete {self.lock})"
                    ) from None
                log.warning("%s: removing the lock of a run that is no longer running (pid %s)", self.lock, pid)
                self.lock.unlink(missing_ok=True)
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(me)
            except OSError:  # e.g. a full disk: no empty lock is left behind
                self.lock.unlink(missing_ok=True)
                raise
            self._locked = True
            return
        raise OutputError(f"{self.lock}: cannot take the lock of this folder")

    def _release_lock(self) -> None:
        if self._locked:
            self._locked = False
            self.lock.unlink(missing_ok=True)

    # ---------------------------------------------------------------- journal
    def open(self, journal: bool = True) -> OutputFolder:
        """Take the lock, check for earlier results, start an empty journal.

        Args:
            journal: start `results.jsonl` (off for a torchrun job, whose ranks write their own
                parts; stale parts of an earlier job count as unfinished results). With `resume`
                the journal is started by `start(kept)` once the caller knows what to keep.
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{self.out_dir}: output folder is not writable ({e.strerror or e})") from None
        if not os.access(self.out_dir, os.W_OK | os.X_OK):
            raise OutputError(f"{self.out_dir}: output folder is not writable (Permission denied)")
        try:
            self._take_lock()
        except OSError as e:
            raise OutputError(f"{self.out_dir}: output folder is not writable ({e.strerror or e})") from None
        try:
            unfinished = [p for p in (self.path,) if p.exists()] + sorted(self.out_dir.glob(PART_GLOB))
            if self.resume:
                for path in unfinished:
                    self.previous += read_journal_lines(path)
                self.finished_before = not unfinished and self.results_path.exists()
            elif not self.overwrite:
                if unfinished:
                    raise OutputError(
                        f"{unfinished[0]}: unfinished results of an earlier run that was stopped are there; pass "
                        "--resume to continue it, --overwrite to replace them, or choose another --out"
                    )
                if self.results_path.exists():
                    raise OutputError(
                        f"{self.results_path}: results of an earlier run are there; pass --overwrite to replace "
                        "them, or choose another --out"
                    )
            else:
                for stale in unfinished:  # never merged into the new results
                    stale.unlink()
            if journal and not self.resume:  # a resumed journal starts with the kept lines: `start(kept)`
                self.start()
        except OSError as e:
            self._release_lock()
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        except BaseException:
            self._release_lock()
            raise
        return self

    def start(self, kept: list[dict[str, Any]] | None = None) -> None:
        """Begin the journal with the `kept` lines of an earlier run (written atomically before the
        earlier journals go), or empty."""
        if self._file is not None:
            return
        if not self.resume:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            return
        text = "".join(json.dumps(line) + "\n" for line in kept or [])
        try:
            atomic_write_text(self.path, text)  # the earlier journals stay until this one is complete
            for part in self.out_dir.glob(PART_GLOB):  # their kept lines are in the journal now
                part.unlink()
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self.frames = sum("results" in line for line in kept or [])

    def add(self, entries: list[dict[str, Any]], **where: int | str) -> None:
        """Append one finished frame (`where`: image_id, file_name or video and frame)."""
        assert self._file is not None, "OutputFolder.open() first"
        self._file.write(json.dumps({**where, "results": entries}) + "\n")
        self.frames += 1

    def mark_done(self, **where: int | str) -> None:
        """Record that an input (a video: `source`, `video`) was read to its end."""
        assert self._file is not None, "OutputFolder.open() first"
        self._file.write(json.dumps({**where, "done": True}) + "\n")

    def sync(self) -> None:
        """Flush and fsync what was appended: it survives a crash from here on."""
        if self._file is not None and not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())

    def finish(self, results: list[dict[str, Any]] | None = None, sources: Sequence[Source] | None = None,
               keep_journal: bool = False) -> list[dict[str, Any]]:  # fmt: skip
        """Write `results.json` from the journal (or `results`, merged parts) atomically, then remove the journal.

        Args:
            results: the entries to write (default: the journal's).
            sources: the job's inputs, when the journal holds the lines of more than one run (a
                resumed run): they are merged in input order and numbered again (`merge_lines`).
            keep_journal: leave the journal for a later `--resume` (the run did not go to its end).

        Raises:
            OutputError: `results.json` cannot be written (the journal is kept).
        """
        if self._file is not None and not self._file.closed:
            try:
                self.sync()
            finally:
                self._file.close()
        if results is None and sources is not None:
            results = merge_lines(read_journal_lines(self.path) if self.path.exists() else [], sources)[0]
        elif results is None:
            results = read_journal(self.path)
        try:
            atomic_write_json(self.results_path, results)
        except OSError as e:
            raise OutputError(
                f"{self.results_path}: cannot write ({e.strerror or e}); the {self.frames} finished frames are in "
                f"{self.path}"
            ) from None
        if not keep_journal:
            self.path.unlink(missing_ok=True)
        return results

    def close(self) -> None:
        """Close the journal (kept, unless empty, if `finish` did not run) and release the lock."""
        try:
            if self._file is not None and not self._file.closed:
                try:
                    self.sync()
                    self._file.close()
                except OSError:  # e.g. the disk is full: what was synced before stays
                    pass
                if self.frames == 0:  # stopped before the first frame: nothing to keep
                    self.path.unlink(missing_ok=True)
        finally:
            self._release_lock()

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
