"""One test scale's outputs read at given cells and pixels, without building upsampled maps.

Decoding reads the flip-merged maps at a few thousand places (centre cells, proposal joints,
fitting windows, peak candidates) and the upsampled maps at pixels. Both are linear in the grid
values, so `ScaleReader` computes them where they are read: a flip-merged offset or visibility is
the mean of the plain output at a cell and of the mirrored output at the mirrored cell with
left/right channels swapped (`maps.merge_flip`), and an upsampled value is the bilinear mix of
four merged cells (`maps.upsample_maps`: cell i lands on pixel `factor * i`, replicated after the
last valid cell). Only the heatmaps are merged densely, once: they are also read densely.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch

from grapepose.inference.maps import PoseMaps, probabilities, valid_cells

__all__ = ["ScaleReader"]


def _gather(maps: torch.Tensor, channel: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`maps[b, channel, y, x]` for `[B, C, h, w]` maps and long indices broadcast to `[B, ...]`."""
    b, c, h, w = maps.shape
    index = (channel * h + y) * w + x
    if index.shape[0] != b:
        index = index.expand(b, *index.shape[1:])
    return maps.reshape(b, c * h * w).gather(1, index.reshape(b, -1)).view(index.shape)


@functools.lru_cache(maxsize=16)
def _channel_permutation(flip_index: tuple[int, ...], device: str) -> torch.Tensor:
    """`[K+1]` left/right channel swap of the heatmaps (centre channel stays), made once per device."""
    return torch.tensor([*flip_index, len(flip_index)], dtype=torch.long, device=device)


