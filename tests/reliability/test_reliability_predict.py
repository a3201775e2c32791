"""`grapepose predict` under faults: finished results and drawings survive, each fault is one clear line.

Signals come from this (helper) process to a predict subprocess; the full disk is a monkeypatched writer.
"""

from __future__ import annotations

import errno
import json
import signal

import cv2
import numpy as np
import pytest
from _predict_helpers import FAST, results, run_predict, start_predict, tiny_images, wait_for_lines
from PIL import Image

import grapepose.predict_job.journal as journal_mod
import grapepose.predict_job.runner as runner_mod
from grapepose.predict_job.journal import read_journal, read_journal_lines

pytestmark = pytest.mark.usefixtures("predict_loads_once")  # conftest.py


def _no_leftovers(out):
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".jsonl"]


def _drawn(out):
    return sorted(p.name for p in out.glob("*_pose.*"))


def test_rerun_into_a_finished_out_is_refused_before_any_work(tmp_path, tiny_checkpoint, capsys):
    images = tiny_images(tmp_path / "in", 3)
    out = tmp_path / "out"
    assert run_predict(*images, "--out", out, weights=tiny_checkpoint) == 0
    before = (out / "results.json").read_text()
    assert {r["file_name"] for r in json.loads(before)} == {"000.png", "001.png", "002.png"}
    capsys.readouterr()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert run_predict(broken, "--out", out, weights=tiny_checkpoint) == 2
    assert capsys.readouterr().err == (
        f"grapepose predict: error: {out / 'results.json'}: results of an earlier run are there; "
        "pass --overwrite to replace them, or choose another --out\n"
    )
    assert (out / "results.json").read_text() == before  # 3 images' people not replaced by []
    assert run_predict(images[0], "--out", out, "--overwrite", weights=tiny_checkpoint) == 0
    assert {r["file_name"] for r in results(out)} == {"000.png"}
    _no_leftovers(out)


def test_a_concurrent_run_into_the_same_out_is_refused(tmp_path, tiny_checkpoint, capsys):
    images = tiny_images(tmp_path / "in", 40)
    out = tmp_path / "out"
    proc = start_predict([str(tmp_path / "in"), "--out", str(out), "--weights", str(tiny_checkpoint), *FAST], tmp_path)
    try:
        wait_for_lines(out / "results.jsonl", 1, proc)
        assert run_predict(images[0], "--out", out, "--overwrite", weights=tiny_checkpoint) == 2
        assert capsys.readouterr().err == (
            f"grapepose predict: error: {out}: another grapepose predict (pid {proc.pid}) is writing into this "
            f"folder; wait for it or choose another --out (if no such run exists, delete {out / '.grapepose-predict.lock'})\n"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=240)
    assert proc.returncode == 143  # the first run was not disturbed: it stopped on our SIGTERM, cleanly
    assert len({r["file_name"] for r in results(out)}) == len(_drawn(out)) > 0


