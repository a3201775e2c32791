"""`grapepose predict` under torchrun on CPU: the ranks split the inputs and rank 0 writes the one-process results."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).resolve().parent / "shard_crash_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}  # one thread: the same floats every time


def _options(checkpoint, *more):
    # one image per batch: a batch's other images would change the last bits of the floats
    return ["--weights", str(checkpoint), "--device", "cpu", "--score-thr", "0", "--batch-size", "1",
            "test.base_size=64", *more]  # fmt: skip


def _one_process(argv):
    proc = subprocess.run([sys.executable, "-m", "grapepose", *argv], capture_output=True, text=True, env=ENV,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _torchrun(n, argv, script=("-m", "grapepose")):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *script, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)


def _ranks(n, argv):
    """Start `n` ranks the way torchrun does (env:// variables), to see each one's exit status and output."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for r in range(n):
        env = {**ENV, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(n), "LOCAL_WORLD_SIZE": str(n),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-m", "grapepose", *argv], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append((p.returncode, stdout, stderr))
    return out


def test_two_ranks_write_the_one_process_results(shared_data, tiny_checkpoint, tmp_path):
    demo = shared_data / "demo"
    sources = [str(shared_data / "coco"), str(demo / "crowd_01.jpg"), str(demo / "video.mp4")]
    options = _options(tiny_checkpoint, "--max-frames", "2")
    one, two = tmp_path / "one", tmp_path / "two"
    _one_process(["predict", *sources, "--out", str(one), *options])
    proc = _torchrun(2, ["predict", *sources, "--out", str(two), *options])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the video (2 frames) and 2 images on rank 0, 3 images on rank 1; only rank 0 reports
    assert proc.stdout.count(" frames from ") == 1 and "7 frames from 6 inputs in " in proc.stdout
    assert " on 2 ranks (4 + 3), " in proc.stdout, proc.stdout
    results = (two / "results.json").read_text()
    assert results == (one / "results.json").read_text()  # byte for byte: same order, ids and floats
    assert len({r["image_id"] for r in json.loads(results)}) == 7
    names = sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in two.iterdir()) == names  # no journals, parts or lock left
    assert len(names) == 1 + 5 + 1  # results.json, 5 drawn images, the drawn video
    for name in names:
        if name.endswith(".jpg"):
            assert np.array_equal(cv2.imread(str(one / name)), cv2.imread(str(two / name))), name


def test_track_keeps_each_sequence_on_one_rank_and_a_rank_may_have_none(shared_data, tiny_checkpoint, tmp_path):
    argv = [str(shared_data / "demo"), *_options(tiny_checkpoint, "--track", "--max-frames", "3", "--no-draw")]
    one, three = tmp_path / "one", tmp_path / "three"
    _one_process(["predict", *argv, "--out", str(one)])
    proc = _torchrun(3, ["predict", *argv, "--out", str(three)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " on 3 ranks (3 + 3 + 0), " in proc.stdout, proc.stdout  # the 3 images, the video, nothing
    results = (three / "results.json").read_text()
    assert results == (one / "results.json").read_text()
    assert all("track_id" in r for r in json.loads(results))
    assert sorted(p.name for p in three.iterdir()) == ["results.json"]


def test_a_bad_input_on_one_rank_and_a_folder_with_results(shared_data, tiny_checkpoint, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.jpg", "c.jpg"):
        shutil.copy(shared_data / "coco" / "000000000785.jpg", inputs / name)
    bad = inputs / "b.jpg"  # input 1 of 3: rank 1's
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = tmp_path / "out"
    argv = ["predict", str(inputs), "--out", str(out), *_options(tiny_checkpoint, "--no-draw")]
    (rc0, stdout0, err0), (rc1, stdout1, err1) = _ranks(2, argv)
    assert (rc0, rc1) == (1, 0), err0 + err1  # rank 0 exits as one process would; rank 1 has handed over
    line = f"{bad}: cannot decode image (corrupt or unsupported format)"
    assert err1.splitlines() == [f"[rank 1] grapepose predict: error: {line}"] and stdout1 == ""
    assert err0.splitlines()[-2:] == ["grapepose predict: 1 input(s) failed:", f"  {line}"]
    assert "2 frames from 2 inputs in " in stdout0 and " on 2 ranks (2 + 0), " in stdout0  # a.jpg, c.jpg | b.jpg
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} == {"a.jpg", "c.jpg"}

    (rc0, stdout0, err0), (rc1, stdout1, err1) = _ranks(2, argv)  # again: refused once, before any work
    assert (rc0, rc1) == (2, 0)
    assert err0.splitlines() == [
        f"grapepose predict: error: {out / 'results.json'}: results of an earlier run are there; pass --overwrite "
        "to replace them, or choose another --out"
    ]
    assert err1 == stdout1 == stdout0 == ""
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]

    missing = tmp_path / "nope.safetensors"  # every rank fails to load it: one line, as from one process
    argv = ["predict", str(inputs), "--out", str(out), "--overwrite", "--weights", str(missing), "--device", "cpu"]
    (rc0, stdout0, err0), (rc1, stdout1, err1) = _ranks(2, argv)
    assert (rc0, rc1) == (2, 0)
    assert err0.splitlines() == [f"grapepose predict: error: {missing}: no such checkpoint file (nor 'demo' or a "
                                 "preset name)"]  # fmt: skip
    assert err1 == stdout1 == stdout0 == ""
    assert {r["file_name"] for r in json.loads((out / "results.json").read_text())} == {"a.jpg", "c.jpg"}  # kept


def test_a_crashed_rank_does_not_hang_the_job(shared_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    argv = ["predict", str(shared_data / "coco"), "--out", str(out), *_options(tiny_checkpoint, "--no-draw")]
    proc = _torchrun(2, argv, script=(str(WORKER), "1"))  # rank 1 dies after its first frame (input 1)
    assert proc.returncode != 0
    assert "grapepose predict: error: a rank stopped without reporting (" in proc.stderr, proc.stderr[-3000:]
    assert "run the job again with --resume to do the rest, or with --overwrite to redo it" in proc.stderr
    merged = {r["file_name"] for r in json.loads((out / "results.json").read_text())}
    assert "000000040083.jpg" in merged  # what rank 1 finished before it died
    # torchrun stops rank 0 (SIGTERM) when rank 1 dies: it may not have finished a frame by then, and a
    # rank's empty journal is removed, so only rank 1's journal is certain to be kept for --resume
    names = sorted(p.name for p in out.iterdir())
    assert names in (["results.json", "results.rank1.jsonl"],
                     ["results.json", "results.rank0.jsonl", "results.rank1.jsonl"]), names  # fmt: skip

    # --resume keeps what the ranks finished and does the rest: the one-process results, byte for byte
    done = [json.loads(line)["source"] for name in names[1:] for line in (out / name).read_text().splitlines()]
    resumed = _torchrun(2, [*argv, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {len(set(done))} of 4 inputs ({len(done)} frames) finished before" in resumed.stdout
    one = tmp_path / "one"
    _one_process(["predict", str(shared_data / "coco"), "--out", str(one), *_options(tiny_checkpoint, "--no-draw")])
    assert (out / "results.json").read_text() == (one / "results.json").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
