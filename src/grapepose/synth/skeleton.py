"""A 3D stick-figure body: proportions, joint limits, pose sampling and the joints it yields.

Body frame: x = the person's left, y = up, z = forward. The world frame is the camera's: x = image
right, y = up, z = towards the viewer, so a person with yaw 0 faces the camera and their left side
appears on the image's right. Lengths are in units of standing height (about 1.0 from sole to crown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grapepose.errors import DataError
from grapepose.keypoints import KeypointSpec

__all__ = ["JOINT_NAMES", "POSE_KINDS", "Body", "sample_body", "spec_to_joints"]

# Every keypoint any supported spec may ask for, then helper points used only for drawing.
JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "head", "neck",
)  # fmt: skip
_AUX = ("head_center", "neck_base", "neck_top", "pelvis", "waist", "left_hand", "right_hand", "left_toe",
        "right_toe", "mouth")  # fmt: skip
J = {n: i for i, n in enumerate(JOINT_NAMES + _AUX)}
_ALIASES = {"head_top": "head", "top_head": "head"}  # other datasets' names for the crown
FACE = (J["nose"], J["left_eye"], J["right_eye"], J["left_ear"], J["right_ear"])

POSE_KINDS = ("standing", "walking", "arms_raised", "crouching", "free")
_POSE_P = (0.28, 0.27, 0.15, 0.1, 0.2)

# Face points in the head frame (units of head radius) with their outward normals and the
# normal's minimum z for the point to be seen (and labelled): the nose sticks out, so it stays
# visible almost to full profile; ears are seen from the front, side and back.
_FACE_POS = np.array([[0, -0.2, 1.08], [0.38, 0.12, 0.86], [-0.38, 0.12, 0.86], [0.98, -0.02, -0.1],
                      [-0.98, -0.02, -0.1]], np.float64)  # fmt: skip
_FACE_NRM = np.array([[0, 0, 1], [0.3, 0.1, 1], [-0.3, 0.1, 1], [1, 0, -0.15], [-1, 0, -0.15]], np.float64)
_FACE_NRM /= np.linalg.norm(_FACE_NRM, axis=1, keepdims=True)
_FACE_MIN_Z = np.array([-0.3, 0.15, 0.15, -0.35, -0.35])


@dataclass
class Body:
    """One posed person in world coordinates (body units).

    Attributes:
        points: `[len(J), 3]` joints and helper points, feet resting on y = 0.
        head_axes: `[3, 3]` rows = the head's left, up and forward directions.
        torso_axes: `[3, 3]` rows = the chest's left, up and forward directions.
        face_seen: `[5]` bool, whether nose, eyes and ears face the camera.
        dims: body measurements (radii and lengths) used for drawing.
    """

    points: np.ndarray
    head_axes: np.ndarray
    torso_axes: np.ndarray
    face_seen: np.ndarray
    dims: dict[str, float]


def spec_to_joints(spec: KeypointSpec) -> np.ndarray:
    """Indices into `Body.points` for each keypoint of `spec`.

    Raises:
        DataError: the spec names a keypoint the synthetic body does not have.
    """
    out = []
    for name in spec.names:
        key = _ALIASES.get(name, name)
        if key not in JOINT_NAMES:
            raise DataError(f"synthetic data: keypoint {name!r} is not drawn (known: {', '.join(JOINT_NAMES)})")
        out.append(J[key])
    return np.asarray(out, np.int64)


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _turn(v: np.ndarray, axis: np.ndarray, a: float) -> np.ndarray:
    """Rotate vector `v` about unit `axis` by angle `a` (Rodrigues)."""
    c, s = np.cos(a), np.sin(a)
    (a0, a1, a2), (v0, v1, v2) = axis.tolist(), v.tolist()
    cross = np.array([a1 * v2 - a2 * v1, a2 * v0 - a0 * v2, a0 * v1 - a1 * v0])
    return v * c + cross * s + axis * (axis @ v) * (1 - c)


def _dims(rng: np.random.Generator) -> dict[str, float]:
    j = rng.uniform(0.95, 1.05, 8)
    w = rng.uniform(0.85, 1.2)  # build: scales every width
    return {
        "head_r": 0.062 * j[0], "neck": 0.045, "torso": 0.30 * j[1], "shoulder": 0.105 * j[2] * (0.5 + w / 2),
        "hip": 0.08 * j[3] * (0.5 + w / 2), "upper_arm": 0.175 * j[4], "forearm": 0.155 * j[4], "hand": 0.07,
        "thigh": 0.245 * j[5], "shin": 0.245 * j[5], "ankle": 0.045, "foot": 0.13 * j[6], "build": w,
        "chest_depth": 0.07 * w, "limb": j[7] * w,
    }  # fmt: skip


def _angles(rng: np.random.Generator, kind: str) -> dict[str, np.ndarray]:
    """Joint angles in degrees, per side [left, right], within human limits."""
    u = rng.uniform
    a = {
        "sh_flex": u(-15, 20, 2), "sh_abd": u(3, 20, 2), "twist": u(-30, 30, 2), "elbow": u(0, 35, 2),
        "hip_flex": u(-5, 10, 2), "hip_abd": u(0, 8, 2), "knee": u(0, 12, 2), "toe_out": u(0, 20, 2),
        "lean": u(-5, 10), "side": u(-6, 6), "twist_t": u(-15, 15), "head_yaw": u(-35, 35),
        "head_pitch": u(-15, 20), "head_roll": u(-10, 10),
    }  # fmt: skip
    if kind == "walking":
        p = u(-1, 1) * u(15, 35)
        a["hip_flex"] = np.array([p, -p])
        a["knee"] = np.array([u(0, 15) if p > 0 else u(10, 45), u(0, 15) if p < 0 else u(10, 45)])
        a["sh_flex"] = np.array([-p, p]) * u(0.5, 1.2)
        a["elbow"] = u(5, 50, 2)
    elif kind == "arms_raised":
        both = rng.random() < 0.6
        for side in (0, 1) if both else (int(rng.integers(2)),):
            if rng.random() < 0.5:
                a["sh_flex"][side], a["sh_abd"][side] = u(100, 180), u(0, 40)
            else:
                a["sh_flex"][side], a["sh_abd"][side] = u(-10, 40), u(80, 170)
            a["twist"][side], a["elbow"][side] = u(-80, 80), u(0, 120)
    elif kind == "crouching":
        a["hip_flex"], a["knee"] = u(60, 115, 2), u(90, 140, 2)
        a["hip_abd"], a["lean"] = u(5, 30, 2), u(15, 45)
        a["sh_flex"], a["elbow"] = u(10, 80, 2), u(20, 110, 2)
    elif kind == "free":
        a["sh_flex"], a["sh_abd"] = u(-45, 170, 2), u(-5, 150, 2)
        a["twist"], a["elbow"] = u(-80, 80, 2), u(0, 145, 2)
        a["hip_flex"], a["hip_abd"], a["knee"] = u(-20, 70, 2), u(0, 40, 2), u(0, 90, 2)
        a["lean"], a["side"] = u(-10, 35), u(-15, 15)
    return a


def sample_body(rng: np.random.Generator, kind: str | None = None) -> Body:
    """Sample proportions, a pose of `kind` (random if None) and a facing direction; pose in 3D."""
    if kind is None:
        kind = POSE_KINDS[int(rng.choice(len(POSE_KINDS), p=_POSE_P))]
    d, a = _dims(rng), _angles(rng, kind)
    r = {k: np.deg2rad(v) for k, v in a.items()}
    p = np.zeros((len(J), 3))
    down, ex = np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0])
    # Spine and head.
    spine = _ry(r["twist_t"]) @ _rx(r["lean"]) @ _rz(r["side"])
    up = spine[:, 1]
    p[J["waist"]] = up * 0.12
    p[J["neck_base"]] = up * d["torso"]
    p[J["neck_top"]] = p[J["neck_base"]] + up * d["neck"]
    p[J["neck"]] = p[J["neck_base"]] + up * d["neck"] * 0.5
    head = spine @ _ry(r["head_yaw"]) @ _rx(-r["head_pitch"]) @ _rz(r["head_roll"])
    hr = d["head_r"]
    p[J["head_center"]] = p[J["neck_top"]] + head @ np.array([0, 0.8, 0.05]) * hr
    p[J["head"]] = p[J["head_center"]] + head[:, 1] * hr * 1.02
    p[J["mouth"]] = p[J["head_center"]] + head @ np.array([0, -0.5, 0.87]) * hr
    face = p[J["head_center"]] + (_FACE_POS * hr) @ head.T
    p[list(FACE)] = face
    # Arms (side +1 = left) and legs.
    for i, sgn, nm in ((0, 1.0, "left"), (1, -1.0, "right")):
        sh = p[J["neck_base"]] + spine[:, 0] * sgn * d["shoulder"] - up * 0.01
        rot = spine @ _rz(sgn * r["sh_abd"][i]) @ _rx(-r["sh_flex"][i])
        upper = rot @ down
        hinge = rot @ _turn(ex, down, sgn * r["twist"][i])
        fore = _turn(upper, hinge, -r["elbow"][i])
        p[J[f"{nm}_shoulder"]] = sh
        p[J[f"{nm}_elbow"]] = sh + upper * d["upper_arm"]
        p[J[f"{nm}_wrist"]] = p[J[f"{nm}_elbow"]] + fore * d["forearm"]
        p[J[f"{nm}_hand"]] = p[J[f"{nm}_wrist"]] + fore * d["hand"]
        hip = ex * sgn * d["hip"]
        rot = _rz(sgn * r["hip_abd"][i]) @ _rx(-r["hip_flex"][i])
        thigh = rot @ down
        shin = _turn(thigh, rot @ ex, r["knee"][i])
        p[J[f"{nm}_hip"]] = hip
        p[J[f"{nm}_knee"]] = hip + thigh * d["thigh"]
        p[J[f"{nm}_ankle"]] = p[J[f"{nm}_knee"]] + shin * d["shin"]
        toe = _ry(sgn * r["toe_out"][i]) @ np.array([0, -0.3, 1.0])
        p[J[f"{nm}_toe"]] = p[J[f"{nm}_ankle"]] + toe / np.linalg.norm(toe) * d["foot"]
    # Face the camera more often than not, as photographed people do.
    yaw = rng.normal(0, 0.6) if rng.random() < 0.5 else rng.uniform(-np.pi, np.pi)
    world = _ry(yaw)
    p = p @ world.T
    p[:, 1] -= min(p[J["left_ankle"], 1], p[J["right_ankle"], 1]) - d["ankle"]
    head_w, torso_w = (world @ head).T, (world @ spine).T
    face_seen = (_FACE_NRM @ head_w)[:, 2] > _FACE_MIN_Z
    return Body(points=p, head_axes=head_w, torso_axes=torso_w, face_seen=face_seen, dims=d)