@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_a_signal_keeps_every_finished_image(tmp_path, tiny_checkpoint, sig, code, name):
    tiny_images(tmp_path / "in", 40)
    out = tmp_path / "out"
    proc = start_predict([str(tmp_path / "in"), "--out", str(out), "--weights", str(tiny_checkpoint), *FAST], tmp_path)
    wait_for_lines(out / "results.jsonl", 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == code, err
    drawn = _drawn(out)
    assert 2 <= len(drawn) < 40
    assert err.strip().splitlines()[-1] == (
        f"grapepose predict: stopped by {name}; the {len(drawn)} finished frames are in {out / 'results.json'} "
        "(--resume does the rest)"
    )
    entries = results(out)
    assert {r["file_name"] for r in entries} == {n.replace("_pose", "") for n in drawn}
    assert all(len(r["keypoints"]) == 42 and np.isfinite(r["keypoints"]).all() for r in entries)
    for name_ in drawn:
        assert cv2.imread(str(out / name_)).shape == (48, 48, 3)  # every drawing is complete
    assert len(read_journal_lines(out / "results.jsonl")) == len(drawn)  # kept for --resume
    _resume_completes(tmp_path / "in", out, tiny_checkpoint, done=len(drawn), total=40)


def _resume_completes(inputs, out, weights, done, total):
    """`--resume` skips the `done` finished inputs, does the rest, and leaves an uninterrupted run's results."""
    inputs = inputs if isinstance(inputs, list) else [inputs]
    drawn_before = {p.name: p.stat().st_mtime_ns for p in out.glob("*_pose.*")}
    assert len(drawn_before) == done
    assert run_predict(*inputs, "--out", out, "--resume", weights=weights) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_pose.*") if p.name in drawn_before} == drawn_before
    assert len(_drawn(out)) == total  # the finished drawings were not made again, the others were
    again = out.parent / "uninterrupted"
    assert run_predict(*inputs, "--out", again, weights=weights) == 0
    assert (out / "results.json").read_text() == (again / "results.json").read_text()
    _no_leftovers(out)


def test_kill_9_keeps_the_journal_and_the_next_run_says_so(tmp_path, tiny_checkpoint, capsys, caplog):
    tiny_images(tmp_path / "in", 40)
    out = tmp_path / "out"
    proc = start_predict([str(tmp_path / "in"), "--out", str(out), "--weights", str(tiny_checkpoint), *FAST], tmp_path)
    wait_for_lines(out / "results.jsonl", 2, proc)
    proc.kill()
    proc.communicate(timeout=60)
    kept = read_journal(out / "results.jsonl")
    assert len({r["file_name"] for r in kept}) >= 2  # fsynced per batch: the finished images are there
    assert (out / ".grapepose-predict.lock").read_text().split()[0] == str(proc.pid)
    assert run_predict(tmp_path / "in", "--out", out, weights=tiny_checkpoint) == 2
    assert capsys.readouterr().err == (
        f"grapepose predict: error: {out / 'results.jsonl'}: unfinished results of an earlier run that was stopped "
        "are there; pass --resume to continue it, --overwrite to replace them, or choose another --out\n"
    )
    assert f"removing the lock of a run that is no longer running (pid {proc.pid})" in caplog.text  # stale lock
    assert read_journal(out / "results.jsonl") == kept
    lines = read_journal_lines(out / "results.jsonl")
    _resume_completes(tmp_path / "in", out, tiny_checkpoint, done=len(lines), total=40)
    assert capsys.readouterr().out.startswith(
        f"resuming: {len(lines)} of 40 inputs ({len(lines)} frames) finished before, in {out / 'results.jsonl'}\n"
        f"{40 - len(lines)} frames from {40 - len(lines)} inputs in "
    )


def _full_disk_after(n, monkeypatch, module, name):
    real, calls = getattr(module, name), []

    def writer(path, *args, **kwargs):
        calls.append(path)
        if len(calls) > n:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, writer)


def test_a_full_disk_on_a_drawing_is_one_line_and_keeps_what_finished(tmp_path, tiny_checkpoint, capsys,
                                                                      monkeypatch):  # fmt: skip
    images = tiny_images(tmp_path / "in", 4)
    out = tmp_path / "out"
    real_write = runner_mod.write_image
    _full_disk_after(2, monkeypatch, runner_mod, "write_image")
    assert run_predict(*images, "--out", out, weights=tiny_checkpoint) == 2
    assert capsys.readouterr().err == (
        f"grapepose predict: error: {out / '002_pose.png'}: cannot write (No space left on device); "
        f"the 2 frames finished before are in {out / 'results.json'} (--resume does the rest)\n"
    )
    assert {r["file_name"] for r in results(out)} == {"000.png", "001.png"}
    assert _drawn(out) == ["000_pose.png", "001_pose.png"]
    monkeypatch.setattr(runner_mod, "write_image", real_write)  # space again
    _resume_completes(images, out, tiny_checkpoint, done=2, total=4)


