"""Pose NMS: the reference's grouping walk as a batched fixed point (docs/DESIGN.md, Decoding, step 5).

The reference walks proposals in order; a proposal not yet suppressed forms a group with its
duplicates, the group's member with the highest mean heat value is kept (unless already
suppressed) and the group is suppressed. Whether proposal i starts a group depends only on the
decisions for proposals before i, so the decisions are the unique fixed point of a map that is
strictly lower-triangular in the proposal order. Iterating that map from any start makes the first
t decisions exact after t rounds; it usually settles in 2-4 rounds, each a few batched tensor ops
and, on the CPU, one free check for convergence; on CUDA all M + 1 rounds run without syncing.
"""

from __future__ import annotations

import torch

__all__ = ["duplicate_matrix", "pose_nms"]


def duplicate_matrix(coords: torch.Tensor, valid: torch.Tensor, distance: float, joints: int) -> torch.Tensor:
    """Which proposals duplicate which.

    Args:
        coords: `[B, M, K, 2]` joint positions.
        valid: `[B, M]` proposals that take part.
        distance: joints closer than `distance` x the diagonal of proposal i's joint box count as close.
        joints: j duplicates i when more than `joints` joints are close.

    Returns:
        `[B, M, M]` bool, entry (i, j) = j duplicates i; every valid proposal duplicates itself.
    """
    b, m = valid.shape
    span = coords.amax(dim=2) - coords.amin(dim=2)  # [B, M, 2]
    diag = span.square().sum(-1).sqrt()  # [B, M]
    x, y = coords[..., 0], coords[..., 1]  # [B, M, K]: coordinates apart (ops then run along K, not an axis of 2)
    dist = ((x[:, :, None] - x[:, None, :]).square() + (y[:, :, None] - y[:, None, :]).square()).sqrt()  # [B, M, M, K]
    close = (dist < (distance * diag)[:, :, None, None]).sum(-1) > joints
    eye = torch.eye(m, dtype=torch.bool, device=coords.device)
    pair = valid[:, :, None] & valid[:, None, :]
    return (close | eye) & pair


def pose_nms(
    coords: torch.Tensor,
    valid: torch.Tensor,
    heat_score: torch.Tensor,
    distance: float = 0.05,
    joints: int = 7,
    suppress_unkept: bool = True,
    max_rounds: int | None = None,
) -> torch.Tensor:
    """The proposals the reference's NMS walk keeps.

    Args:
        coords: `[B, M, K, 2]` proposals in walk order.
        valid: `[B, M]` bool.
        heat_score: `[B, M]` mean keypoint-heatmap value per proposal.
        distance: see `duplicate_matrix`.
        joints: see `duplicate_matrix`.
        suppress_unkept: True (docs/DESIGN.md, Decoding, step 5): a group is suppressed even when its
            best member was already suppressed. False: as the reference code, such a group is left alone.
        max_rounds: cap on fixed-point rounds (default M + 1, always enough).

    Returns:
        `[B, M]` bool mask of kept proposals (not yet capped to the top `max_people`).
    """
    b, m = valid.shape
    if b * m == 0:
        return valid.clone()
    group = duplicate_matrix(coords, valid, distance, joints)  # [B, i, l]: l in the group of i
    member_heat = torch.where(group, heat_score[:, None, :], torch.full_like(heat_score[:, None, :], -torch.inf))
    best = member_heat.argmax(dim=2)  # [B, M], first maximum like the reference's argmax
    earlier = torch.ones(m, m, device=coords.device, dtype=torch.float32).tril(-1)  # [i, j]: j < i
    group_f = group.float()

    def suppressed_before(active: torch.Tensor) -> torch.Tensor:
        # [B, i, l]: l is in the group of some active proposal j < i
        return torch.matmul(earlier, active.float()[:, :, None] * group_f) > 0

    def step(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sup = suppressed_before(active)
        self_sup = sup.diagonal(dim1=1, dim2=2)
        best_sup = sup.gather(2, best[:, :, None])[:, :, 0]
        starts = valid & ~self_sup  # proposal i is reached un-suppressed and forms a group
        keeps = starts & ~best_sup
        return (starts if suppress_unkept else keeps), keeps

    active = valid.clone()
    rounds = m + 1 if max_rounds is None else max_rounds
    check = valid.device.type == "cpu"  # elsewhere the test for convergence would sync with the host
    settled = False
    for _ in range(rounds):  # fixed iteration count with an early exit on the CPU; see the docstring
        new_active, keeps = step(active)
        if check and torch.equal(new_active, active):
            settled = True  # this round's `keeps` came from the fixed point itself
            break
        active = new_active
    if not settled:
        _, keeps = step(active)
    kept = torch.zeros(b, m, dtype=torch.int32, device=valid.device)
    kept.scatter_add_(1, best, keeps.int())  # a kept best is never kept twice; add is order-independent
    return kept > 0
