"""Writing synthetic scenes as a COCO-format keypoint dataset (images + annotations.json)."""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from grapepose.data.annotations import check_keypoint_annotations
from grapepose.errors import GrapeposeError
from grapepose.io.files import atomic_write_bytes, atomic_write_json
from grapepose.keypoints import KeypointSpec, keypoint_spec
from grapepose.synth.scene import Scene, SynthPerson, check_params, check_seed, compose_scene
from grapepose.synth.skeleton import spec_to_joints
from grapepose.utils.process import process_alive, this_host

__all__ = ["categories", "crowd_index", "crowd_level", "scene_rng", "generate_dataset"]

log = logging.getLogger(__name__)
_FORMATS = ("jpg", "png")


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator image `index` of a dataset with `seed` is drawn from (independent per image)."""
    return np.random.default_rng([int(seed), int(index)])


def categories(spec: KeypointSpec) -> list[dict[str, Any]]:
    """The COCO `categories` list: one person category with keypoint names and 1-based skeleton."""
    skeleton = [[a + 1, b + 1] for a, b in spec.skeleton]
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(spec.names),
             "skeleton": skeleton}]  # fmt: skip


def crowd_index(people: list[SynthPerson]) -> float:
    """CrowdPose crowd index: mean over people of (other people's labelled joints inside this
    person's box) / (this person's labelled joints); 0 for an image without labelled people."""
    kps = [p.keypoints[p.keypoints[:, 2] > 0, :2] for p in people]
    ratios = []
    for i, p in enumerate(people):
        if not len(kps[i]):
            continue
        x, y, w, h = p.bbox
        others = [k for j, k in enumerate(kps) if j != i and len(k)]
        pts = np.concatenate(others) if others else np.zeros((0, 2), np.float32)
        inside = (pts[:, 0] >= x) & (pts[:, 0] <= x + w) & (pts[:, 1] >= y) & (pts[:, 1] <= y + h)
        ratios.append(int(inside.sum()) / len(kps[i]))
    return float(np.mean(ratios)) if ratios else 0.0


def crowd_level(ci: float) -> str:
    """The CrowdPose evaluation split of a crowd index: easy < 0.2 <= medium < 0.8 <= hard."""
    return "easy" if ci < 0.2 else "medium" if ci < 0.8 else "hard"


def _polygons(scene: Scene, person: SynthPerson) -> list[list[float]]:
    """Outer contours of the person's visible pixels as COCO polygons (box if all are tiny)."""
    mask, ox, oy = scene.visible_mask(person.layer)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [(c.reshape(-1, 2) + (ox, oy)).astype(float).ravel().tolist() for c in contours if len(c) >= 3]
    if not polys:
        x, y, w, h = person.bbox
        polys = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return polys


def _annotation(scene: Scene, p: SynthPerson, image_id: int) -> dict[str, Any]:
    kp = p.keypoints
    flat = np.round(kp.astype(np.float64), 2)
    flat[:, 2] = kp[:, 2]
    return {
        "image_id": image_id, "category_id": 1, "iscrowd": 0,
        "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(flat.ravel().tolist())],
        "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": [float(v) for v in p.bbox], "area": float(p.area),
        "segmentation": _polygons(scene, p),
    }  # fmt: skip