class ScaleReader:
    """Flip-merged keypoint heatmaps, visibility and pose field of one test scale, read at points.

    Args:
        heatmaps: `[B, K+1, h, w]` raw heatmaps (last channel: centres).
        offsets: `[B, 2K, h, w]` refined offsets, or None when `poses` is given.
        visibility: `[B, K, h, w]` visibility logits (or probabilities with `probabilities=True`), or None.
        factor: input pixels per cell (4 / test scale).
        size: `(H, W)` of the scale-1 input the upsampled maps cover.
        mirrored: the same three maps for the mirrored input (`preprocess.flip_shift`), or None.
        flip_index: left/right permutation of the K keypoints (needed with `mirrored`).
        poses: an already merged `[B, K, 2, h, w]` pose field (from `PoseMaps`).
    """

    def __init__(
        self,
        heatmaps: torch.Tensor,
        offsets: torch.Tensor | None,
        visibility: torch.Tensor | None,
        factor: float,
        size: tuple[int, int],
        *,
        mirrored: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None,
        flip_index: Sequence[int] | None = None,
        poses: torch.Tensor | None = None,
        probabilities: bool = False,
    ) -> None:
        self.heat = heatmaps.float()
        self.heat_scale = 1.0  # `heat` times this is the merged heatmap
        b, k1, h, w = self.heat.shape
        self.k = k1 - 1
        self.shape = (b, h, w)
        self.factor = float(factor)
        self.size = size
        self.valid = (valid_cells(h, size[0], factor), valid_cells(w, size[1], factor))
        self.int_factor = round(factor) if abs(factor - round(factor)) < 1e-9 and round(factor) >= 1 else 0
        self.offsets = None if offsets is None else offsets.float()
        self.poses = poses
        self.vis = None if visibility is None else visibility.float()
        self.probabilities = probabilities
        self.mirror: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self.perm: torch.Tensor | None = None
        if mirrored is not None:
            if flip_index is None or len(flip_index) != self.k:
                got = "no flip_index" if flip_index is None else f"flip_index has {len(flip_index)} entries"
                raise ValueError(f"{got} but the outputs have {self.k} keypoints")
            heat_f, off_f, vis_f = mirrored
            self.perm = _channel_permutation(tuple(int(i) for i in flip_index), str(self.heat.device))
            # Heatmaps are read densely (centres, the snapping lattice) and at many points: merged
            # once here (their sum; the halving, exact in binary floating point, happens where
            # values are read); offsets and visibility are merged where they are read.
            self.heat = torch.flip(heat_f.float().index_select(1, self.perm), dims=[3]).add_(self.heat)
            self.heat_scale = 0.5
            self.mirror = (None, off_f.float(), None if vis_f is None or self.vis is None else vis_f.float())
            if self.mirror[2] is None:
                self.vis = None

    @classmethod
    def from_output(
        cls, output: Any, factor: float, size: tuple[int, int], mirrored: Any = None,
        flip_index: Sequence[int] | None = None,
    ) -> ScaleReader:  # fmt: skip
        """From a `GrapeOutput` (and the `GrapeOutput` of the mirrored input, if any)."""
        m = None if mirrored is None else (mirrored.heatmaps, mirrored.refined_offsets, mirrored.visibility)
        return cls(output.heatmaps, output.refined_offsets, output.visibility, factor, size, mirrored=m,
                   flip_index=flip_index)  # fmt: skip

    @classmethod
    def from_maps(cls, maps: PoseMaps, factor: float, size: tuple[int, int]) -> ScaleReader:
        """From already merged `PoseMaps`."""
        return cls(maps.heatmaps, None, maps.visibility, factor, size, poses=maps.poses, probabilities=True)

    # ------------------------------------------------------------------ dense maps (grid resolution)
    def center_map(self) -> torch.Tensor:
        """`[B, h, w]` merged centre heatmap."""
        return self._scaled(self.heat[:, self.k])

    def keypoint_maps(self, scaled: bool = True) -> torch.Tensor:
        """`[B, K, h, w]` merged keypoint heatmaps (`scaled=False`: `heat_scale` not applied, a view)."""
        maps = self.heat[:, : self.k]
        return self._scaled(maps) if scaled else maps

    def _scaled(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.heat_scale if self.heat_scale != 1.0 else v

    # ------------------------------------------------------------------ values at cells
    def _merged(self, plain: torch.Tensor, mirror: torch.Tensor | None, channel: torch.Tensor, y: torch.Tensor,
                x: torch.Tensor, sigmoid: bool = False) -> torch.Tensor:  # fmt: skip
        v = _gather(plain, channel, y, x)
        if sigmoid:
            v = probabilities(v)
        if mirror is None or self.perm is None:
            return v
        vf = _gather(mirror, self.perm[channel], y, self.shape[2] - 1 - x)
        return (v + (probabilities(vf) if sigmoid else vf)) / 2.0

    def heat_cells(self, channel: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Merged heatmap values at cells (long tensors broadcast to `[B, ...]`)."""
        return self._scaled(_gather(self.heat, channel, y, x))

    def vis_cells(self, channel: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Merged visibility probabilities at cells."""
        assert self.vis is not None
        if self.probabilities:
            return _gather(self.vis, channel, y, x)
        return self._merged(self.vis, None if self.mirror is None else self.mirror[2], channel, y, x, sigmoid=True)

    def poses_at(self, index: torch.Tensor) -> torch.Tensor:
        """`[B, M, K, 2]` merged pose field (grid units) at flat cells `[B, M]` (y * w + x)."""
        b, h, w = self.shape
        k = self.k
        x = (index % w)[:, None, :]  # [B, 1, M]
        y = torch.div(index, w, rounding_mode="floor")[:, None, :]
        ch = torch.arange(k, device=index.device)[None, :, None]  # [1, K, 1]
        if self.poses is not None:
            field = self.poses.float().reshape(b, k * 2, h, w)
            px, py = _gather(field, 2 * ch, y, x), _gather(field, 2 * ch + 1, y, x)
            return torch.stack([px, py], -1).permute(0, 2, 1, 3)
        assert self.offsets is not None
        px = x.float() - _gather(self.offsets, 2 * ch, y, x)  # as maps.pose_field: cell - offset
        py = y.float() - _gather(self.offsets, 2 * ch + 1, y, x)
        if self.mirror is not None and self.perm is not None:
            off_f, xm = self.mirror[1], w - 1 - x
            pfx = xm.float() - _gather(off_f, 2 * self.perm[ch], y, xm)
            pfy = y.float() - _gather(off_f, 2 * self.perm[ch] + 1, y, xm)
            px, py = (px + ((w - 1) - pfx)) / 2.0, (py + pfy) / 2.0
        return torch.stack([px, py], -1).permute(0, 2, 1, 3)  # [B, M, K, 2]

    # ------------------------------------------------------------------ values of the upsampled maps
    def _axis_cells(self, p: torch.Tensor, n_cells: int, n_valid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cells `i0, i1` and weight of `i1` for integer pixels `p` along one axis (`maps._linear_weights`)."""
        if self.int_factor:
            f = self.int_factor
            pc = p.clamp(max=f * (n_valid - 1))
            i0 = torch.div(pc, f, rounding_mode="floor")
            frac = (pc - i0 * f).float() * (1.0 / f)
        else:
            src = (p.double() / self.factor).clamp(max=n_valid - 1).float()
            i0 = src.floor().long().clamp(0, n_cells - 1)
            frac = src - i0.float()
        return i0, (i0 + 1).clamp(max=n_cells - 1), frac

    def _corners(self, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Cells and weights of the bilinear mix at integer pixels, as `maps.sample_upsampled`."""
        _, h, w = self.shape
        x0, x1, ax = self._axis_cells(px, w, self.valid[1])
        y0, y1, ay = self._axis_cells(py, h, self.valid[0])
        return x0, x1, y0, y1, ax, ay

    def pixels(self, channel: torch.Tensor, px: torch.Tensor, py: torch.Tensor,
               visibility: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
        """Upsampled merged keypoint heatmap, and visibility if asked, at integer pixels `(px, py)`.

        Args:
            channel: long channels broadcast with `px`/`py` (long, inside the image) to `[B, ...]`.
            visibility: also read the visibility (needs `has_visibility`); both share one bilinear setup.

        Returns:
            heatmap values and visibility values (None unless asked), `[B, ...]`.
        """
        x0, x1, y0, y1, ax, ay = self._corners(px, py)
        ys = torch.stack(torch.broadcast_tensors(y0, y0, y1, y1), -1)
        xs = torch.stack(torch.broadcast_tensors(x0, x1, x0, x1), -1)
        bx, by = 1 - ax, 1 - ay
        wts = torch.stack(torch.broadcast_tensors(bx * by, ax * by, bx * ay, ax * ay), -1)
        ch = channel[..., None]
        heat = (self.heat_cells(ch, ys, xs) * wts).sum(-1)
        return heat, (self.vis_cells(ch, ys, xs) * wts).sum(-1) if visibility else None

    def heat_pixels(self, channel: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
        """Upsampled merged keypoint heatmap at integer pixels `(px, py)` (long, inside the image)."""
        return self.pixels(channel, px, py)[0]

    def vis_pixels(self, channel: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
        """Upsampled merged visibility at integer pixels."""
        vis = self.pixels(channel, px, py, visibility=True)[1]
        assert vis is not None
        return vis

    def heat_windows(self, center: torch.Tensor, radius: int) -> torch.Tensor:
        """Upsampled merged keypoint heatmap on the `(2r+1)^2` pixel windows around joints.

        Bilinear upsampling is separable, so each window is `Wy @ cells @ Wx^T` with the small patch
        of grid cells it covers and per-axis interpolation weights. The joints run along the last
        axis (the layout of the fit), so every op is one pass vectorised over them.

        Args:
            center: `[B, N, K, 2]` long (x, y) pixels; joint k reads channel k.
            radius: window half-size r.

        Returns:
            `[S(y), S(x), J]`, `S = 2r + 1`, `J = B * N * K` in `center`'s order; positions outside
            the image read the nearest border pixel (callers mask them).
        """
        b, n, k = center.shape[:3]
        _, h, w = self.shape
        dev = center.device
        c = center.reshape(-1, 2).T  # [2, J]
        offs = torch.arange(-radius, radius + 1, device=dev)[:, None]
        px = (c[0] + offs).clamp(0, self.size[1] - 1)  # [S, J]
        py = (c[1] + offs).clamp(0, self.size[0] - 1)
        x0, x1, y0, y1, ax, ay = self._corners(px, py)  # [S, J]
        span = torch.arange(int(math.ceil(2 * radius / self.factor)) + 2, device=dev)  # the patch's cells
        ox, oy = x0[:1], y0[:1]  # [1, J] patch origin
        j = torch.arange(b * n * k, device=dev)
        plane = torch.div(j, n * k, rounding_mode="floor") * (self.k + 1)  # [J] channel 0 of the joint's image
        patch = self._cell_patch(plane, j % k, (oy + span[:, None]).clamp_(max=h - 1),
                                 (ox + span[:, None]).clamp_(max=w - 1))  # [P(y), P(x), J]  # fmt: skip
        # separable bilinear mix: first the window rows from the patch rows, then the columns
        p = patch.shape[1]
        ry0, ry1 = (y0 - oy)[:, None].expand(-1, p, -1), (y1 - oy)[:, None].expand(-1, p, -1)  # [S(y), P, J]
        top = patch.gather(0, ry0)
        rows = top + (patch.gather(0, ry1) - top) * ay[:, None]  # [S(y), P(x), J]
        s = x0.shape[0]
        cx0, cx1 = (x0 - ox)[None].expand(s, -1, -1), (x1 - ox)[None].expand(s, -1, -1)  # [S(y), S(x), J]
        left = rows.gather(1, cx0)
        return left + (rows.gather(1, cx1) - left) * ax[None]

    def _cell_patch(self, plane: torch.Tensor, channel: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
        """Merged heatmap cells `[P(y), P(x), J]` at rows `cy [P, J]` and columns `cx [P, J]` of each joint's channel."""
        _, h, w = self.shape
        index = ((plane + channel) * h + cy[:, None]) * w + cx[None]
        return self._scaled(self.heat.reshape(-1).index_select(0, index.reshape(-1)).view(index.shape))

    @property
    def has_visibility(self) -> bool:
        return self.vis is not None
