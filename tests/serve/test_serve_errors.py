"""Every client mistake gets a 4xx with a one-line JSON error, and the service keeps working."""

from __future__ import annotations

import io

import pytest
from PIL import Image

RAW = "image (image/jpeg, image/png, image/webp, image/bmp, image/tiff, application/octet-stream)"


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="GIF")
    return buf.getvalue()


def _png(photo) -> bytes:
    buf = io.BytesIO()
    Image.open(photo).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(boundary: str, parts: str) -> bytes:
    return parts.replace("\n", "\r\n").replace("B", boundary).encode()


def _cases(photo):
    jpeg = photo.read_bytes()
    png = _png(photo)
    mp = "multipart/form-data; boundary=xyz"
    return {
        "unsupported content type": (
            dict(content=b"hello", headers={"Content-Type": "text/plain"}), 415,
            f"unsupported content type 'text/plain': send an {RAW} or multipart/form-data with the file in field 'image'",
        ),
        "form-encoded body": (
            dict(data={"image": "x"}), 415,
            "unsupported content type 'application/x-www-form-urlencoded': send an "
            f"{RAW} or multipart/form-data with the file in field 'image'",
        ),
        "not an image": (
            dict(content=b"hello world", headers={"Content-Type": "image/jpeg"}), 400,
            "request body: not an image (expected JPEG, PNG, WebP, BMP or TIFF data)",
        ),
        "truncated jpeg": (
            dict(content=jpeg[: len(jpeg) // 2], headers={"Content-Type": "image/jpeg"}), 400,
            "request body: truncated JPEG data (the file ends before the image does)",
        ),
        "truncated png": (
            dict(content=png[: len(png) // 2], headers={"Content-Type": "image/png"}), 400,
            "request body: truncated PNG data (the file ends before the image does)",
        ),
        "unsupported image format": (
            dict(content=_gif(), headers={"Content-Type": "application/octet-stream"}), 415,
            "request body: unsupported image format GIF (send JPEG, PNG, WebP, BMP or TIFF)",
        ),
        "zero-size body": (dict(content=b"", headers={"Content-Type": "image/jpeg"}), 400, "empty body: send an image"),
        "zero-size file": (
            dict(files={"image": ("a.jpg", b"", "image/jpeg")}), 400, "image 'a.jpg': empty file (0 bytes)",
        ),
        "wrong field": (
            dict(files={"file": ("a.jpg", jpeg, "image/jpeg")}), 400,
            "unexpected multipart field 'file': send the image as a file in field 'image'",
        ),
        "text instead of a file": (
            dict(files={"image": (None, "hello")}), 400, "multipart field 'image' must be a file upload, not text",
        ),
        "no field": (
            dict(content=b"--xyz--\r\n", headers={"Content-Type": mp}), 400,
            "multipart field 'image' missing: send the image as a file in it",
        ),
        "cut-off multipart": (
            dict(content=_multipart("xyz", '--B\nContent-Disposition: form-data; name="image"; filename="a.jpg"\n\nab'),
                 headers={"Content-Type": mp}), 400,
            "malformed multipart body (no closing boundary: the upload was cut off)",
        ),  # fmt: skip
        "multipart without boundary": (
            dict(content=b"xx", headers={"Content-Type": "multipart/form-data"}), 400,
            "malformed multipart body (Missing boundary in multipart)",
        ),
        "two files": (
            dict(files=[("image", ("a.jpg", jpeg, "image/jpeg")), ("image", ("b.jpg", jpeg, "image/jpeg"))]), 413,
            "too many files: at most 1 per request (use POST /v1/poses:batch for several)",
        ),
    }


PARAMS = {
    "score_thr=2": "score_thr=2: must be between 0 and 1",
    "score_thr=-0.1": "score_thr=-0.1: must be between 0 and 1",
    "score_thr=abc": "score_thr=abc: not a number",
    "score_thr=nan": "score_thr=nan: not a finite number",
    "flip=maybe": "flip=maybe: must be 1/0, true/false, yes/no or on/off",
    "draw=2": "draw=2: must be 1/0, true/false, yes/no or on/off",
    "scales=0.1": "scales=0.1: each scale must be between 0.25 and 2.0",
    "scales=1,3": "scales=1,3: each scale must be between 0.25 and 2.0",
    "scales=0.5,1,1.5,2": "scales=0.5,1,1.5,2: at most 3 scales",
    "scales=": "scales=: give 1 to 3 comma-separated numbers",
    "scales=one": "scales=one: not a number",
    "format=gif": "format=gif: must be jpeg or png",
    "min_joint_score=1.5": "min_joint_score=1.5: must be between 0 and 1",
    "min_joint_score=x": "min_joint_score=x: not a number",
    "thr=0.5": "unknown query parameter 'thr' (known: draw, flip, format, min_joint_score, scales, score_thr)",
}


@pytest.mark.parametrize("case", [
    "unsupported content type", "form-encoded body", "not an image", "truncated jpeg", "truncated png",
    "unsupported image format", "zero-size body", "zero-size file", "wrong field", "text instead of a file",
    "no field", "cut-off multipart", "multipart without boundary", "two files",
])  # fmt: skip
def test_bad_upload(client, photo, case):
    kwargs, status, message = _cases(photo)[case]
    r = client.post("/v1/poses", **kwargs)
    assert (r.status_code, r.json()) == (status, {"error": message})
    assert "\n" not in r.text


@pytest.mark.parametrize("query", sorted(PARAMS))
def test_parameter_out_of_range(client, photo, query):
    r = client.post(f"/v1/poses?{query}", content=photo.read_bytes())
    assert (r.status_code, r.json()) == (400, {"error": PARAMS[query]})


def test_size_limits(make_client, photo, shared_data):
    client = make_client(max_image_mb=0.1, max_megapixels=0.5)
    big = photo.read_bytes()  # 244 KB, 950x950
    r = client.post("/v1/poses", content=big, headers={"Content-Type": "image/jpeg"})
    assert (r.status_code, r.json()) == (413, {"error": "request body exceeds the 0.1 MB limit (--max-image-mb)"})
    r = client.post("/v1/poses", files={"image": ("big.jpg", big, "image/jpeg")})
    assert (r.status_code, r.json()) == (413, {"error": "request body exceeds the 0.1 MB limit (--max-image-mb)"})
    mid = (shared_data / "demo" / "crowd_03.jpg").read_bytes()  # 153 KB: fits the multipart slack, not the limit
    r = client.post("/v1/poses", files={"image": ("mid.jpg", mid, "image/jpeg")})
    assert (r.status_code, r.json()) == (413, {"error": "image 'mid.jpg': 0.2 MB exceeds the 0.1 MB limit (--max-image-mb)"})
    small = io.BytesIO()
    Image.open(photo).save(small, format="JPEG", quality=30)
    r = client.post("/v1/poses", content=small.getvalue(), headers={"Content-Type": "image/jpeg"})
    assert (r.status_code, r.json()) == (
        413, {"error": "request body: 950x950 pixels (0.9 MP) exceeds the 0.5 megapixel limit"}
    )


def test_bad_batch_requests(make_client, photo):
    client = make_client(max_batch_images=2)
    jpeg = photo.read_bytes()
    r = client.post("/v1/poses:batch", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert (r.status_code, r.json()) == (
        415, {"error": "unsupported content type 'image/jpeg': send multipart/form-data with one 'images' file per image"}
    )
    three = [("images", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(3)]
    r = client.post("/v1/poses:batch", files=three)
    assert (r.status_code, r.json()) == (413, {"error": "too many files: at most 2 per request"})
    r = client.post("/v1/poses:batch", files=[("images", ("a.jpg", jpeg, "image/jpeg")), ("images", ("b.jpg", b"x", "image/jpeg"))])
    assert (r.status_code, r.json()) == (400, {"error": "image 'b.jpg': not an image (expected JPEG, PNG, WebP, BMP or TIFF data)"})
    r = client.post("/v1/poses:batch?draw=1", files=three[:1])
    assert (r.status_code, r.json()) == (400, {"error": "unknown query parameter 'draw' (known: flip, scales, score_thr)"})


def test_unknown_routes_and_methods(client):
    r = client.get("/v2/poses")
    assert (r.status_code, r.json()) == (404, {"error": "not found: /v2/poses"})
    r = client.get("/v1/poses")
    assert (r.status_code, r.json()) == (405, {"error": "method GET not allowed on /v1/poses"})


def test_service_survives_every_bad_request(client, photo):
    for kwargs, _, _ in _cases(photo).values():
        assert 400 <= client.post("/v1/poses", **kwargs).status_code < 500
    r = client.post("/v1/poses", content=photo.read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200 and r.json()["num_people"] > 0
    assert client.get("/healthz").json()["status"] == "ok"
