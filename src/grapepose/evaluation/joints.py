"""How well per-joint confidences (`Poses.joint_scores`) tell joints that are there from absent ones.

Predicted people are matched to annotated people as COCO evaluation matches them (greedily, best
person score first, each to the unmatched annotation of highest OKS, at least `min_oks`); every
joint of a matched pair is then one sample: its confidence, and its annotation's visibility flag
v (2 visible, 1 occluded, 0 absent: not labelled, e.g. outside the image). Unmatched predictions
and missed people give no samples: this measures the joints of people that were found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["roc_auc", "keypoint_oks", "match_people", "JointSamples"]

_SWEEP = tuple(round(0.1 * i, 1) for i in range(1, 10))  # thresholds reported besides the chosen one


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for telling `positive` samples from the others.

    The Mann-Whitney form: the probability that a random positive scores higher than a random
    negative, ties counting one half (average ranks). NaN when either class is empty.

    Args:
        scores: `[S]` finite scores.
        positive: `[S]` bool.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(positive, bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each distinct value's first sample
    ranks = (first + (counts + 1) / 2.0)[inverse]  # 1-based average ranks
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def keypoint_oks(pred: np.ndarray, gt: np.ndarray, areas: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """COCO object keypoint similarity of every prediction with every annotation.

    Args:
        pred: `[N, K, >=2]` predicted (x, y, ...).
        gt: `[M, K, 3]` annotated (x, y, v); only joints with v > 0 count.
        areas: `[M]` annotation areas (the OKS scale).
        sigmas: `[K]` per-keypoint OKS sigmas.

    Returns:
        `[N, M]`; 0 for an annotation without labelled joints.
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros((len(pred), len(gt)))
    var = (2.0 * np.asarray(sigmas, np.float64)) ** 2
    d2 = ((pred[:, None, :, :2] - gt[None, :, :, :2]) ** 2).sum(-1)  # [N, M, K]
    e = np.exp(-d2 / (2.0 * var * (np.asarray(areas, np.float64)[None, :, None] + np.spacing(1))))
    e = np.nan_to_num(e)  # a joint the model could not place (NaN) matches nothing
    labelled = gt[None, :, :, 2] > 0
    return (e * labelled).sum(-1) / np.maximum(labelled.sum(-1), 1)


def match_people(oks: np.ndarray, scores: np.ndarray, min_oks: float = 0.5) -> list[tuple[int, int]]:
    """COCO's greedy matching: predictions by descending score, each to the free annotation of highest OKS.

    Args:
        oks: `[N, M]` from `keypoint_oks`.
        scores: `[N]` person scores.

    Returns:
        `(prediction, annotation)` index pairs with OKS >= `min_oks`.
    """
    free = np.ones(oks.shape[1], bool)
    pairs = []
    for i in np.argsort(-np.asarray(scores, np.float64), kind="stable"):
        if not free.any():
            break
        cand = np.where(free, oks[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= min_oks:
            pairs.append((int(i), j))
            free[j] = False
    return pairs


@dataclass
class JointSamples:
    """Per-joint confidences of matched people with their annotation's visibility flags, image by image."""

    sigmas: Sequence[float]
    min_oks: float = 0.5
    confidence: list[np.ndarray] = field(default_factory=list)
    keypoint_score: list[np.ndarray] = field(default_factory=list)
    flags: list[np.ndarray] = field(default_factory=list)
    people: int = 0
    matched: int = 0

    def add(self, poses: Any, annotations: Sequence[dict[str, Any]]) -> None:
        """One image: its `Poses` and its annotations (COCO records; crowd regions and people
        without labelled joints are left out)."""
        k = len(self.sigmas)
        anns = [a for a in annotations if not a.get("iscrowd", 0)]
        gt = np.asarray([a["keypoints"] for a in anns], np.float64).reshape(-1, k, 3)
        anns = [a for a, g in zip(anns, gt) if (g[:, 2] > 0).any()]
        gt = gt[(gt[:, :, 2] > 0).any(1)]
        areas = np.asarray([a.get("area") or a["bbox"][2] * a["bbox"][3] for a in anns], np.float64)
        pairs = match_people(keypoint_oks(poses.keypoints, gt, areas, self.sigmas), poses.scores, self.min_oks)
        self.people += len(gt)
        self.matched += len(pairs)
        for i, j in pairs:
            self.confidence.append(poses.joint_scores[i])
            self.keypoint_score.append(poses.keypoints[i, :, 2])
            self.flags.append(gt[j, :, 2])

    def report(self, threshold: float) -> dict[str, Any]:
        """ROC AUCs (labelled v > 0 against absent v = 0; visible and occluded apart) of the
        per-joint confidence, and of the keypoints' score for comparison, and the shares of
        joints a confidence threshold hides (at `threshold` and at 0.1, 0.2, ..., 0.9)."""
        conf = np.concatenate(self.confidence) if self.confidence else np.zeros(0)
        kp_score = np.concatenate(self.keypoint_score) if self.keypoint_score else np.zeros(0)
        v = np.concatenate(self.flags) if self.flags else np.zeros(0)
        absent, visible, occluded = v == 0, v == 2, v == 1

        def auc(scores: np.ndarray, pos: np.ndarray) -> float | None:
            keep = pos | absent
            value = roc_auc(scores[keep], pos[keep])
            return None if np.isnan(value) else round(value, 4)

        def share(mask: np.ndarray, t: float) -> float | None:
            return round(float((conf[mask] < t).mean()), 4) if mask.any() else None

        def hidden(t: float) -> dict[str, Any]:
            return {"threshold": t, "absent_hidden": share(absent, t), "labelled_hidden": share(~absent, t),
                    "visible_hidden": share(visible, t), "occluded_hidden": share(occluded, t)}  # fmt: skip

        return {
            "people": self.people, "people_matched": self.matched,
            "joints": {"visible": int(visible.sum()), "occluded": int(occluded.sum()), "absent": int(absent.sum())},
            "auc": auc(conf, ~absent), "auc_visible": auc(conf, visible), "auc_occluded": auc(conf, occluded),
            "auc_keypoint_score": auc(kp_score, ~absent),
            **hidden(threshold), "sweep": [hidden(t) for t in _SWEEP],
        }  # fmt: skip
