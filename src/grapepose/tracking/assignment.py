"""Minimum-cost bipartite matching (Hungarian / Kuhn-Munkres) in numpy.

SciPy's `linear_sum_assignment` would do, but SciPy is not a dependency and the matrices here are
tiny (at most a few dozen people per frame), so a shortest-augmenting-path implementation with
vectorised inner loops is plenty.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_assignment"]


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost matching that covers min(R, C) rows or columns.

    Args:
        cost: `[R, C]` finite costs.

    Returns:
        `(rows, cols)` int64 arrays of equal length min(R, C), sorted by row.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {c.shape}")
    if c.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if not np.isfinite(c).all():
        raise ValueError("cost must be finite")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    rows, cols = _hungarian(c)
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order], cols[order]


def _hungarian(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shortest augmenting paths with potentials for `[n, m]` costs, n <= m (1-based inner arrays)."""
    n, m = c.shape
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    match = np.zeros(m + 1, np.int64)  # match[j] = row (1-based) matched to column j, 0 = free
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            used_idx = np.flatnonzero(used)
            u[match[used_idx]] += delta
            v[used_idx] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.flatnonzero(match[1:]) + 1
    return match[cols] - 1, cols - 1
