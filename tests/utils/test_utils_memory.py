"""retain_freed_memory: large blocks come from the heap instead of fresh mmap pages (glibc only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from grapepose.utils.memory import heap_mapped_bytes

pytestmark = pytest.mark.skipif(heap_mapped_bytes() is None, reason="needs glibc's mallinfo2")

_PROBE = """
import json, sys, torch
from grapepose.utils.memory import heap_mapped_bytes, retain_freed_memory
def mapped_while_holding_64_mib():
    before = heap_mapped_bytes()
    x = torch.empty(64 << 20, dtype=torch.uint8)
    grown = heap_mapped_bytes() - before
    del x
    return grown
out = {"default": mapped_while_holding_64_mib()}
out["retained"] = retain_freed_memory()
out["again"] = retain_freed_memory()
out["after"] = mapped_while_holding_64_mib()
print(json.dumps(out))
"""


def _probe(**env: str) -> dict:
    run = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_large_blocks_leave_mmap_once_retained():
    out = _probe(GRAPEPOSE_MALLOC="")
    assert out["default"] >= 64 << 20  # glibc maps a 64 MiB block on its own
    assert out["retained"] is True and out["again"] is True
    assert out["after"] == 0  # now it comes from the heap, where freed memory is reused


def test_system_malloc_can_be_kept():
    out = _probe(GRAPEPOSE_MALLOC="system")
    assert out["retained"] is False
    assert out["after"] >= 64 << 20
