import json
import os
import stat

import pytest

from grapepose.io.files import atomic_path, atomic_write_json


def test_atomic_write_creates_parents_and_normal_permissions(tmp_path):
    out = tmp_path / "a" / "b" / "r.json"
    atomic_write_json(out, {"x": 1})
    assert json.loads(out.read_text()) == {"x": 1}
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable by others (umask permitting)
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]


def test_failed_write_leaves_previous_file(tmp_path):
    out = tmp_path / "r.json"
    atomic_write_json(out, {"done": True})
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(out.read_text()) == {"done": True}
    assert os.listdir(tmp_path) == ["r.json"]


def test_a_failed_write_names_the_requested_file_not_the_temporary_one(tmp_path):
    import errno

    target = tmp_path / "out" / "results.json"
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))  # as a writer would
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert str(info.value) == f"[Errno 28] No space left on device: '{target}'"
    assert os.listdir(target.parent) == []  # the temporary file is gone, nothing was renamed
    with pytest.raises(ValueError, match="other"):  # other errors pass unchanged
        with atomic_path(target):
            raise ValueError("other")
