"""Keypoint datasets are annotated on the stored pixels: their reader must ignore EXIF orientation."""

from _data_helpers import person, write_dataset
from PIL import Image

from grapepose.data import KeypointDataset
from grapepose.io.files import read_image


def test_dataset_reads_stored_pixels_while_photos_get_exif_applied(tmp_path):
    ann = write_dataset(tmp_path, [person(1, [(10, 20, 2)] * 5)], size=(40, 60))
    img = Image.open(tmp_path / "a.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    img.save(tmp_path / "a.jpg", exif=exif.tobytes())
    (tmp_path / "ann.json").write_text((tmp_path / "ann.json").read_text().replace("a.png", "a.jpg"))
    assert read_image(tmp_path / "a.jpg").shape == (60, 40, 3)  # a photo: orientation applied
    sample = KeypointDataset(ann, tmp_path).load(0)
    assert sample.image.shape == (40, 60, 3)  # the annotation's coordinate frame


def test_training_set_skips_images_without_annotations_unless_asked(tmp_path):
    from dataclasses import replace

    from grapepose.config import load_config

    images = [{"id": i, "file_name": f"{i}.png", "height": 48, "width": 64} for i in (1, 2, 3)]
    ann = write_dataset(tmp_path, [person(1, [(10, 20, 2)] * 5, image_id=2)], images=images)
    cfg = load_config(None, [f"data.ann={ann}", f"data.root={tmp_path}", "data.dataset=custom"]).data
    train = KeypointDataset.from_config(cfg)
    assert len(train) == 1 and train.load(0).image_id == 2 and train.num_negatives == 2
    assert len(KeypointDataset.from_config(replace(cfg, train_negatives=True))) == 3
    assert len(KeypointDataset(ann, tmp_path)) == 3  # plain construction keeps negatives (e.g. evaluation)
