"""Metrics as a Markdown table (like the reference's validation log)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["format_metrics_table"]


def format_metrics_table(metrics: Mapping[str, float] | Mapping[str, Mapping[str, float]], name: str = "model") -> str:
    """A Markdown table: one row per model (`name` for a flat dict), one column per metric.

    Values are printed with 3 decimals; -1 (no ground truth in that range) prints as `-`.
    """
    rows = {name: metrics} if all(not isinstance(v, Mapping) for v in metrics.values()) else dict(metrics)
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]  # type: ignore[union-attr]

    def cell(v: float | None) -> str:
        return "-" if v is None or v < 0 else f"{v:.3f}"

    lines = ["| Model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for rname, row in rows.items():
        lines.append(f"| {rname} | " + " | ".join(cell(row.get(c)) for c in columns) + " |")  # type: ignore[union-attr]
    return "\n".join(lines)
