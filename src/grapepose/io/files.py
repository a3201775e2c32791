"""Reading and writing image files, and atomic file output: the one I/O module everything uses.

Inference, training, evaluation and the synthetic-data writer all read photos with `read_image`
and write finished files through `atomic_path` (a temporary file renamed onto the target), so a
failed or interrupted run never leaves a half-written file. This module imports only OpenCV and
NumPy: reading a photo does not pull in training or evaluation code.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from grapepose.errors import DataError, GrapeposeError
from grapepose.io.image_header import header_size
from grapepose.limits import MAX_MEGAPIXELS, too_many_pixels

__all__ = [
    "IMAGE_SUFFIXES", "as_rgb_uint8", "atomic_path", "atomic_save", "atomic_write_bytes", "atomic_write_json",
    "atomic_write_text", "check_output_path", "read_image", "read_json", "why_not_a_file", "write_image",
]  # fmt: skip

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# ---------------------------------------------------------------- images
def why_not_a_file(path: str | os.PathLike[str], missing: str = "no such file") -> str:
    """Why `path` cannot be read as a regular file, as the words after `path: ` in an error line.

    Args:
        path: a path that is not a regular file (`Path.is_file()` is false).
        missing: the words for a path where nothing is (e.g. "image file not found").
    """
    p = Path(path)
    link = p.is_symlink()
    try:
        mode = p.stat().st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (following it never reaches a file)"
        if link:
            return f"broken symbolic link (its target {os.readlink(p)} does not exist)"
        return missing if e.errno == errno.ENOENT else (e.strerror or str(e))
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device")  # fmt: skip
    return f"not a regular file (its target {os.readlink(p)} is {kind})" if link else f"not a regular file ({kind})"


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """The JSON value in the file `path`, or a `DataError` naming the file in one line.

    Args:
        path: the file.
        what: what it holds, for the line of a missing file (`annotation` -> `annotation file not found`).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: {why_not_a_file(p, f'{what} file not found')}")
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _max_file_bytes(max_megapixels: float) -> float:
    """The largest file an image within the limit can be: 8 bytes a pixel (16-bit RGBA, uncompressed) and
    16 MB of metadata (a motion photo's video)."""
    return max_megapixels * 1e6 * 8 + 16e6


