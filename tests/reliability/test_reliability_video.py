"""Videos under faults: Ctrl-C keeps the finished frames (JSON and a playable partial video); a truncated
file is said to be truncated."""

from __future__ import annotations

import signal

from _predict_helpers import FAST, frames_in, results, start_predict, tiny_video, wait_for_lines

from grapepose.cli.main import main


def test_ctrl_c_keeps_the_finished_frames_and_a_playable_partial_video(tmp_path, tiny_checkpoint):
    video = tiny_video(tmp_path / "clip.mp4", 60)
    out = tmp_path / "out"
    proc = start_predict([str(video), "--out", str(out), "--weights", str(tiny_checkpoint), "--show-black", *FAST],
                         tmp_path)  # fmt: skip
    wait_for_lines(out / "results.jsonl", 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    frames = sorted({r["frame"] for r in results(out)})
    n = frames_in(out / "clip_pose.mp4")
    assert 3 <= n < 60 and frames == list(range(n))  # every drawn frame has its results, and no more
    assert frames_in(out / "clip_black.mp4") == n
    assert err.strip().splitlines()[-1] == (
        f"grapepose predict: stopped by Ctrl-C; the {n} finished frames are in {out / 'results.json'} "
        "(--resume does the rest)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["clip_black.mp4", "clip_pose.mp4", "results.json",
                                                     "results.jsonl"]  # fmt: skip
    # --resume redoes a video stopped halfway from its first frame (a video file cannot be appended to)
    args = [str(video), "--out", str(out), "--weights", str(tiny_checkpoint), "--show-black", *FAST, "--resume"]
    assert main(["predict", *args]) == 0
    assert sorted({r["frame"] for r in results(out)}) == list(range(60))
    assert frames_in(out / "clip_pose.mp4") == frames_in(out / "clip_black.mp4") == 60
    assert sorted(p.name for p in out.iterdir()) == ["clip_black.mp4", "clip_pose.mp4", "results.json"]


def test_a_truncated_video_is_processed_with_a_warning(tmp_path, tiny_checkpoint, caplog):
    full = tiny_video(tmp_path / "full.avi", 12, fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    n = frames_in(cut)
    assert 0 < n < 11
    out = tmp_path / "out"
    assert main(["predict", str(cut), "--out", str(out), "--weights", str(tiny_checkpoint), "--no-draw", *FAST]) == 0
    assert f"{cut}: only {n} of its 12 frames could be decoded (truncated or corrupt file?)" in caplog.text
    assert sorted({r["frame"] for r in results(out)}) == list(range(n))
