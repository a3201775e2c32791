"""The JSON API gives what `PoseEstimator` gives on the same image, in every way of sending it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from grapepose import __version__
from grapepose.api import PoseEstimator
from grapepose.config import apply_overrides
from grapepose.io.files import read_image
from grapepose.visualize import MIN_JOINT_SCORE


def _expected(estimator, path, score_thr=0.1):
    poses = estimator(path)
    return poses[poses.scores >= score_thr] if score_thr > 0 else poses


def _assert_same(body, poses):
    assert body["num_people"] == len(poses) == len(body["people"])
    got_kp = np.array([p["keypoints"] for p in body["people"]], np.float64).reshape(poses.keypoints.shape)
    got_sc = np.array([p["score"] for p in body["people"]], np.float64)
    got_joints = np.array([p["keypoint_scores"] for p in body["people"]], np.float64).reshape(poses.joint_scores.shape)
    np.testing.assert_allclose(got_kp[..., :2], poses.keypoints[..., :2], atol=0.01)
    np.testing.assert_allclose(got_kp[..., 2], poses.keypoints[..., 2], atol=1e-4)
    np.testing.assert_allclose(got_sc, poses.scores, atol=1e-4)
    np.testing.assert_allclose(got_joints, poses.joint_scores, atol=1e-4)


def test_raw_body_gives_the_estimators_poses(client, estimator, photo):
    expected = _expected(estimator, photo)
    assert len(expected) > 0  # the calibrated model finds people in the crowd photo
    r = client.post("/v1/poses", content=photo.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200
    body = r.json()
    h, w = read_image(photo).shape[:2]
    assert (body["width"], body["height"]) == (w, h)
    _assert_same(body, expected)
    assert body["keypoint_names"] == list(estimator.spec.names)
    assert body["skeleton"] == [list(p) for p in estimator.spec.skeleton]
    assert body["latency_ms"] > 0


def test_multipart_upload_gives_the_same_poses(client, estimator, photo):
    r = client.post("/v1/poses", files={"image": ("crowd.jpg", photo.read_bytes(), "image/jpeg")})
    assert r.status_code == 200
    _assert_same(r.json(), _expected(estimator, photo))


def test_png_upload_decodes_like_the_file(client, estimator, photo, tmp_path):
    png = tmp_path / "crowd.png"
    cv2.imwrite(str(png), cv2.imread(str(photo)))
    r = client.post("/v1/poses", content=png.read_bytes(), headers={"Content-Type": "image/png"})
    assert r.status_code == 200
    _assert_same(r.json(), _expected(estimator, png))


def test_score_threshold_and_flip_overrides(client, estimator, photo):
    data = photo.read_bytes()
    everyone = client.post("/v1/poses?score_thr=0", content=data).json()
    _assert_same(everyone, _expected(estimator, photo, 0))
    top = sorted(p["score"] for p in everyone["people"])[-1]
    only_best = client.post(f"/v1/poses?score_thr={top - 1e-3:.4f}", content=data).json()
    assert only_best["num_people"] == sum(p["score"] >= top - 1e-3 for p in everyone["people"]) >= 1

    nobody = client.post("/v1/poses?score_thr=1", content=data).json()
    assert (nobody["num_people"], nobody["people"]) == (0, [])

    flipped = PoseEstimator(estimator.model, apply_overrides(estimator.config, ["test.flip=true"]), "cpu")
    r = client.post("/v1/poses?flip=1&score_thr=0", content=data)
    assert r.status_code == 200
    _assert_same(r.json(), _expected(flipped, photo, 0))
    assert r.json()["people"] != everyone["people"]  # the flip test did change the answer


def test_scales_override_matches_a_multiscale_estimator(client, estimator, photo):
    multi = PoseEstimator(estimator.model, apply_overrides(estimator.config, ["test.scales=[0.5,1]"]), "cpu")
    r = client.post("/v1/poses?scales=0.5,1&score_thr=0", content=photo.read_bytes())
    assert r.status_code == 200
    _assert_same(r.json(), _expected(multi, photo, 0))


@pytest.mark.parametrize("fmt, magic", [("jpeg", b"\xff\xd8\xff"), ("png", b"\x89PNG")])
def test_draw_returns_the_drawn_image(client, estimator, photo, fmt, magic):
    r = client.post(f"/v1/poses?draw=1&format={fmt}", content=photo.read_bytes())
    assert r.status_code == 200
    assert r.headers["content-type"] == f"image/{fmt}"
    assert r.content.startswith(magic)
    expected = _expected(estimator, photo)
    assert r.headers["x-people"] == str(len(expected))
    drawn = cv2.cvtColor(cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    want = expected.draw(read_image(photo))
    assert drawn.shape == want.shape
    if fmt == "png":
        np.testing.assert_array_equal(drawn, want)
    else:
        assert np.abs(drawn.astype(int) - want).mean() < 3  # JPEG quality 90


def test_draw_leaves_out_joints_below_min_joint_score(client, estimator, photo):
    expected = _expected(estimator, photo)
    image = read_image(photo)
    hidden = (expected.joint_scores < 0.6).sum()
    assert 0 < hidden < expected.joint_scores.size  # the threshold matters on this photo
    drawn = {}
    for thr in (0, 0.6):
        r = client.post(f"/v1/poses?draw=1&format=png&min_joint_score={thr}", content=photo.read_bytes())
        assert r.status_code == 200
        drawn[thr] = cv2.cvtColor(cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(drawn[thr], expected.draw(image, min_joint_score=thr))
    assert not np.array_equal(drawn[0], drawn[0.6])


def test_batch_endpoint_answers_each_image(client, estimator, shared_data):
    paths = [shared_data / "demo" / n for n in ("crowd_01.jpg", "crowd_02.jpg", "crowd_03.jpg")]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    r = client.post("/v1/poses:batch?score_thr=0", files=files)
    assert r.status_code == 200
    body = r.json()
    assert [e["name"] for e in body["results"]] == [p.name for p in paths]
    for entry, poses in zip(body["results"], estimator.predict(paths)):
        _assert_same(entry, poses)
    assert body["keypoint_names"] == list(estimator.spec.names)


def test_model_and_health(client, estimator):
    info = client.get("/v1/model").json()
    assert info["version"] == __version__
    assert info["weights"] == "tiny"
    assert info["device"] == "cpu"
    assert info["keypoints"]["names"] == list(estimator.spec.names)
    assert info["keypoints"]["skeleton"] == [list(p) for p in estimator.spec.skeleton]
    assert info["defaults"] == {"flip": False, "scales": [1.0], "score_thr": 0.1, "min_joint_score": MIN_JOINT_SCORE}
    assert info["config"]["test"]["base_size"] == 128
    assert info["limits"]["max_image_mb"] == 20.0
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/v1/poses" in js.text
    assert "://" not in page.text + js.text  # everything is served from the package: no CDN
    assert client.get("/static/style.css").status_code == 200