def _render_one(job: tuple[int, int, str, int, KeypointSpec, str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Render, encode and write image `index`; return its COCO image entry and annotations (no ids)."""
    index, seed, preset, size, spec, image_dir, fmt = job
    scene = compose_scene(scene_rng(seed, index), preset, size, spec)
    name = f"{index:06d}.{fmt}"
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode(f".{fmt}", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 images
        raise GrapeposeError(f"{name}: image encoding failed")
    atomic_write_bytes(os.path.join(image_dir, name), buf.tobytes())
    ci = crowd_index(scene.people)
    image = {"id": index, "file_name": name, "width": size, "height": size, "crowdIndex": round(ci, 4)}
    anns = [_annotation(scene, p, index) for p in sorted(scene.people + scene.ignored, key=lambda q: q.layer)]
    return image, anns


def generate_dataset(
    out_dir: str | os.PathLike[str],
    preset: str,
    num_images: int,
    size: int = 512,
    seed: int = 0,
    keypoints: str | KeypointSpec = "coco",
    workers: int = 1,
    fmt: str = "jpg",
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write `num_images` synthetic images to `out_dir/images/` and `out_dir/annotations.json`.

    Image i (id i, file `{i:06d}.{fmt}`) depends only on (seed, i), so the result is the same
    whatever `workers` is. Annotation ids run from 1 in image order. The dataset is built in a
    hidden folder beside `out_dir` and renamed onto it when complete, so an interrupted run
    (Ctrl-C, an error) leaves nothing, never images without annotations. The annotations pass the
    same validation as training and evaluation input.

    Args:
        overwrite: replace a non-empty `out_dir` (default: refuse it).

    Returns:
        Summary: annotation path, image and person counts, mean crowd index and images per
        crowd level (easy/medium/hard).

    Raises:
        GrapeposeError: unknown preset, keypoint set or format; size outside [64, 4096]; seed
            outside [0, 2**32 - 1]; counts < 1; `out_dir` is a file or (without `overwrite`) not empty.
    """
    check_params(preset, size)
    check_seed(seed)
    spec = keypoint_spec(keypoints) if isinstance(keypoints, str) else keypoints
    spec_to_joints(spec)  # fail early on keypoints the figures do not have
    if int(num_images) != num_images or num_images < 1:
        raise GrapeposeError(f"synthetic data: number of images must be a positive integer, got {num_images}")
    if int(workers) != workers or workers < 1:
        raise GrapeposeError(f"synthetic data: workers must be a positive integer, got {workers}")
    if fmt not in _FORMATS:
        raise GrapeposeError(f"synthetic data: unknown image format {fmt!r}; choose one of {', '.join(_FORMATS)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise GrapeposeError(f"{out}: output path exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GrapeposeError(f"{out}: output folder is not empty; choose a new one or overwrite it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_unfinished(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-{this_host()}-{os.getpid()}-", dir=out.parent))
    except OSError as e:
        raise GrapeposeError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    try:
        summary = _write(tmp, out, preset, int(num_images), int(size), int(seed), keypoints, spec, int(workers), fmt,
                         progress)  # fmt: skip
        _move_into_place(tmp, out)
    except OSError as e:  # e.g. a full disk: name the file as the user will look for it, not the build folder's
        name = e.filename if isinstance(e.filename, str) else None
        if name is None or not Path(name).is_relative_to(tmp):
            raise
        raise OSError(e.errno, e.strerror, os.fspath(out / Path(name).relative_to(tmp))) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after the rename; otherwise the unfinished dataset
    log.info("wrote %d images, %d people to %s", summary["images"], summary["people"], summary["annotations"])
    return summary


def _remove_unfinished(out: Path) -> None:
    """Delete the hidden build folders of `out` left by runs that were killed (SIGKILL, power loss).

    A build folder is named after its machine and process; one whose process is gone is never
    going to be finished. Folders of running builds, and the `.old-` folder holding a previous
    dataset during the final rename, are left alone.
    """
    prefix = f".{out.name}.synth-"
    for path in out.parent.glob(f"{glob.escape(prefix)}*"):
        host, _, rest = path.name[len(prefix) :].rpartition("-")[0].rpartition("-")
        if not (path.is_dir() and host and rest.isascii() and rest.isdigit()) or process_alive(int(rest), host):
            continue
        shutil.rmtree(path, ignore_errors=True)
        log.warning("removed %s, the unfinished folder of an interrupted run (process %s)", path, rest)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` onto `out` (an existing `out` is moved aside first, then deleted)."""
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(
    folder: Path, out: Path, preset: str, num_images: int, size: int, seed: int, keypoints: str | KeypointSpec,
    spec: KeypointSpec, workers: int, fmt: str, progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """Render the dataset into `folder`; the summary names the files as they will be under `out`."""
    image_dir = folder / "images"
    image_dir.mkdir()
    jobs = [(i, int(seed), preset, int(size), spec, str(image_dir), fmt) for i in range(int(num_images))]
    bar = tqdm(total=len(jobs), desc=f"synth {preset}", unit="img", disable=not progress)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []

    def collect(results: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        for image, anns in results:
            images.append(image)
            base = len(annotations) + 1
            annotations.extend([{"id": base + j, **a} for j, a in enumerate(anns)])
            bar.update(1)

    with bar:
        if workers == 1:
            collect(map(_render_one, jobs))
        else:
            # One process per core already, so the workers' OpenCV runs single-threaded. Set it in the
            # parent before forking: cv2.setNumThreads inside a forked child can deadlock.
            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                with multiprocessing.get_context().Pool(int(workers)) as pool:
                    chunk = max(1, min(16, len(jobs) // (4 * workers)))
                    collect(pool.imap(_render_one, jobs, chunksize=chunk))
            finally:
                cv2.setNumThreads(threads)
    data = {
        "info": {"description": f"grapepose synthetic people, preset {preset}", "preset": preset, "seed": int(seed),
                 "size": int(size), "keypoints": keypoints if isinstance(keypoints, str) else list(spec.names)},
        "images": images, "annotations": annotations, "categories": categories(spec),
    }  # fmt: skip
    check_keypoint_annotations(data, "synthetic annotations", int_ids=True, need_area=True, need_bbox=True,
                               need_crowd_index=True)  # fmt: skip
    atomic_write_json(folder / "annotations.json", data)
    ann_path = out / "annotations.json"
    cis = np.array([im["crowdIndex"] for im in images])
    levels = [crowd_level(c) for c in cis]
    summary = {
        "annotations": str(ann_path), "images": len(images),
        "people": sum(1 for a in annotations if a["num_keypoints"] > 0),
        "crowd_index_mean": round(float(cis.mean()), 4),
        **{lv: levels.count(lv) for lv in ("easy", "medium", "hard")},
    }  # fmt: skip
    return summary

