"""`grapepose predict` and the Python API on hostile inputs (issue 22, part A): pixel bombs, names that
collide, damaged journals, digits that are not ASCII, files that are not regular files, huge scales.

Each fault is one line naming the input and what is wrong, costs only that input, and never
replaces a finished output or a file of the user's.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from _predict_helpers import results, run_predict
from PIL import Image

import grapepose.inference.predictor as predictor_mod
from grapepose.api import PoseEstimator
from grapepose.errors import DataError
from grapepose.io.drawings import is_drawing
from grapepose.io.files import read_image
from grapepose.limits import MAX_MEGAPIXELS

pytestmark = pytest.mark.usefixtures("predict_loads_once")  # conftest.py


def _image(path, size, value=None):
    """A `size` x `size` PNG/JPEG at `path` (random pixels, or one gray `value`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(size).integers(0, 255, (size, size, 3), np.uint8)
    if value is not None:
        img = np.full((size, size), value, np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def png_bomb(path, width=100_000, height=100_000):
    """A valid PNG header declaring `width` x `height` pixels, with one empty data chunk: 65 bytes."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def _lines(err):
    return [line for line in err.splitlines() if line]


# ---------------------------------------------------------------- items 1 and 15: pixel bombs
def test_a_pixel_bomb_is_one_failed_input_and_the_run_goes_on(tmp_path, tiny_checkpoint, capsys):
    """Before: OpenCV's cv2.error escaped read_image; gray.png was never read and no results.json written."""
    small, gray = _image(tmp_path / "small.jpg", 48), _image(tmp_path / "gray.png", 40, value=128)
    bomb = png_bomb(tmp_path / "bomb.png")
    out = tmp_path / "out"
    assert run_predict(small, bomb, gray, "--out", out, weights=tiny_checkpoint) == 1
    line = f"{bomb}: 100000x100000 pixels (10000.0 MP) exceeds the {MAX_MEGAPIXELS:g} megapixel limit"
    assert _lines(capsys.readouterr().err) == [
        f"grapepose predict: error: {line}", "grapepose predict: 1 input(s) failed:", f"  {line}",
    ]  # fmt: skip
    assert {r["file_name"] for r in results(out)} == {"small.jpg", "gray.png"}
    assert sorted(p.name for p in out.glob("*_pose.*")) == ["gray_pose.png", "small_pose.jpg"]
    # the limit is a flag: an image within the default is refused below a lower one
    capsys.readouterr()
    assert run_predict(small, "--out", tmp_path / "out2", "--max-megapixels", "0.002", weights=tiny_checkpoint) == 1
    assert _lines(capsys.readouterr().err)[-1] == f"  {small}: 48x48 pixels (0.0 MP) exceeds the 0.002 megapixel limit"


def test_the_api_and_the_service_refuse_a_bomb_with_the_same_limit_and_words(tmp_path, loaded_estimator):
    """Before: the API raised the raw cv2.error; the service had a limit of its own (40 MP)."""
    from grapepose.serve.errors import HTTPError
    from grapepose.serve.images import decode_image
    from grapepose.serve.schemas import ServeSettings

    bomb = png_bomb(tmp_path / "bomb.png", 20_000, 20_000)
    reason = f"20000x20000 pixels (400.0 MP) exceeds the {MAX_MEGAPIXELS:g} megapixel limit"
    with pytest.raises(DataError) as e:
        loaded_estimator(bomb)
    assert str(e.value) == f"{bomb}: {reason}"
    with pytest.raises(HTTPError) as h:
        decode_image(bomb.read_bytes(), ServeSettings().max_megapixels, "request body")
    assert (h.value.status, h.value.message) == (413, f"request body: {reason}")
    # one bad file in a list costs only itself; the limit is an argument
    photo = _image(tmp_path / "photo.png", 48)
    assert [type(r).__name__ for r in loaded_estimator.predictor.iter_predict([photo, bomb, photo])] == ["Poses", "DataError",
                                                                                                "Poses"]  # fmt: skip
    strict = PoseEstimator(loaded_estimator.model, loaded_estimator.config, device="cpu", max_megapixels=0.002)
    with pytest.raises(DataError) as e:
        strict(photo)
    assert str(e.value) == f"{photo}: 48x48 pixels (0.0 MP) exceeds the 0.002 megapixel limit"
    assert strict(np.zeros((48, 48, 3), np.uint8)).image_size == (48, 48)  # arrays are the caller's memory already


def _patched(data, offset, fmt, *values):
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def _bombs(tmp_path):
    """Real 48x48 files of every format whose header is rewritten to declare 30000 x 20000 pixels."""
    img = np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    enc = {ext: cv2.imencode(ext, img)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".tif")}
    jpg = enc[".jpg"]
    sof = jpg.index(b"\xff\xc0")
    tif = enc[".tif"]
    ifd = struct.unpack("<I", tif[4:8])[0]
    entries = {struct.unpack("<H", tif[ifd + 2 + 12 * k : ifd + 4 + 12 * k])[0]: ifd + 2 + 12 * k
               for k in range(struct.unpack("<H", tif[ifd : ifd + 2])[0])}  # fmt: skip
    tif = _patched(_patched(tif, entries[256] + 2, "<HII", 4, 1, 30000), entries[257] + 2, "<HII", 4, 1, 20000)
    gif = io.BytesIO()
    Image.fromarray(img).save(gif, "GIF")
    webp = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 90])[1].tobytes()
    assert webp[12:16] == b"VP8 "  # lossy: 14-bit sizes at bytes 26-29
    files = {
        "bomb.jpg": _patched(jpg, sof + 5, ">HH", 20000, 30000),
        "bomb.png": _patched(enc[".png"], 16, ">II", 30000, 20000),
        "bomb.bmp": _patched(enc[".bmp"], 18, "<ii", 30000, 20000),
        "bomb.tif": tif,
        "bomb.webp": _patched(webp, 26, "<HH", 16383, 16383),
        "bomb.gif": _patched(gif.getvalue(), 6, "<HH", 30000, 20000),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return files


def test_every_format_is_refused_from_its_header(tmp_path):
    sizes = {"bomb.webp": "16383x16383 pixels (268.4 MP)"}
    for name in _bombs(tmp_path):
        with pytest.raises(DataError) as e:
            read_image(tmp_path / name)
        declared = sizes.get(name, "30000x20000 pixels (600.0 MP)")
        assert str(e.value) == f"{tmp_path / name}: {declared} exceeds the {MAX_MEGAPIXELS:g} megapixel limit"


def test_a_file_too_large_for_any_image_within_the_limit_is_not_read(tmp_path):
    big = tmp_path / "huge.jpg"
    with open(big, "wb") as f:  # sparse: 17 MB on paper, nothing on disk
        f.truncate(17_000_000)
    with pytest.raises(DataError) as e:
        read_image(big, max_megapixels=0.0001)
    assert str(e.value) == f"{big}: a file of 17 MB is larger than any image within the 0.0001 megapixel limit"


def test_the_read_ahead_is_bounded_in_bytes(loaded_estimator, monkeypatch):
    """Before: `2 * batch_size` decoded images were read ahead whatever their size (5.7 GB for three
    20000 x 20000 PNGs); now reading stops at READ_AHEAD_BYTES and large images make smaller batches."""
    one = 64 * 64 * 3
    monkeypatch.setattr(predictor_mod, "READ_AHEAD_BYTES", 2 * one)
    state = {"read": 0, "handed": 0, "most": 0}
    batches = []

    def reader(i):
        state["read"] += 1
        state["most"] = max(state["most"], state["read"] - state["handed"])
        return np.full((64, 64, 3), i, np.uint8)

    real = loaded_estimator.predictor._predict_loaded

    def counted(loaded):
        batches.append(len(loaded))
        return real(loaded)

    monkeypatch.setattr(loaded_estimator.predictor, "_predict_loaded", counted)
    got = []
    for item, image, poses in loaded_estimator.predictor.iter_predict(range(12), batch_size=6, reader=reader, with_inputs=True):
        state["handed"] += 1
        got.append((item, int(image[0, 0, 0]), type(poses).__name__))
    assert got == [(i, i, "Poses") for i in range(12)]
    # a batch ends once 2 images are held (+1 decoding); at most 2 more decode and 1 is in hand
    assert max(batches) <= 3 and sum(batches) == 12  # without the bound: batches of 6
    assert state["most"] <= 5  # without the bound: all 12 read at once


# ---------------------------------------------------------------- item 2: digits that are not ASCII
def test_a_superscript_digit_is_a_name_not_a_number(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """Before: `ValueError: invalid literal for int()` ('²'.isdigit() is true)."""
    sup, numbered = _image(tmp_path / "².jpg", 48), _image(tmp_path / "7.jpg", 40)
    out = tmp_path / "out"
    assert run_predict(sup, numbered, "--out", out, weights=tiny_checkpoint) == 0
    ids = {r["file_name"]: r["image_id"] for r in results(out)}
    assert ids == {"².jpg": 0, "7.jpg": 7}  # a numbered image keeps its number, the other counts up
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert run_predict("²", "--out", tmp_path / "out2", weights=tiny_checkpoint) == 1
    assert _lines(capsys.readouterr().err)[-1] == "  ²: no such file or folder"  # not a webcam index


def test_a_name_the_file_system_refuses_costs_only_itself(tmp_path, tiny_checkpoint, capsys):
    """Before: `OSError: [Errno 36] File name too long` ended the whole run with a traceback."""
    photo = _image(tmp_path / "a.jpg", 48)
    long_name = "1" * 300
    assert run_predict(photo, long_name, "--out", tmp_path / "out", weights=tiny_checkpoint) == 1
    assert _lines(capsys.readouterr().err)[-1] == f"  {long_name}: File name too long"
    assert {r["file_name"] for r in results(tmp_path / "out")} == {"a.jpg"}


# ---------------------------------------------------------------- item 3: scales
@pytest.mark.parametrize(
    "scales, message",
    [(["100"], "--scales must be a number in [0.25, 2], got 100"),
     (["0.5", "1", "2", "1.5"], "--scales takes at most 3 values, got 4")],
)  # fmt: skip
def test_scales_are_bounded_as_in_the_service(tmp_path, tiny_checkpoint, capsys, scales, message):
    """Before: `--scales 100` was accepted (an allocator traceback, or the machine's memory)."""
    from grapepose.serve.errors import HTTPError
    from grapepose.serve.schemas import ServeSettings, parse_options

    image = _image(tmp_path / "in" / "a.jpg", 48)
    assert run_predict(image, "--out", tmp_path / "out", "--scales", *scales, weights=tiny_checkpoint) == 2
    assert capsys.readouterr().err == f"grapepose predict: error: {message}\n"
    assert not (tmp_path / "out").exists()
    with pytest.raises(HTTPError) as e:  # the service reads the same bound
        parse_options({"scales": ",".join(scales)}, ServeSettings())
    assert e.value.status == 400


def test_the_base_size_is_bounded_too(tmp_path, tiny_checkpoint, capsys):
    """Before: `--base-size 100000` was accepted: a network input of 10^10 pixels."""
    image = _image(tmp_path / "in" / "a.jpg", 48)
    assert run_predict(image, "--out", tmp_path / "out", "--base-size", "100000", weights=tiny_checkpoint) == 2
    assert capsys.readouterr().err == "grapepose predict: error: --base-size must be in [1, 2048], got 100000\n"
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- item 4: damaged journal lines
@pytest.mark.parametrize("damage", [b"{garbage", b"[1,2,3]", bytes(range(256)).replace(b"\n", b"")],
                         ids=["not-json", "not-an-object", "not-utf8"])  # fmt: skip
def test_resume_skips_a_damaged_journal_line_with_one_warning(tmp_path, tiny_checkpoint, capsys, caplog, damage):
    """Before: JSONDecodeError, AttributeError or UnicodeDecodeError tracebacks."""
    folder = tmp_path / "in"
    for i, size in enumerate((40, 48, 56)):
        _image(folder / f"{i:03d}.png", size)
    out = tmp_path / "out"
    assert run_predict(folder, "--out", out, weights=tiny_checkpoint) == 0
    whole = (out / "results.json").read_text()
    lines = {name: [r for r in json.loads(whole) if r["file_name"] == name] for name in ("000.png", "001.png")}
    journal = b"".join(
        json.dumps({"image_id": i, "file_name": name, "source": i, "results": entries}).encode() + b"\n"
        for i, (name, entries) in enumerate(lines.items())
    )
    first, second = journal.split(b"\n")[:2]
    (out / "results.jsonl").write_bytes(first + b"\n" + damage + b"\n" + second + b"\n")
    (out / "results.json").unlink()
    (out / "002_pose.png").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*_pose.png")}
    capsys.readouterr()
    assert run_predict(folder, "--out", out, "--resume", weights=tiny_checkpoint) == 0
    assert f"{out / 'results.jsonl'}: skipped 1 damaged line(s) (line 2); --resume does their inputs again" \
        in caplog.text  # fmt: skip
    said = f"resuming: 2 of 3 inputs (2 frames) finished before, in {out / 'results.jsonl'}\n1 frames from 1 inputs"
    assert capsys.readouterr().out.startswith(said)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*_pose.png") if p.name in kept} == kept
    assert (out / "results.json").read_text() == whole


# ---------------------------------------------------------------- items 8, 9, 10: drawing names
def _drawn_size(path):
    return cv2.imread(str(path)).shape[0]


def test_the_same_name_in_three_folders_makes_three_drawings(tmp_path, tiny_checkpoint, capsys):
    """Before: x, x_2, x_2: b's drawing was replaced by c's; exit 0 and '3 drawn files' with 2 there."""
    a, b = _image(tmp_path / "a" / "x.png", 40), _image(tmp_path / "b" / "x.png", 48)
    c = _image(tmp_path / "c" / "x_2.png", 56)
    out = tmp_path / "out"
    assert run_predict(a, b, c, "--out", out, weights=tiny_checkpoint) == 0
    assert ", 3 drawn files in" in capsys.readouterr().out
    drawn = {p.name: _drawn_size(p) for p in out.glob("*_pose.png")}
    assert drawn == {"x_pose.png": 40, "x_2_pose.png": 48, "x_2_2_pose.png": 56}


def test_a_photo_named_like_a_drawing_is_never_replaced(tmp_path, tiny_checkpoint):
    """Before: `predict d/a.png d/a_pose.png --out d` replaced the photo a_pose.png with a's drawing."""
    d = tmp_path / "d"
    a, photo = _image(d / "a.png", 40), _image(d / "a_pose.png", 48)
    before = photo.read_bytes()
    assert run_predict(a, photo, "--out", d, weights=tiny_checkpoint) == 0
    assert photo.read_bytes() == before
    assert {p.name: _drawn_size(p) for p in d.glob("*_pose*.png") if p != photo} == {
        "a_2_pose.png": 40, "a_pose_pose.png": 48,
    }  # fmt: skip
    # nor is a file in --out that is no input and no drawing
    other = tmp_path / "out"
    _image(other / "a_pose.png", 56)
    assert run_predict(a, "--out", other, weights=tiny_checkpoint) == 0
    assert _drawn_size(other / "a_pose.png") == 56 and _drawn_size(other / "a_2_pose.png") == 40


def test_out_as_the_input_folder_tells_drawings_from_photos_by_their_mark(tmp_path, tiny_checkpoint, caplog):
    """Before: `predict d --out d` skipped the photo a_pose.png as 'an earlier drawing', then replaced it."""
    d = tmp_path / "d"
    _image(d / "a.png", 40)
    photo = _image(d / "a_pose.png", 48)
    before = photo.read_bytes()
    assert run_predict(d, "--out", d, weights=tiny_checkpoint) == 0
    assert "skipped" not in caplog.text
    assert {r["file_name"] for r in results(d)} == {"a.png", "a_pose.png"}  # the photo is an input
    assert photo.read_bytes() == before and not is_drawing(photo)
    assert is_drawing(d / "a_2_pose.png") and is_drawing(d / "a_pose_pose.png")
    caplog.clear()
    assert run_predict(d, "--out", d, "--overwrite", weights=tiny_checkpoint) == 0
    assert f"{d}: skipped 2 drawings of an earlier run (a_2_pose.png, ...): --out is this input folder" in caplog.text
    assert photo.read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["a.png", "a_2_pose.png", "a_pose.png", "a_pose_pose.png",
                                                   "results.json"]  # the same names again, nothing more


# ---------------------------------------------------------------- wording: files that are not regular files
def test_links_pipes_and_devices_are_named_for_what_they_are(tmp_path, tiny_checkpoint, capsys, caplog):
    """Before: a link loop and a link to /dev/zero were 'broken symbolic link (... does not exist)', a
    FIFO 'no such file or folder'."""
    d = tmp_path / "in"
    good = _image(d / "ok.png", 48)
    (d / "loop.jpg").symlink_to(d / "loop.jpg")
    (d / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(d / "fifo.jpg")
    (d / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    why = {
        "fifo.jpg": "not a regular file (a named pipe)",
        "gone.jpg": f"broken symbolic link (its target {tmp_path / 'deleted.jpg'} does not exist)",
        "loop.jpg": "symbolic link loop (following it never reaches a file)",
        "zero.jpg": "not a regular file (its target /dev/zero is a device)",
    }
    names = sorted(why)
    assert run_predict(*(d / n for n in names), good, "--out", tmp_path / "out", weights=tiny_checkpoint) == 1
    err = _lines(capsys.readouterr().err)
    assert err[-5:] == ["grapepose predict: 4 input(s) failed:", *(f"  {d / n}: {why[n]}" for n in names)]
    assert {r["file_name"] for r in results(tmp_path / "out")} == {"ok.png"}
    assert run_predict(d, "--out", tmp_path / "out2", weights=tiny_checkpoint) == 0  # in a folder: skipped, said why
    for n in names:
        assert f"{d / n}: skipped: {why[n]}" in caplog.text
    for n in names:  # the Python API says the same
        with pytest.raises(DataError) as e:
            read_image(d / n)
        assert str(e.value) == f"{d / n}: {why[n]}"