def test_a_full_disk_on_results_json_keeps_the_journal(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    images = tiny_images(tmp_path / "in", 3)
    out = tmp_path / "out"
    _full_disk_after(0, monkeypatch, journal_mod, "atomic_write_json")
    assert run_predict(*images, "--out", out, weights=tiny_checkpoint) == 2
    assert capsys.readouterr().err == (
        f"grapepose predict: error: {out / 'results.json'}: cannot write (No space left on device); "
        f"the 3 finished frames are in {out / 'results.jsonl'}\n"
    )
    assert {r["file_name"] for r in read_journal(out / "results.jsonl")} == {"000.png", "001.png", "002.png"}
    assert not (out / "results.json").exists() and not (out / ".grapepose-predict.lock").exists()


# ---------------------------------------------------------------- smaller items (issue 12 item 6)
def test_same_numbered_name_in_two_folders_gets_two_image_ids(tmp_path, tiny_checkpoint, caplog):
    a, b = tiny_images(tmp_path / "a", 2), tiny_images(tmp_path / "b", 1)
    out = tmp_path / "out"
    assert run_predict(tmp_path / "a", tmp_path / "b", "--out", out, weights=tiny_checkpoint) == 0
    ids = {}
    for r in results(out):
        ids.setdefault(r["image_id"], set()).add(r["file_name"])
    assert len(ids) == 3 and all(len(names) == 1 for names in ids.values())  # 000.png twice: two ids
    assert f"2 images share a numbered name with another input (first: {a[0]}): they get fresh image ids" in caplog.text
    assert b[0].name == a[0].name


def test_out_equal_to_the_input_folder_does_not_reread_drawings(tmp_path, tiny_checkpoint, caplog):
    folder = tmp_path / "photos"
    tiny_images(folder, 2)
    assert run_predict(folder, "--out", folder, weights=tiny_checkpoint) == 0
    assert _drawn(folder) == ["000_pose.png", "001_pose.png"]
    assert run_predict(folder, "--out", folder, "--overwrite", weights=tiny_checkpoint) == 0
    assert f"{folder}: skipped 2 drawings of an earlier run (000_pose.png, ...): --out is this input folder" in caplog.text
    assert {r["file_name"] for r in results(folder)} == {"000.png", "001.png"}
    assert _drawn(folder) == ["000_pose.png", "001_pose.png"]  # no 000_pose_pose.png


def test_dangling_symlinks_are_named(tmp_path, tiny_checkpoint, capsys, caplog):
    folder = tmp_path / "in"
    tiny_images(folder, 1)
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    out = tmp_path / "out"
    assert run_predict(folder, "--out", out, weights=tiny_checkpoint) == 0
    assert f"{folder / 'gone.jpg'}: skipped: broken symbolic link (its target {tmp_path / 'deleted.jpg'} does not exist)" \
        in caplog.text  # fmt: skip
    capsys.readouterr()
    assert run_predict(folder / "gone.jpg", "--out", tmp_path / "out2", weights=tiny_checkpoint) == 1
    err = capsys.readouterr().err
    line = f"{folder / 'gone.jpg'}: broken symbolic link (its target {tmp_path / 'deleted.jpg'} does not exist)"
    assert err.splitlines() == [f"grapepose predict: error: {line}", "grapepose predict: 1 input(s) failed:", f"  {line}"]


def test_an_animated_gif_is_a_clip(tmp_path, tiny_checkpoint):
    frames = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8)) for i in range(4)]
    folder = tmp_path / "in"
    folder.mkdir()
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = tmp_path / "out"
    assert run_predict(folder, "--out", out, weights=tiny_checkpoint) == 0
    assert {r["frame"] for r in results(out)} <= {0, 1, 2, 3} and {r["video"] for r in results(out)} == {"anim.gif"}
    cap = cv2.VideoCapture(str(out / "anim_pose.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
