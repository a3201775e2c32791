"""The calling thread's alternate signal stack, kept as it was across a native library's calls.

OpenVINO's CPU plugin gives the thread that compiles a model an alternate signal stack of its own
and, when that compiled model is destroyed, puts back the one it found. Two compiled models
destroyed in the order they were made (the first one first) leave the thread registered on the
second one's stack after it has been freed. CPython runs every Python-level signal handler on the
alternate stack (`SA_ONSTACK`), so the next handled signal on that thread (SIGCHLD once torch's
DataLoader has set its handler, SIGINT, SIGTERM) kills the process with SIGSEGV.
`keep_signal_stack` undoes the change at once, so the stack a compiled model puts back is always
the thread's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

__all__ = ["keep_signal_stack", "signal_stack"]


class _StackT(ctypes.Structure):
    """Linux `stack_t` (macOS orders the fields differently; there this module does nothing)."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - a Linux without a dynamic libc
        return None


_LIBC = _libc()


def signal_stack() -> tuple[int, int, int] | None:
    """The calling thread's alternate signal stack as `(address, flags, size)`; None off Linux."""
    if _LIBC is None:
        return None
    current = _StackT()
    if _LIBC.sigaltstack(None, ctypes.byref(current)) != 0:
        return None
    return int(current.ss_sp or 0), int(current.ss_flags), int(current.ss_size)


@contextlib.contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Restore the calling thread's alternate signal stack when the block ends (see the module's text)."""
    saved = signal_stack()
    try:
        yield
    finally:
        if saved is not None and _LIBC is not None and signal_stack() != saved:
            sp, flags, size = saved
            _LIBC.sigaltstack(ctypes.byref(_StackT(sp or None, flags & ~1, size)), None)  # SS_ONSTACK is read-only