def read_image(
    path: str | os.PathLike[str], apply_exif: bool = True, max_megapixels: float = MAX_MEGAPIXELS
) -> np.ndarray:
    """Read an image file as `[H, W, 3]` uint8 RGB, with its EXIF orientation applied unless told not to.

    Grayscale, RGBA (alpha dropped) and 16-bit files become 8-bit RGB. Keypoint datasets (COCO,
    CrowdPose, OCHuman) were annotated on the stored pixels, so their readers pass `apply_exif=False`
    (as the reference does with `IMREAD_IGNORE_ORIENTATION`); photos from users want it applied.
    An image above `max_megapixels` is refused from its header (PNG, JPEG, GIF, BMP, WebP, TIFF)
    before it is decoded.

    Raises:
        DataError: the file is missing, not a regular file, too large, or cannot be decoded, naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: {why_not_a_file(p, 'image file not found')}")
    try:
        size = p.stat().st_size
        if size > _max_file_bytes(max_megapixels):
            raise DataError(f"{p}: a file of {size / 1e6:.0f} MB is larger than any image within the "
                            f"{max_megapixels:g} megapixel limit")  # fmt: skip
        buf = np.fromfile(p, dtype=np.uint8)  # imdecode handles non-ASCII paths that imread does not
    except OSError as e:
        raise DataError(f"{p}: cannot read image ({e.strerror or e})") from None
    declared = header_size(memoryview(buf))
    if declared is not None and (reason := too_many_pixels(*declared, max_megapixels)):
        raise DataError(f"{p}: {reason}")
    flags = cv2.IMREAD_COLOR if apply_exif else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        img = cv2.imdecode(buf, flags) if buf.size else None
    except cv2.error as e:  # e.g. OpenCV's own pixel limit, for a format whose header is not read above
        raise DataError(f"{p}: cannot decode image (OpenCV: {e.err or e})") from None
    if img is None:
        if buf[:6].tobytes() in (b"GIF87a", b"GIF89a"):
            raise DataError(f"{p}: GIF images are not supported (convert it, or pass an animation as a video)")
        raise DataError(f"{p}: cannot decode image (corrupt or unsupported format)")
    if reason := too_many_pixels(img.shape[1], img.shape[0], max_megapixels):
        raise DataError(f"{p}: {reason}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Coerce an in-memory array (gray `[H,W]`, `[H,W,1|3|4]`, uint8/uint16/float in [0,1]) to uint8 RGB."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise DataError(f"image array of shape {tuple(a.shape)} is not [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        raise DataError(f"image array of dtype {a.dtype} is not uint8, uint16 or float")
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)


def write_image(path: str | os.PathLike[str], image: np.ndarray, trailer: bytes = b"") -> None:
    """Encode `[H, W, 3]` uint8 RGB by the file's extension and write it atomically, followed by `trailer`
    (bytes after the image's end, which decoders skip: `grapepose.io.drawings.DRAWING_MARK`)."""
    p = Path(path)
    try:
        ok, buf = cv2.imencode(p.suffix or ".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    except cv2.error:  # OpenCV 5 raises for an extension it has no encoder for
        ok = False
    if not ok:
        raise GrapeposeError(f"{p}: cannot encode image as {p.suffix!r}")
    atomic_write_bytes(p, buf.tobytes() + trailer)


# ---------------------------------------------------------------- atomic output
def check_output_path(path: str | os.PathLike[str], kind: Literal["file", "dir"] = "file") -> Path:
    """Check, before any work, that `path` can be written as a file or a folder; return it as a `Path`.

    Missing folders are fine (writers create them); nothing is created here. The error names `path`
    as the user gave it (never a temporary file).

    Raises:
        GrapeposeError: `path` is a folder where a file is wanted or the other way round, a parent
            is a file, or the nearest existing folder is not writable.
    """
    target = Path(path)
    if kind == "file" and target.is_dir():
        raise GrapeposeError(f"{path}: is a folder; give a file name")
    if kind == "dir" and target.exists() and not target.is_dir():
        raise GrapeposeError(f"{path}: is a file; give a folder")
    folder = target if kind == "dir" else target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise GrapeposeError(f"{path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise GrapeposeError(f"{path}: cannot write in {folder} (permission denied)")
    return target


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    The temporary file keeps `path`'s suffix so writers that pick a format by extension
    (OpenCV, safetensors) behave the same. A failed write (a full disk, a read-only file system)
    is raised as an `OSError` about `path`, never about the temporary file, also when a writer
    library reports it in its own exception type (torch, safetensors); the temporary file is removed.
    """
    target = Path(path)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get normal permissions
        os.replace(tmp_path, target)
    except Exception as e:
        error = _os_error_in(e)
        if error is None or error.errno is None:
            raise
        name = error.filename
        if isinstance(name, str) and name != os.fspath(tmp_path or "") and not Path(name).name.startswith(
            f".{target.stem}."
        ):
            raise error  # about another path, e.g. a parent folder that cannot be made
        # the user asked for `target`: a message naming the temporary file would only puzzle
        raise OSError(error.errno, error.strerror, os.fspath(target)) from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


_OS_ERROR_NUMBER = re.compile(r"\(os error (\d+)\)")


def _os_error_in(e: BaseException) -> OSError | None:
    """The operating-system error behind `e`: `e` itself, the one torch was handling when it raised its
    own error, or the number safetensors (Rust) puts in its message; None for other errors."""
    seen: BaseException | None = e
    while seen is not None and not isinstance(seen, GrapeposeError):
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    m = _OS_ERROR_NUMBER.search(str(e)) if not isinstance(e, GrapeposeError) else None
    return OSError(int(m.group(1)), os.strerror(int(m.group(1)))) if m else None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    """Serialize `obj` as JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent))


def atomic_save(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)` and move the result onto `path` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
