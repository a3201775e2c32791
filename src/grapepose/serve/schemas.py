"""What the pose service accepts and answers: its limits, per-request options and the JSON it returns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from grapepose.errors import ConfigError
from grapepose.inference.result import JOINT_SCORES_KEY
from grapepose.limits import MAX_MEGAPIXELS, MAX_TEST_SCALES, TEST_SCALE_RANGE
from grapepose.serve.errors import bad_request
from grapepose.visualize import MIN_JOINT_SCORE

__all__ = ["ServeSettings", "RequestOptions", "parse_options", "poses_json", "spec_json"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
DRAW_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching of the service (`grapepose serve` flags of the same names).

    Attributes:
        max_batch: images per forward pass.
        max_wait_ms: how long the first queued image waits for others to join its batch.
        max_image_mb: largest accepted request body, in MB (10^6 bytes), per image.
        max_megapixels: largest decoded image (width x height / 10^6).
        max_queue: images waiting for the model; beyond this, requests get 503.
        max_client_requests: requests one client address may have in flight; beyond this, 429.
        max_client_connections: requests one client address may have open at once, counted from
            their headers (while the body uploads too); beyond this, 429 before the body is read.
        body_timeout: seconds a request's body may take to arrive; beyond this, 408 and the
            connection is closed.
        max_batch_images: images in one `/v1/poses:batch` request.
        max_scales: test scales one request may ask for.
        min_scale, max_scale: range of each requested test scale.
        score_threshold: default person score threshold (as `grapepose predict --score-thr`).
    """

    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_image_mb: float = 20.0
    max_megapixels: float = MAX_MEGAPIXELS
    max_queue: int = 64
    max_client_requests: int = 16
    max_client_connections: int = 32
    body_timeout: float = 60.0
    max_batch_images: int = 16
    max_scales: int = MAX_TEST_SCALES
    min_scale: float = TEST_SCALE_RANGE[0]
    max_scale: float = TEST_SCALE_RANGE[1]
    score_threshold: float = 0.1

    def __post_init__(self) -> None:
        checks = [
            ("max_batch", self.max_batch >= 1, ">= 1"),
            ("max_wait_ms", 0 <= self.max_wait_ms <= 10_000, "between 0 and 10000"),
            ("max_image_mb", 0 < self.max_image_mb <= 1000, "in (0, 1000]"),
            ("max_megapixels", self.max_megapixels > 0, "> 0"),
            ("max_queue", self.max_queue >= 1, ">= 1"),
            ("max_client_requests", self.max_client_requests >= 1, ">= 1"),
            ("max_client_connections", self.max_client_connections >= 1, ">= 1"),
            ("body_timeout", 0 < self.body_timeout <= 3600, "in (0, 3600]"),
            ("max_batch_images", 1 <= self.max_batch_images <= self.max_queue, "between 1 and max_queue"),
            ("score_threshold", 0 <= self.score_threshold <= 1, "between 0 and 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)}: must be {want}")

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1_000_000)

    def limits(self) -> dict[str, Any]:
        """The limits a client may want to know (`GET /v1/model`)."""
        return {
            "max_image_mb": self.max_image_mb, "max_megapixels": self.max_megapixels,
            "max_batch_images": self.max_batch_images, "max_scales": self.max_scales,
            "scale_range": [self.min_scale, self.max_scale], "max_batch": self.max_batch,
            "max_wait_ms": self.max_wait_ms, "max_queue": self.max_queue,
            "max_client_requests": self.max_client_requests, "max_client_connections": self.max_client_connections,
            "body_timeout": self.body_timeout,
        }  # fmt: skip


@dataclass(frozen=True)
class RequestOptions:
    """Per-request settings (query parameters); `flip`/`scales` None mean the model's config."""

    flip: bool | None = None
    scales: tuple[float, ...] | None = None
    score_thr: float = 0.1
    draw: bool = False
    format: str = "jpeg"
    min_joint_score: float = MIN_JOINT_SCORE


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise bad_request(f"{name}={raw}: must be 1/0, true/false, yes/no or on/off")


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise bad_request(f"{name}={raw}: not a number") from None
    if not math.isfinite(value):
        raise bad_request(f"{name}={raw}: not a finite number")
    return value


