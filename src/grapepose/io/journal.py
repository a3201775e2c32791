"""One `predict` run's output folder: a lock against concurrent runs, a journal of finished frames,
and the final `results.json` written from the journal.

The journal (`results.jsonl`) gets one JSON line per finished image or video frame, flushed and
fsynced after every batch, so a run killed at any moment (SIGKILL, power loss, full disk) keeps
every batch it finished. `results.json` is written atomically from it at the end (also after Ctrl-C
or SIGTERM), then the journal is removed. An existing `results.json` or an unfinished journal is
never replaced unless `overwrite` is set: the run stops with one line before any work.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from grapepose.errors import GrapeposeError
from grapepose.io.files import atomic_write_json
from grapepose.utils.process import process_alive, this_host

__all__ = ["OutputFolder", "OutputError", "read_journal", "read_journal_lines", "part_name", "LOCK_NAME",
           "JOURNAL_NAME", "RESULTS_NAME", "PART_GLOB"]  # fmt: skip

log = logging.getLogger(__name__)

LOCK_NAME = ".grapepose-predict.lock"
JOURNAL_NAME = "results.jsonl"
RESULTS_NAME = "results.json"
PART_GLOB = "results.rank*.jsonl"  # the journals of the ranks of a torchrun job (grapepose.io.shard)


def part_name(rank: int) -> str:
    """The journal file of one torchrun rank: `results.rank<r>.jsonl`."""
    return f"results.rank{rank}.jsonl"


class OutputError(GrapeposeError):
    """An output could not be written, or the folder is taken: one line naming the path."""


def read_journal_lines(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete line of a journal, one dict per finished frame (a torn last line is ignored)."""
    lines: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # the write of this line did not finish
            lines.append(json.loads(line))
    return lines


def read_journal(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The COCO entries of every complete line of a journal (a torn last line is ignored)."""
    return [entry for line in read_journal_lines(path) for entry in line["results"]]


class OutputFolder:
    """`--out` of one predict run; use as a context manager (takes and releases the lock).

    Args:
        out_dir: the folder (created if missing).
        overwrite: replace the results of an earlier run instead of refusing to start.

    Raises:
        OutputError: another run holds the folder, or earlier results exist and `overwrite` is off.
    """

    def __init__(self, out_dir: str | os.PathLike[str], overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
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
            with os.fdopen(fd, "w") as f:
                f.write(me)
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
                parts; stale parts of an earlier job count as unfinished results).
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{self.out_dir}: output folder is not writable ({e.strerror or e})") from None
        if not os.access(self.out_dir, os.W_OK | os.X_OK):
            raise OutputError(f"{self.out_dir}: output folder is not writable (Permission denied)")
        try:
            self._take_lock()
        except PermissionError as e:
            raise OutputError(f"{self.out_dir}: output folder is not writable ({e.strerror or e})") from None
        try:
            if not self.overwrite:
                if self.results_path.exists():
                    raise OutputError(
                        f"{self.results_path}: results of an earlier run are there; pass --overwrite to replace "
                        "them, or choose another --out"
                    )
                unfinished = [p for p in (self.path,) if p.exists()] + sorted(self.out_dir.glob(PART_GLOB))
                if unfinished:
                    raise OutputError(
                        f"{unfinished[0]}: unfinished results of an earlier run that was killed are there; pass "
                        "--overwrite to replace them, or choose another --out"
                    )
            else:
                for stale in self.out_dir.glob(PART_GLOB):  # never merged into the new results
                    stale.unlink()
            if journal:
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            self._release_lock()
            raise OutputError(f"{self.path}: cannot write ({e.strerror or e})") from None
        except BaseException:
            self._release_lock()
            raise
        return self

    def add(self, entries: list[dict[str, Any]], **where: Any) -> None:
        """Append one finished frame (`where`: image_id, file_name or video and frame)."""
        assert self._file is not None, "OutputFolder.open() first"
        self._file.write(json.dumps({**where, "results": entries}) + "\n")
        self.frames += 1

    def sync(self) -> None:
        """Flush and fsync what was appended: it survives a crash from here on."""
        if self._file is not None and not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())

    def finish(self, results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Write `results.json` from the journal (or `results`, merged parts) atomically, then remove the journal.

        Raises:
            OutputError: `results.json` cannot be written (the journal is kept).
        """
        if self._file is not None and not self._file.closed:
            try:
                self.sync()
            finally:
                self._file.close()
        if results is None:
            results = read_journal(self.path)
        try:
            atomic_write_json(self.results_path, results)
        except OSError as e:
            raise OutputError(
                f"{self.results_path}: cannot write ({e.strerror or e}); the {self.frames} finished frames are in "
                f"{self.path}"
            ) from None
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
