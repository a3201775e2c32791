"""KeypointDataset: real fixtures, keypoint metadata, ignore masks and clear errors on bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pycocotools.mask as pcm
import pytest
from _data_helpers import FIVE, person, write_dataset

from grapepose.config import DataConfig
from grapepose.data import KeypointDataset, Sample, TrainingDataset
from grapepose.errors import DataError
from grapepose.keypoints import COCO_KEYPOINTS, CROWDPOSE_KEYPOINTS

FIXTURES = [
    ("coco", "test_coco.json", 4, 17),
    ("crowdpose", "test_crowdpose.json", 2, 14),
    ("ochuman", "test_ochuman.json", 3, 17),
]


@pytest.mark.parametrize("name,ann,images,k", FIXTURES)
def test_fixtures_load(shared_data: Path, name: str, ann: str, images: int, k: int) -> None:
    ds = KeypointDataset(shared_data / name / ann, shared_data / name, dataset=name)
    builtin = CROWDPOSE_KEYPOINTS if k == 14 else COCO_KEYPOINTS
    assert len(ds) == images and ds.spec == builtin  # incl. CrowdPose's bad JSON skeleton replaced
    raw = json.loads((shared_data / name / ann).read_text())["annotations"]
    labelled = sum(1 for a in raw if any(v > 0 for v in a["keypoints"][2::3]))
    people = 0
    for i in range(len(ds)):
        s = ds.load(i)
        assert isinstance(s, Sample) and s.keypoints.shape[1:] == (k, 3) and s.keypoints.dtype == np.float32
        assert s.image.shape[:2] == (ds.images[i]["height"], ds.images[i]["width"])
        people += s.num_people
    assert people == labelled


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs NumPy 2
def test_zero_keypoint_person_mask_matches_segmentation(shared_data: Path) -> None:
    """COCO 40083 has one person without keypoints: its polygon becomes the ignore mask."""
    ds = KeypointDataset(shared_data / "coco" / "test_coco.json", shared_data / "coco", dataset="coco")
    i = ds.image_ids.index(40083)
    ann = next(a for a in ds.annotations_of(i) if a["num_keypoints"] == 0)
    h, w = ds.images[i]["height"], ds.images[i]["width"]
    expected = pcm.decode(pcm.merge(pcm.frPyObjects(ann["segmentation"], h, w))).astype(bool)
    s = ds.load(i)
    assert s.ignore_mask is not None and s.ignore_mask.any()
    np.testing.assert_array_equal(s.ignore_mask, expected)
    assert s.num_people == 2


def test_crowdpose_zero_keypoint_person_uses_bbox(shared_data: Path) -> None:
    root = shared_data / "crowdpose"
    ds = KeypointDataset(root / "test_crowdpose.json", root, dataset="crowdpose")
    i = ds.image_ids.index(106848)
    x, y, bw, bh = next(a for a in ds.annotations_of(i) if a["num_keypoints"] == 0)["bbox"]
    m = ds.load(i).ignore_mask
    assert m is not None
    ys, xs = np.nonzero(m)
    assert (xs.min(), ys.min()) == (int(np.floor(x)), int(np.floor(y)))
    assert (xs.max(), ys.max()) == (int(np.ceil(x + bw)) - 1, int(np.ceil(y + bh)) - 1)


def test_crowd_rle_region(tiny) -> None:  # noqa: ANN001
    m = np.zeros((48, 64), np.uint8, order="F")
    m[10:20, 30:45] = 1
    rle = pcm.encode(m)
    crowd = {"image_id": 1, "category_id": 1, "iscrowd": 1}
    crowd_compressed = {"id": 2, **crowd, "segmentation": {**rle, "counts": rle["counts"].decode()}}
    # uncompressed RLE (column-major run lengths) as crowd annotations store it
    flat = np.zeros(48 * 64, np.uint8)
    flat[5 * 48 : 7 * 48] = 1  # columns 5 and 6
    counts = [5 * 48, 2 * 48, 48 * 64 - 7 * 48]
    crowd_raw = {"id": 3, **crowd, "segmentation": {"counts": counts, "size": [48, 64]}}
    ann = tiny([person(1, [(5, 5, 2)] * 5), crowd_compressed, crowd_raw])
    s = KeypointDataset(ann, ann.parent).load(0)
    expected = m.astype(bool)
    expected[:, 5:7] = True
    np.testing.assert_array_equal(s.ignore_mask, expected)
    assert s.num_people == 1


def test_custom_five_keypoints_train(tiny) -> None:  # noqa: ANN001
    ann = tiny([person(1, [(30, 10, 2), (20, 20, 2), (40, 20, 1), (25, 40, 2), (35, 40, 0)])])
    ds = KeypointDataset(ann, ann.parent)
    assert ds.spec.names == tuple(FIVE)
    assert ds.spec.flip_index == (0, 2, 1, 4, 3)
    assert ds.spec.skeleton == ((0, 1), (0, 2))  # 1-based in the JSON
    assert len(set(ds.spec.sigmas)) == 1
    cfg = DataConfig(dataset="custom", input_size=64, output_size=16)
    item = TrainingDataset(ds, ds.spec, cfg)[0]
    shapes = {k: tuple(v.shape) for k, v in item.items()}
    assert shapes == {
        "image": (3, 64, 64), "heatmaps": (6, 16, 16), "heatmap_weights": (6, 16, 16),
        "offsets": (10, 16, 16), "offset_weights": (10, 16, 16), "visibility": (5, 16, 16),
    }  # fmt: skip


def test_metadata_overrides(tiny) -> None:  # noqa: ANN001
    ann = tiny([person(1, [(1, 1, 2)] * 5)])
    ds = KeypointDataset(ann, ann.parent, keypoint_names=list("abcde"), flip_index=[0, 1, 2, 4, 3], sigmas=[0.1] * 5)
    assert ds.spec.names == tuple("abcde") and ds.spec.flip_index == (0, 1, 2, 4, 3) and ds.spec.sigmas == (0.1,) * 5
    with pytest.raises(DataError, match="flip_index has 2 entries"):
        KeypointDataset(ann, ann.parent, flip_index=[0, 1])


def test_crowdpose_names_spelled_differently_use_builtin_tables(tiny) -> None:  # noqa: ANN001
    names = list(CROWDPOSE_KEYPOINTS.names[:12]) + ["top_head", "neck"]
    ann = tiny([person(1, [(5, 5, 2)] * 14)], names=names)
    ds = KeypointDataset(ann, ann.parent, dataset="crowdpose")
    assert ds.spec.names[12] == "top_head"
    assert ds.spec.sigmas == CROWDPOSE_KEYPOINTS.sigmas and ds.spec.flip_index == CROWDPOSE_KEYPOINTS.flip_index


def test_negatives_kept_and_counted(tiny) -> None:  # noqa: ANN001
    images = [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 32} for i in (1, 2, 3)]
    ann = tiny([person(1, [(5, 5, 2)] * 5, image_id=2)], images=images)
    ds = KeypointDataset(ann, ann.parent)
    assert len(ds) == 3 and ds.num_negatives == 2
    assert ds.load(0).num_people == 0 and ds.load(0).ignore_mask is None


def test_reference_has_no_center_for_small_coco_people(tiny) -> None:  # noqa: ANN001
    people = [person(1, [(5, 5, 2)] * 17, area=500.0), person(2, [(9, 9, 2)] * 17, area=5000.0)]
    ann = tiny(people, names=list(COCO_KEYPOINTS.names))
    assert KeypointDataset(ann, ann.parent, dataset="coco").load(0).has_center.tolist() == [False, True]
    assert KeypointDataset(ann, ann.parent, dataset="crowdpose").load(0).has_center is None


BAD = [
    (lambda d: d.pop("images"), "no 'images' list"),
    (lambda d: d["annotations"][0]["keypoints"].pop(), "annotation 7: 14 keypoint values, expected 15"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(0, float("nan")), "annotation 7: keypoints contain NaN"),
    (lambda d: d["annotations"][0]["keypoints"].__setitem__(1, -3.0), "annotation 7: .*negative coordinates"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 99), "annotation 7 refers to image id 99"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate annotation id 7"),
    (lambda d: d["images"].append(dict(d["images"][0])), "duplicate image id 1"),
    (lambda d: d["annotations"][0].__setitem__("keypoints", "x"), "annotation 7: 'keypoints' is a str"),
]


@pytest.mark.parametrize("corrupt,message", BAD)
def test_bad_annotations_name_file_and_annotation(tiny, corrupt, message: str) -> None:  # noqa: ANN001
    ann = tiny([person(7, [(5, 5, 2)] * 5)])
    data = json.loads(ann.read_text())
    corrupt(data)
    ann.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message) as e:
        KeypointDataset(ann, ann.parent)
    assert str(ann) in str(e.value) and "\n" not in str(e.value)


def test_not_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("{nope")
    with pytest.raises(DataError, match=r"x\.json: not valid JSON"):
        KeypointDataset(p, tmp_path)
    with pytest.raises(DataError, match="annotation file not found"):
        KeypointDataset(tmp_path / "missing.json", tmp_path)


def test_missing_image_files_listed(tmp_path: Path) -> None:
    images = [{"id": i, "file_name": f"{i}.png", "height": 8, "width": 8} for i in range(8)]
    ann = write_dataset(tmp_path, [], images=images)
    for i in range(1, 8):
        (tmp_path / f"{i}.png").unlink()
    listed = r"1\.png, 2\.png, 3\.png, 4\.png, 5\.png and 2 more"
    with pytest.raises(DataError, match=rf"7 of 8 image files missing .*: {listed}"):
        KeypointDataset(ann, tmp_path)
    assert len(KeypointDataset(ann, tmp_path, check_images=False)) == 8


def test_corrupt_image_raises_on_load_and_is_skipped_in_training(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    images = [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 32} for i in (1, 2)]
    ann = write_dataset(tmp_path, [person(1, [(5, 5, 2)] * 5, image_id=2)], images=images)
    (tmp_path / "1.png").write_bytes(b"not an image")
    ds = KeypointDataset(ann, tmp_path)
    with pytest.raises(DataError, match=r"1\.png: cannot decode image"):
        ds.load(0)
    train = TrainingDataset(ds, ds.spec, DataConfig(input_size=64, output_size=16))
    with caplog.at_level(logging.WARNING):
        item = train[0]  # replaced by image 2
    assert train.skipped == 1 and "skipping sample 0" in caplog.text
    assert item["heatmaps"].shape == (6, 16, 16) and item["heatmaps"].max() > 0