def parse_options(query: Mapping[str, str], settings: ServeSettings, allow_draw: bool = True) -> RequestOptions:
    """Validate query parameters (`flip`, `scales`, `score_thr`; `draw`, `format`, `min_joint_score`) against limits.

    Raises:
        HTTPError: 400 naming the parameter and what it must be.
    """
    drawing = ("draw", "format", "min_joint_score")
    known = tuple(sorted(("flip", "scales", "score_thr") + (drawing if allow_draw else ())))
    for name in query:
        if name not in known:
            raise bad_request(f"unknown query parameter {name!r} (known: {', '.join(known)})")
    flip = _bool("flip", query["flip"]) if "flip" in query else None
    scales = None
    if "scales" in query:
        parts = [p for p in query["scales"].split(",") if p.strip()]
        if not parts:
            raise bad_request("scales=: give 1 to {} comma-separated numbers".format(settings.max_scales))
        if len(parts) > settings.max_scales:
            raise bad_request(f"scales={query['scales']}: at most {settings.max_scales} scales")
        scales = tuple(_float("scales", p) for p in parts)
        for s in scales:
            if not settings.min_scale <= s <= settings.max_scale:
                lo, hi = settings.min_scale, settings.max_scale
                raise bad_request(f"scales={query['scales']}: each scale must be between {lo} and {hi}")
    score_thr = settings.score_threshold
    if "score_thr" in query:
        score_thr = _float("score_thr", query["score_thr"])
        if not 0 <= score_thr <= 1:
            raise bad_request(f"score_thr={query['score_thr']}: must be between 0 and 1")
    draw = _bool("draw", query["draw"]) if "draw" in query else False
    fmt = query.get("format", "jpeg").strip().lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in DRAW_FORMATS:
        raise bad_request(f"format={query['format']}: must be jpeg or png")
    min_joint = MIN_JOINT_SCORE
    if "min_joint_score" in query:
        min_joint = _float("min_joint_score", query["min_joint_score"])
        if not 0 <= min_joint <= 1:
            raise bad_request(f"min_joint_score={query['min_joint_score']}: must be between 0 and 1")
    return RequestOptions(flip, scales, score_thr, draw, fmt, min_joint)


def _finite_or_none(rows: list[Any]) -> list[Any]:
    """JSON has no NaN: non-finite numbers (a keypoint the model could not place) become null."""
    return [[v if math.isfinite(v) else None for v in row] for row in rows]


def poses_json(
    keypoints: np.ndarray, scores: np.ndarray, width: int, height: int, joint_scores: np.ndarray
) -> dict[str, Any]:
    """One image's people as JSON: `people[i].keypoints` is `[K][x, y, score]` in image pixels and
    `people[i].keypoint_scores` the `[K]` per-joint confidences (`Poses.joint_scores`).

    Coordinates are rounded to 0.01 px and scores to 1e-4 (the network is nowhere near as precise).
    """
    kp = np.asarray(keypoints, np.float64)
    kp = kp.reshape(len(scores), kp.shape[-2] if kp.ndim >= 2 else 0, 3)
    xy = np.round(kp[..., :2], 2)
    sc = np.round(kp[..., 2:], 4)
    rows = np.concatenate([xy, sc], -1).tolist()
    joints = np.round(np.asarray(joint_scores, np.float64).reshape(kp.shape[:2]), 4).tolist()
    people = [
        {"score": round(float(s), 4) if math.isfinite(s) else None, "keypoints": _finite_or_none(r),
         JOINT_SCORES_KEY: _finite_or_none([j])[0]}
        for s, r, j in zip(np.asarray(scores, np.float64).tolist(), rows, joints)
    ]  # fmt: skip
    return {"width": int(width), "height": int(height), "num_people": len(people), "people": people}


def spec_json(spec: Any) -> dict[str, Any]:
    """A `KeypointSpec` as JSON (names, skeleton pairs, flip permutation, OKS sigmas)."""
    return {
        "names": list(spec.names),
        "skeleton": [list(p) for p in spec.skeleton],
        "flip_index": list(spec.flip_index),
        "sigmas": list(spec.sigmas),
    }
