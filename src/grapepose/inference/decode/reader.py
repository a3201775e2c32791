"""One test scale's outputs, flip-merged and upsampled, read where decoding needs them.

Decoding reads the flip-merged maps at a few thousand places (centre cells, proposal joints,
fitting windows, peak candidates) and the upsampled maps at pixels. Both are linear in the grid
values, so `ScaleReader` computes them where they are read: a flip-merged offset or visibility is
the mean of the plain output at a cell and of the mirrored output at the mirrored cell with
left/right channels swapped, and an upsampled value is the bilinear mix of four merged cells (cell
i lands on pixel `factor * i`, replicated after the last valid cell: `upsample_maps`). Only the
heatmaps are merged densely, once: they are also read densely. The dense forms of the merge and of
the reads are the tests' oracles (tests/oracles/dense_maps.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["PoseMaps", "ScaleReader", "probabilities", "upsample_maps", "valid_cells"]


class PoseMaps(NamedTuple):
    """One test scale's outputs already in decoding form (float32, flip-merged when flip test is on).

    Attributes:
        heatmaps: `[B, K+1, h, w]` raw keypoint heatmaps, last channel = person centres.
        poses: `[B, K, 2, h, w]` pose field in grid units: joint k of the person centred at a cell.
        visibility: `[B, K, h, w]` visibility probabilities (after sigmoid), or None.
    """

    heatmaps: torch.Tensor
    poses: torch.Tensor
    visibility: torch.Tensor | None


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid(`logits`) in float32, with the same arithmetic at every position of the tensor.

    On the CPU `torch.sigmoid` computes the elements after the last whole vector register apart,
    which changes the last bit of a few percent of them: an image's visibility would depend on its
    place in the batch. `exp` is vectorised to the end of the tensor; `+ 1` and `1 / x` are exact.
    """
    return torch.exp(-logits.float()).add_(1.0).reciprocal_()


def valid_cells(n_in: int, n_out: int, factor: float) -> int:
    """Grid cells that map inside an output of `n_out` px (the rest is canvas padding)."""
    return min(n_in, max(1, math.ceil(n_out / factor - 1e-6)))


def _axis_cells(p: torch.Tensor, factor: float, int_factor: int, n_cells: int, n_valid: int) -> tuple[
    torch.Tensor, torch.Tensor, torch.Tensor
]:
    """Cells `i0, i1` and weight of `i1` of the upsampled map at integer pixels `p` along one axis.

    `int_factor`: `factor` when it is a whole number (then exact integer arithmetic), else 0.
    """
    if int_factor:
        pc = p.clamp(max=int_factor * (n_valid - 1))
        i0 = torch.div(pc, int_factor, rounding_mode="floor")
        frac = (pc - i0 * int_factor).float() * (1.0 / int_factor)
    else:
        src = (p.double() / factor).clamp(max=n_valid - 1).float()
        i0 = src.floor().long().clamp(0, n_cells - 1)
        frac = src - i0.float()
    return i0, (i0 + 1).clamp(max=n_cells - 1), frac


def upsample_maps(maps: torch.Tensor, factor: float, size: tuple[int, int]) -> torch.Tensor:
    """Upsample grid maps so that cell i lands on pixel `factor * i` (reference `up_interpolate`).

    Bilinear (align_corners) between cells, replicated past the last valid cell. For an integer
    factor with `size == factor * grid` this is exactly the reference: interpolate to
    `size - factor + 1`, then replicate-pad by `factor - 1`. Cells beyond `size / factor` (padding
    of the network canvas) are never read. Decoding builds these only for scales off the integer
    lattice (`peaks.lattice_step`); elsewhere `ScaleReader` reads them where needed.

    Args:
        maps: `[B, C, h, w]`.
        factor: input pixels per cell (4 / test scale).
        size: output `(H, W)`.

    Returns:
        `[B, C, H, W]` float32.
    """
    b, c, h, w = maps.shape
    out_h, out_w = size
    if b * c == 0:
        return maps.new_zeros((b, c, out_h, out_w), dtype=torch.float32)
    maps = maps.float()
    f_int = round(factor)
    if abs(factor - f_int) < 1e-9 and f_int * h == out_h and f_int * w == out_w:
        if f_int == 1:
            return maps
        up = F.interpolate(maps, size=(out_h - f_int + 1, out_w - f_int + 1), mode="bilinear", align_corners=True)
        return F.pad(up, (0, f_int - 1, 0, f_int - 1), mode="replicate")
    dev = maps.device
    y0, y1, wy = _axis_cells(torch.arange(out_h, device=dev), factor, 0, h, valid_cells(h, out_h, factor))
    x0, x1, wx = _axis_cells(torch.arange(out_w, device=dev), factor, 0, w, valid_cells(w, out_w, factor))
    rows = maps[:, :, y0] * (1 - wy)[:, None] + maps[:, :, y1] * wy[:, None]  # [B, C, H, w]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


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
        px = x.float() - _gather(self.offsets, 2 * ch, y, x)  # the pose field: cell - offset
        py = y.float() - _gather(self.offsets, 2 * ch + 1, y, x)
        if self.mirror is not None and self.perm is not None:
            off_f, xm = self.mirror[1], w - 1 - x
            pfx = xm.float() - _gather(off_f, 2 * self.perm[ch], y, xm)
            pfy = y.float() - _gather(off_f, 2 * self.perm[ch] + 1, y, xm)
            px, py = (px + ((w - 1) - pfx)) / 2.0, (py + pfy) / 2.0
        return torch.stack([px, py], -1).permute(0, 2, 1, 3)  # [B, M, K, 2]

    # ------------------------------------------------------------------ values of the upsampled maps
    def _corners(self, px: torch.Tensor, py: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Cells and weights of the bilinear mix of `upsample_maps` at integer pixels."""
        _, h, w = self.shape
        x0, x1, ax = _axis_cells(px, self.factor, self.int_factor, w, self.valid[1])
        y0, y1, ay = _axis_cells(py, self.factor, self.int_factor, h, self.valid[0])
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
