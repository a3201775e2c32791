"""The per-joint confidence measure: ROC AUC, OKS matching and the joint samples of matched people."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grapepose.evaluation.joints import JointSamples, keypoint_oks, match_people, roc_auc
from grapepose.inference import Poses
from grapepose.keypoints import CROWDPOSE_KEYPOINTS

SPEC = CROWDPOSE_KEYPOINTS
K = SPEC.num_keypoints


def _pairwise_auc(scores, positive) -> float:
    """The definition: over every (positive, negative) pair, 1 if the positive scores higher, 1/2 if equal."""
    pos = [s for s, y in zip(scores, positive) if y]
    neg = [s for s, y in zip(scores, positive) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_roc_auc_of_hand_computed_examples():
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == 0.75
    # ties count one half: pairs (0.5, 0.5) 1/2, (0.5, 0.2) 1, (0.9, 0.5) 1, (0.9, 0.2) 1 -> 3.5 / 4
    assert roc_auc(np.array([0.5, 0.5, 0.2, 0.9]), np.array([1, 0, 0, 1], bool)) == 0.875
    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([1, 1, 0], bool)) == 1.0
    assert roc_auc(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0], bool)) == 0.0
    assert roc_auc(np.ones(6), np.array([1, 0, 1, 0, 1, 0], bool)) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    scores = rng.integers(0, 6, n) / 5.0  # few distinct values: many ties
    positive = rng.random(n) < 0.4
    positive[:2] = (True, False)
    assert roc_auc(scores, positive) == pytest.approx(_pairwise_auc(scores.tolist(), positive.tolist()), abs=1e-12)


def test_roc_auc_edge_cases():
    assert math.isnan(roc_auc(np.array([0.2, 0.3]), np.array([True, True])))
    assert math.isnan(roc_auc(np.zeros(0), np.zeros(0, bool)))
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        roc_auc(np.zeros(3), np.zeros(2, bool))
    with pytest.raises(ValueError, match="scores must be finite"):
        roc_auc(np.array([0.1, np.nan]), np.array([True, False]))


def test_keypoint_oks_equals_the_coco_formula():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 100, (3, K, 3))
    gt = np.concatenate([rng.uniform(0, 100, (4, K, 2)), rng.integers(0, 3, (4, K, 1))], -1)
    gt[3, :, 2] = 0  # nothing labelled
    areas = rng.uniform(500, 5000, 4)
    got = keypoint_oks(pred, gt, areas, SPEC.sigmas)
    for i in range(3):
        for j in range(4):
            terms = [math.exp(-((pred[i, k, 0] - gt[j, k, 0]) ** 2 + (pred[i, k, 1] - gt[j, k, 1]) ** 2)
                              / (2 * areas[j] * (2 * SPEC.sigmas[k]) ** 2))
                     for k in range(K) if gt[j, k, 2] > 0]  # fmt: skip
            assert got[i, j] == pytest.approx(sum(terms) / len(terms) if terms else 0.0, abs=1e-12)
    assert keypoint_oks(pred[:0], gt, areas, SPEC.sigmas).shape == (0, 4)


def test_match_people_is_cocos_greedy_matching():
    oks = np.array([[0.9, 0.8], [0.95, 0.3], [0.2, 0.4]])
    # by score: #1 takes annotation 0 (its best), #0 is left annotation 1, #2 finds none free above 0.5
    assert sorted(match_people(oks, np.array([0.5, 0.9, 0.1]))) == [(0, 1), (1, 0)]
    assert match_people(oks, np.array([0.5, 0.9, 0.1]), min_oks=0.85) == [(1, 0)]
    assert match_people(np.zeros((2, 0)), np.ones(2)) == []


def _annotation(joints: np.ndarray, v: np.ndarray, **extra) -> dict:
    kp = np.concatenate([joints, v[:, None]], 1)
    kp[v == 0, :2] = 0
    return {"keypoints": kp.ravel().tolist(), "area": 2500.0, "bbox": [0, 0, 50, 50],
            "num_keypoints": int((v > 0).sum()), **extra}  # fmt: skip


def test_joint_samples_of_matched_people():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 50, (K, 2)), rng.uniform(200, 250, (K, 2))
    va, vb = np.array([2] * 10 + [1, 1, 0, 0], float), np.array([2] * 12 + [0, 0], float)
    anns = [
        _annotation(a, va), _annotation(b, vb),
        _annotation(b, np.zeros(K)),  # no labelled joint: not a person to match
        _annotation(a, va, iscrowd=1),  # a crowd region
    ]  # fmt: skip
    far = rng.uniform(500, 550, (K, 2))  # a false positive: matches nobody
    pred = np.stack([a, b, far])
    joint_scores = np.stack([np.where(va > 0, 0.8, 0.1), np.where(vb > 0, 0.9, 0.35), np.full(K, 0.05)])
    kp = np.concatenate([pred, np.full((3, K, 1), 0.7)], -1)
    poses = Poses(kp, np.array([0.7, 0.6, 0.9]), SPEC, joint_scores=joint_scores)
    samples = JointSamples(SPEC.sigmas)
    samples.add(poses, anns)
    samples.add(Poses.empty(SPEC), [_annotation(a, va)])  # a missed person
    report = samples.report(threshold=0.3)
    assert (report["people"], report["people_matched"]) == (3, 2)
    assert report["joints"] == {"visible": 22, "occluded": 2, "absent": 4}
    assert report["auc"] == report["auc_visible"] == report["auc_occluded"] == 1.0
    assert report["auc_keypoint_score"] == 0.5  # the same value for every joint tells nothing
    # at 0.3 the absent joints of the first person (0.1) are hidden, those of the second (0.35) are not
    assert (report["threshold"], report["absent_hidden"], report["labelled_hidden"]) == (0.3, 0.5, 0.0)
    sweep = {s["threshold"]: s for s in report["sweep"]}
    assert list(sweep) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert (sweep[0.4]["absent_hidden"], sweep[0.4]["labelled_hidden"]) == (1.0, 0.0)
    # figures are rounded to 4 digits
    assert (sweep[0.9]["visible_hidden"], sweep[0.9]["occluded_hidden"]) == (round(10 / 22, 4), 1.0)
