"""`predict --resume`: which inputs an earlier run finished, and the refusals, one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grapepose.cli.main import main
from grapepose.errors import GrapeposeError
from grapepose.predict_job.journal import OutputFolder
from grapepose.predict_job.resume import resume_plan
from grapepose.io.sources import Source

J = Path("out/results.jsonl")


def _sources() -> list[Source]:
    return [Source("image", path=Path("a/1.jpg"), group=0), Source("image", path=Path("a/2.jpg"), group=0),
            Source("video", path=Path("clip.mp4"), group=1), Source("image", path=Path("b/3.jpg"), group=2),
            Source("video", path=Path("other.mp4"), group=3)]  # fmt: skip


def _image(i: int, name: str) -> dict:
    return {"image_id": i, "file_name": name, "results": [], "source": i}


def _frame(source: int, frame: int, name: str) -> dict:
    return {"image_id": 9, "video": name, "frame": frame, "results": [], "source": source}


def test_finished_images_and_videos_read_to_their_end_are_kept():
    lines = [_image(0, "1.jpg"), _frame(2, 0, "clip.mp4"), _frame(2, 1, "clip.mp4"),
             {"source": 2, "video": "clip.mp4", "done": True}, _frame(4, 0, "other.mp4"), _image(3, "3.jpg")]  # fmt: skip
    kept, done = resume_plan(lines, _sources(), J)
    assert done == {0, 2, 3}  # other.mp4 stopped after its first frame: redone from the start; 2.jpg never came
    assert kept == [lines[i] for i in (0, 1, 2, 3, 5)]


def test_with_track_an_image_sequence_is_kept_whole_or_redone():
    lines = [_image(0, "1.jpg"), _image(3, "3.jpg")]
    kept, done = resume_plan(lines, _sources(), J, track=True)
    assert done == {3} and kept == [lines[1]]  # a/ lacks 2.jpg: its track ids must start again at 1.jpg


def test_lines_repeated_by_an_interrupted_resume_count_once():
    line = _image(0, "1.jpg")
    kept, done = resume_plan([line, dict(line)], _sources(), J)
    assert kept == [line] and done == {0}


def test_other_inputs_are_refused_in_one_line():
    with pytest.raises(GrapeposeError) as e:
        resume_plan([_image(1, "7.jpg")], _sources(), J)
    assert str(e.value) == (f"{J}: the earlier run read other inputs (its input 2 was 7.jpg, now it is 2.jpg); "
                            "give --resume the same SOURCEs, or pass --overwrite")  # fmt: skip
    with pytest.raises(GrapeposeError, match=r"its input 9 was x.jpg, now it is missing"):
        resume_plan([_image(8, "x.jpg")], _sources(), J)


def test_a_journal_without_input_numbers_is_refused_in_one_line():
    with pytest.raises(GrapeposeError) as e:
        resume_plan([{"image_id": 0, "file_name": "1.jpg", "results": []}], _sources(), J)
    assert str(e.value) == (f"{J}: this journal does not name its inputs (an older grapepose wrote it); it cannot "
                            "be resumed: pass --overwrite to start again")  # fmt: skip


def test_the_folder_reads_the_journal_and_the_parts_and_starts_with_the_kept_lines(tmp_path):
    first = {**_image(0, "1.jpg"), "results": [{"image_id": 0, "score": 0.5}]}
    (tmp_path / "results.jsonl").write_text(json.dumps(first) + "\n" + '{"torn')
    (tmp_path / "results.rank1.jsonl").write_text(json.dumps(_image(3, "3.jpg")) + "\n")
    folder = OutputFolder(tmp_path, resume=True).open(journal=False)
    try:
        assert [line["source"] for line in folder.previous] == [0, 3]  # the torn last line is left out
        folder.start(folder.previous[:1])
        assert not (tmp_path / "results.rank1.jsonl").exists() and folder.frames == 1
        folder.add([{"image_id": 0, "score": 0.7}], image_id=0, file_name="2.jpg", source=1)  # a resumed run's id
        results = folder.finish(sources=_sources())
    finally:
        folder.close()
    # in input order, with the ids one uninterrupted run gives (numbered names keep their number)
    assert results == [{"image_id": 1, "score": 0.5}, {"image_id": 2, "score": 0.7}]
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert not (tmp_path / "results.jsonl").exists()
    again = OutputFolder(tmp_path, resume=True).open(journal=False)
    again.close()
    assert again.finished_before


def _predict(*args: str) -> int:
    return main(["predict", *args, "--device", "cpu", "--no-draw", "--preset", "coco_w18s", "--set",
                 "test.base_size=64", "--no-flip"])  # fmt: skip


def test_resume_and_overwrite_together_are_one_line(tmp_path, capsys, shared_data):
    assert _predict(str(shared_data / "demo" / "crowd_01.jpg"), "--out", str(tmp_path), "--resume", "--overwrite") == 2
    assert capsys.readouterr().err == (
        "grapepose predict: error: --resume keeps an earlier run's results and --overwrite replaces them: pass one\n"
    )


def test_resume_of_a_finished_run_does_nothing(tmp_path, capsys, shared_data):
    image = str(shared_data / "demo" / "crowd_01.jpg")
    assert _predict(image, "--out", str(tmp_path), "--resume") == 0  # nothing earlier: a normal run
    before = (tmp_path / "results.json").read_text()
    capsys.readouterr()
    assert _predict(image, "--out", str(tmp_path), "--resume") == 0
    assert capsys.readouterr().out == (
        f"{tmp_path / 'results.json'}: the earlier run in {tmp_path} went to its end; nothing to resume\n"
    )
    assert (tmp_path / "results.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_overwrite_removes_every_earlier_journal_before_a_torchrun_job_merges(tmp_path):
    for name in ("results.jsonl", "results.rank0.jsonl"):
        (tmp_path / name).write_text(json.dumps(_image(0, "1.jpg")) + "\n")
    folder = OutputFolder(tmp_path, overwrite=True).open(journal=False)  # rank 0 of a job: no journal of its own
    folder.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing stale left to be merged


def test_a_resumed_folder_keeps_its_journal_until_start(tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps(_image(0, "1.jpg")) + "\n")
    with OutputFolder(tmp_path, resume=True) as folder:  # open() alone must not empty the earlier journal
        assert len(folder.previous) == 1
        assert (tmp_path / "results.jsonl").read_text().count("\n") == 1


class _Camera:
    """A webcam whose user presses Ctrl-C after three frames (how a webcam run ends)."""

    fps, frame_count = 10.0, None

    def __init__(self, source) -> None:
        pass

    def __iter__(self):
        for i in range(3):
            yield __import__("numpy").full((32, 48, 3), 90 + i, "uint8")
        raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_a_webcam_run_ended_by_ctrl_c_leaves_nothing_to_resume(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import grapepose.predict_job.runner as runner

    monkeypatch.setattr(runner, "VideoReader", _Camera)
    args = ["predict", "0", "--out", str(tmp_path), "--weights", str(tiny_checkpoint), "--device", "cpu",
            "--no-draw", "--score-thr", "0", "--set", "test.base_size=64"]  # fmt: skip
    assert main(args) == 0
    n = len({r["frame"] for r in json.loads((tmp_path / "results.json").read_text())})
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"grapepose predict: stopped by Ctrl-C; the {n} finished frames are in {tmp_path / 'results.json'}"
    )  # and no "--resume does the rest"
    assert n >= 1 and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no journal: it is complete


def test_a_full_disk_when_the_resumed_journal_is_written_is_one_line_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    import grapepose.predict_job.journal as journal_mod

    old = json.dumps(_image(0, "1.jpg")) + "\n"
    (tmp_path / "results.jsonl").write_text(old)

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_mod, "atomic_write_text", full)
    folder = OutputFolder(tmp_path, resume=True).open(journal=False)
    try:
        with pytest.raises(GrapeposeError) as e:
            folder.start(folder.previous)
    finally:
        folder.close()
    assert str(e.value) == f"{tmp_path / 'results.jsonl'}: cannot write (No space left on device)"
    assert (tmp_path / "results.jsonl").read_text() == old
