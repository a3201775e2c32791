"""Ctrl-C / SIGTERM as a request to stop: the first asks, a second stops at once, the old handlers come back."""

import os
import signal

import pytest

from grapepose.predict_job.stop import StopRequest


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)  # a signal to this process runs its Python handler before the next line


def test_the_first_signal_asks_a_second_one_interrupts_and_the_handlers_come_back():
    before = {s: signal.getsignal(s) for s in StopRequest.SIGNALS}
    stop = StopRequest().install()
    try:
        assert not stop.is_set() and stop.signum is None
        _send(signal.SIGTERM)
        assert stop.is_set() and stop.event.is_set() and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            _send(signal.SIGINT)
        stop.hold()  # while results.json is written: ignored
        _send(signal.SIGINT)
        assert stop.signum == signal.SIGTERM
    finally:
        stop.restore()
    assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before
