"""Ctrl-C and SIGTERM as a request to stop: the job ends after the frame in hand, keeping its outputs."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["StopRequest"]

Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class StopRequest:
    """Set by the first Ctrl-C or SIGTERM (`install`); a second one raises `KeyboardInterrupt` at once.

    Attributes:
        event: set once a stop was asked for.
        signum: the signal that asked (None: none did).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Handler] = {}

    def is_set(self) -> bool:
        return self.event.is_set()

    def request(self, signum: int) -> None:
        """Ask the job to stop after the frame in hand."""
        self.signum = signum
        self.event.set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.is_set():
            raise KeyboardInterrupt
        self.request(signum)

    def install(self) -> StopRequest:
        """Catch the signals (only the main thread can; elsewhere they keep their handlers)."""
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def hold(self) -> None:
        """Ignore the signals while the final results are written (milliseconds: let it finish)."""
        for s in self._previous:
            signal.signal(s, signal.SIG_IGN)

    def restore(self) -> None:
        """Give the signals their handlers from before `install` back."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}
