"""`grapepose show-targets`: draw augmented training samples with their targets, to check they line up.

Each PNG has three panels (input resolution; grid cell i is drawn at pixel stride·i):
1. keypoint heatmaps (max over joint types) with the augmented joints and skeleton;
2. centre heatmap, the offset blocks and, from each person's centre cell, the joints read back
   from the offset field (cell - offset) as arrows;
3. visibility maps (union over joint types, coloured by type) and heatmap weights (dark = bg
   weight, red = ignored: crowd regions, people without keypoints, outside the image).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from grapepose.cli import options as opt

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="ROOT", help="image folder")
    p.add_argument("--ann", required=True, metavar="ANN.json", help="COCO-format keypoint annotations")
    opt.add_preset(p, "preset name or YAML config (default crowdpose_w32)")
    opt.add_overrides(p, "data.flip_prob=1")
    p.add_argument("--num-images", type=opt.int_range(1), default=4, metavar="N",
                   help="samples to draw (cycles through the images)")
    p.add_argument("--seed", type=opt.int_range(0, opt.SEED_MAX), default=0, metavar="S",
                   help="augmentation seed")
    p.add_argument("--eval", action="store_true", help="no random augmentation (validation transform)")
    opt.add_out(p, "dir", "output folder for the PNGs", required=True)


def _colors(k: int) -> np.ndarray:
    """`[k, 3]` uint8 RGB, one hue per joint type."""
    import cv2

    hsv = np.stack([np.linspace(0, 170, k, endpoint=False), np.full(k, 230), np.full(k, 255)], 1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0]


def _up(grid: np.ndarray, stride: int, size: int, nearest: bool = False) -> np.ndarray:
    """Grid map `[h, w]` -> `[size, size]` with cell i at pixel stride·i."""
    import cv2

    m = np.array([[stride, 0, 0], [0, stride, 0]], np.float64)
    flag = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(grid.astype(np.float32), m, (size, size), flags=flag, borderMode=cv2.BORDER_REPLICATE)


def _blend(image: np.ndarray, color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = np.clip(alpha, 0, 1)[..., None]
    return (image.astype(np.float32) * (1 - a) + color.astype(np.float32) * a).astype(np.uint8)


def _title(panel: np.ndarray, text: str) -> None:
    import cv2

    cv2.rectangle(panel, (0, 0), (panel.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(panel, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)


def render(aug, targets, spec) -> np.ndarray:  # noqa: ANN001 - Augmented, Targets, KeypointSpec
    """Three-panel RGB picture `[S, 3S, 3]` of one augmented sample and its targets."""
    import cv2

    from grapepose.data.targets import person_centers

    image = aug.image
    s, g = image.shape[0], targets.heatmaps.shape[1]
    stride = s // g
    k = spec.num_keypoints
    colors = _colors(k)
    dim = (image * 0.6).astype(np.uint8)
    pts = aug.keypoints[..., :2] * stride
    vis = aug.keypoints[..., 2] > 0

    # 1: keypoint heatmaps, joints, skeleton
    heat = targets.heatmaps[:k]
    idx = heat.argmax(0)
    col = np.stack([_up(colors[idx][..., c], stride, s, True) for c in range(3)], -1)
    p1 = _blend(dim, col, _up(heat.max(0), stride, s))
    for person, ok in zip(pts, vis):
        for a, b in spec.skeleton:
            if ok[a] and ok[b]:
                a_xy, b_xy = tuple(int(v) for v in person[a]), tuple(int(v) for v in person[b])
                cv2.line(p1, a_xy, b_xy, (255, 255, 255), 1, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(p1, (int(person[j, 0]), int(person[j, 1])), 3, tuple(int(c) for c in colors[j]), -1, cv2.LINE_AA)
    _title(p1, f"keypoint heatmaps ({'flipped' if aug.flipped else 'not flipped'})")

    # 2: centre heatmap, offset blocks, joints read back from the offsets at each centre cell
    p2 = _blend(dim, np.array([255, 220, 0], np.uint8), _up(targets.heatmaps[k], stride, s))
    block = (targets.offset_weights.max(0) > 0).astype(np.uint8)
    block = cv2.resize(block, (s, s), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(block, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(p2, contours, -1, (0, 255, 255), 1)
    centers, has = person_centers(aug.keypoints)
    for (cx, cy), ok in zip(centers, has):
        ix, iy = int(np.floor(cx)), int(np.floor(cy))
        if not (ok and 0 <= ix < g and 0 <= iy < g):
            continue
        start = (ix * stride, iy * stride)
        for j in range(k):
            if targets.offset_weights[2 * j, iy, ix] > 0:
                jx = (ix - targets.offsets[2 * j, iy, ix]) * stride
                jy = (iy - targets.offsets[2 * j + 1, iy, ix]) * stride
                colour = tuple(int(c) for c in colors[j])
                cv2.arrowedLine(p2, start, (int(jx), int(jy)), colour, 1, cv2.LINE_AA, tipLength=0.08)
        cv2.circle(p2, start, 4, (255, 255, 255), -1)
    _title(p2, "centres, offset blocks, cell - offset")

    # 3: visibility and heatmap weights
    w = targets.heatmap_weights[:k].max(0)
    p3 = (image * (0.25 + 0.75 * _up(np.minimum(w, 1.0), stride, s, True))[..., None]).astype(np.uint8)
    anyvis = targets.visibility.max(0)
    vidx = (targets.visibility * (np.arange(k)[:, None, None] + 1)).max(0).astype(int) - 1
    vcol = np.stack([_up(colors[np.maximum(vidx, 0)][..., c], stride, s, True) for c in range(3)], -1)
    p3 = _blend(p3, vcol, 0.45 * _up(anyvis, stride, s, True))
    ignored = targets.heatmap_weights[k] == 0
    p3 = _blend(p3, np.array([255, 0, 0], np.uint8), 0.5 * _up(ignored.astype(np.float32), stride, s, True))
    _title(p3, "visibility, heatmap weights (red: ignored)")
    return np.concatenate([p1, p2, p3], axis=1)


def run(args: argparse.Namespace) -> int:
    from grapepose.config import load_config
    from grapepose.data import KeypointDataset, TrainingDataset
    from grapepose.errors import GrapeposeError
    from grapepose.io.files import check_output_path, write_image

    out = check_output_path(args.out, "dir")
    cfg = load_config(args.preset, args.overrides)
    d = cfg.data
    ds = KeypointDataset(
        args.ann, args.data, dataset=d.dataset,
        keypoint_names=d.keypoint_names, flip_index=d.flip_index, sigmas=d.sigmas,
    )  # fmt: skip
    if len(ds) == 0:
        raise GrapeposeError(f"{args.ann}: no images")
    train = TrainingDataset(ds, ds.spec, d, train=not args.eval, seed=args.seed)
    for n in range(args.num_images):
        train.set_epoch(n // len(ds))
        i = n % len(ds)
        aug, targets = train.sample(i)
        picture = render(aug, targets, ds.spec)
        path = out / f"targets_{n:03d}_image{ds.images[i]['id']}.png"
        write_image(path, picture)  # encoded in memory: a full disk is an OSError naming `path`
        people = int((aug.keypoints[..., 2] > 0).any(1).sum())
        print(f"{path}  ({people} people, {'flipped' if aug.flipped else 'not flipped'})")
    return 0
