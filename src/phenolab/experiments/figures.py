"""Small helpers that shape analysis results into the series a figure draws (`phenolab.report.plots` draws them)."""

from __future__ import annotations

from typing import Any, Mapping


def aligned_curves(rows: Mapping[str, Mapping[str, Any]], x: str, y: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """One figure's x axis and curves from rows that each carry their own: the first row's ``row[x]``
    and, per row with that same x axis, ``row[y]`` under the row's name (rows on another axis, e.g.
    a condition whose seeds stopped at other steps, are left out rather than misdrawn)."""
    first = next(iter(rows.values()))
    return first[x], {name: row[y] for name, row in rows.items() if row[x] == first[x]}
