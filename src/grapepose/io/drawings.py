"""The files `predict` draws: their names, and how a drawing of grapepose is told from the user's files.

An input gets `<stem>_pose<ext>` (and `<stem>_black<ext>`) in `--out`, names of its own: never the
name of an input, of another input's drawing, or of a file in `--out` that grapepose did not draw.
A taken name puts a number on the stem (`x_2_pose.jpg`, `x_3_pose.jpg`, ...), so `a/x.jpg`,
`b/x.jpg` and `c/x_2.jpg` get three drawings and a photo called `a_pose.jpg` is never replaced.
Every drawing ends with `DRAWING_MARK` (after the image data, where decoders do not look): a run
recognises the drawings of earlier runs by it, replaces them, and does not take them for inputs.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from grapepose.io.files import IMAGE_SUFFIXES

if TYPE_CHECKING:  # pragma: no cover
    from grapepose.io.sources import Source

__all__ = ["DRAWING_KINDS", "DRAWING_MARK", "drawing_paths", "drawing_suffix", "is_drawing", "output_stems"]

DRAWING_KINDS = ("pose", "black")  # <stem>_pose.<ext>: the input drawn; <stem>_black.<ext>: --show-black
# An MP4 `free` box, which every MP4 reader skips; image decoders stop before it at the image's end.
DRAWING_MARK = struct.pack(">I", 25) + b"free" + b"grapepose drawing"


def drawing_suffix(src: Source) -> str:
    """The extension of an input's drawings: a video's are `.mp4`, an image's keep its format (else `.jpg`)."""
    if src.kind != "image" or src.path is None:
        return ".mp4"
    suffix = src.path.suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".jpg"


def drawing_paths(out_dir: Path, stem: str, suffix: str, black: bool = True) -> list[Path]:
    """`out_dir/<stem>_pose<suffix>`, and with `black` its `_black` twin."""
    return [out_dir / f"{stem}_{kind}{suffix}" for kind in DRAWING_KINDS[: 2 if black else 1]]


def is_drawing(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a regular file that grapepose drew (it ends with `DRAWING_MARK`)."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return False
    try:
        with open(p, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < len(DRAWING_MARK):
                return False
            f.seek(-len(DRAWING_MARK), os.SEEK_END)
            return f.read() == DRAWING_MARK
    except OSError:
        return False


def output_stems(sources: Sequence[Source], out_dir: str | os.PathLike[str]) -> dict[Source, str]:
    """The stem of each input's drawings in `out_dir`: the input's own stem unless a drawing name is taken.

    A name is taken by an input that lives in `out_dir` (also through a symbolic link), by an
    earlier input's drawing, or by any file there that is not a grapepose drawing. Names compare
    without case (a case-insensitive file system holds one of `X_pose.jpg` and `x_pose.jpg`). Both
    kinds are reserved whether or not `--show-black` is given, so the names do not depend on it.
    """
    out = Path(out_dir)
    here = out.resolve()
    taken: set[str] = set()
    for src in sources:
        if src.path is not None:
            for p in (src.path.absolute(), src.path.resolve()):
                if p.parent.resolve() == here:
                    taken.add(p.name.lower())
    stems: dict[Source, str] = {}
    for src in sources:
        suffix = drawing_suffix(src)
        n = 1
        while True:
            stem = src.stem if n == 1 else f"{src.stem}_{n}"
            paths = drawing_paths(out, stem, suffix)
            if all(p.name.lower() not in taken and (not os.path.lexists(p) or is_drawing(p)) for p in paths):
                break
            n += 1
        taken.update(p.name.lower() for p in paths)
        stems[src] = stem
    return stems
