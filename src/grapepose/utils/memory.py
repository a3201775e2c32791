"""Keep freed memory in the process heap for reuse while training on CPU (glibc only)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

__all__ = ["heap_mapped_bytes", "retain_freed_memory"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # free heap at the top goes back to the system only beyond 2 GiB (int max)
_retained = False


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # musl and others: no GNU libc
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def retain_freed_memory() -> bool:
    """Serve large blocks from the heap and reuse freed ones, as PyTorch's CUDA allocator does.

    glibc maps every block above 32 MiB with `mmap` and unmaps it on free, so each of a CPU
    training step's [L, L] attention tensors (64 MiB at 256², batch 4) is new memory whose pages
    all fault and are zeroed by the kernel when first written: about a quarter of the step. With
    `mmap` off for `malloc` and a high trim threshold, freed blocks are reused; the cost is that
    the process keeps its peak heap instead of returning it. Process-wide and irreversible; the
    trainer calls it for CPU runs. `GRAPEPOSE_MALLOC=system` in the environment turns it off.

    Returns:
        Whether the setting is in effect (False on systems without glibc, or when turned off).
    """
    global _retained
    if _retained:
        return True
    if os.environ.get("GRAPEPOSE_MALLOC", "").lower() == "system":
        return False
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)):
        return False
    _retained = True
    log.debug("malloc: large blocks come from the heap and freed memory is kept for reuse")
    return True


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]  # fmt: skip


def heap_mapped_bytes() -> int | None:
    """Bytes that malloc currently holds in `mmap`ed blocks (glibc's mallinfo2 `hblkhd`), or None."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)
