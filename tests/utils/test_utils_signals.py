"""The alternate signal stack kept across native calls, and the crash it prevents (OpenVINO)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from grapepose.utils.signals import keep_signal_stack, signal_stack

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is read on Linux only")


@linux_only
def test_keep_signal_stack_puts_the_threads_stack_back():
    libc = ctypes.CDLL(None, use_errno=True)
    before = signal_stack()
    buffer = ctypes.create_string_buffer(65536)

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    with keep_signal_stack():
        assert libc.sigaltstack(ctypes.byref(StackT(ctypes.addressof(buffer), 0, len(buffer))), None) == 0
        assert signal_stack() == (ctypes.addressof(buffer), 0, len(buffer))  # what a native library does
    assert signal_stack() == before


# Two compiled models, the first destroyed first, then a handled signal: before `keep_signal_stack`
# the process died with SIGSEGV here (the thread's alternate stack had been freed), as the test suite's
# process did while waiting on a child once torch's DataLoader had set its SIGCHLD handler.
_SCRIPT = """
import gc, os, signal, sys, time
import torch
from grapepose.inference.openvino import OpenVinoModel, openvino_ir
from grapepose.models import load_model

ir = openvino_ir(load_model(sys.argv[1]))
first, second = OpenVinoModel(ir, "bf16", threads=1), OpenVinoModel(ir, "bf16", threads=1)
first(torch.zeros(1, 3, 64, 64)); second(torch.zeros(1, 3, 64, 64))
del first; gc.collect()
del second; gc.collect()
signal.signal(signal.SIGUSR1, lambda *_: print("handled", flush=True))
os.kill(os.getpid(), signal.SIGUSR1)
time.sleep(0.2)
print("alive")
"""


@linux_only
def test_a_signal_after_openvino_models_are_gone_is_handled(tiny_checkpoint, tmp_path):
    pytest.importorskip("openvino")
    env = dict(os.environ, GRAPEPOSE_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT), str(tiny_checkpoint)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split() == ["handled", "alive"]
