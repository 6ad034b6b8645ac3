"""Figures and the HTML page of a stored sweep: each verdict check's measured number over the axes.

One axis: a line per check against the axis values. Two axes: a heat map per check over the grid,
and one of the verdicts (1 pass, 0 fail). More axes: the page's table only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from phenolab.report import plots
from phenolab.report.html import render_index_page
from phenolab.store import Store, StoreError


def load_sweep_record(store: Store, sid: str) -> dict[str, Any]:
    """The newest finished record of sweep `sid` (StoreError naming the known sweeps otherwise)."""
    records = [r for r in store.list_runs(kind="sweep", sweep_id=sid) if r["status"] == "done"]
    if not records:
        known = sorted({r["sweep_id"] for r in store.list_runs(kind="sweep") if r["sweep_id"]})
        raise StoreError(f"no finished sweep {sid!r} in {store.path} (sweeps: {', '.join(known) or 'none'})")
    return records[0]


def sweep_figures(record: dict[str, Any]) -> dict[str, Figure]:
    axes: dict[str, list[Any]] = record["config"]["axis_values"]
    points = record["summary"]["points"]
    names = list(points[0]["measured"]) if points else []
    paths = list(axes)
    figures: dict[str, Figure] = {}
    if len(paths) == 1:
        (path,) = paths
        xs = axes[path]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
            for name in names:
                ys = [_value(p["measured"].get(name)) for p in points]
                figures[f"{name} against {path}"] = plots.curves(xs, {name: ys}, title=name, xlabel=path,
                                                                 ylabel="measured", markers=True)
    elif len(paths) == 2:
        x_path, y_path = paths[1], paths[0]  # the first axis runs slowest: rows
        xs, ys = axes[x_path], axes[y_path]
        grid = {name: np.full((len(ys), len(xs)), np.nan) for name in [*names, "verdict passed"]}
        for p in points:
            r, c = ys.index(p["values"][y_path]), xs.index(p["values"][x_path])
            for name in names:
                grid[name][r, c] = _value(p["measured"].get(name))
            grid["verdict passed"][r, c] = float(bool(p["passed"]))
        for name, z in grid.items():
            figures[name] = plots.grid_heatmap(xs, ys, z, title=name, xlabel=x_path, ylabel=y_path,
                                               cmap="RdYlGn" if name == "verdict passed" else "viridis")
    return figures


def sweep_page(record: dict[str, Any], figures: dict[str, Any]) -> str:
    cfg = record["config"]
    rows = []
    for p in record["summary"]["points"]:
        label = ", ".join(f"{k}={v}" for k, v in p["values"].items())
        rows.append({"name": label, "status": "done", "passed": p["passed"], "run_id": p["run_id"],
                     "href": f"../{p['run_id']}/report.html",
                     "checks": p.get("checks") or [{"name": n, "measured": m} for n, m in p["measured"].items()]})
    axes = "; ".join(f"{k} = {v}" for k, v in cfg["axis_values"].items())
    return render_index_page(f"sweep {record['sweep_id']}: {cfg['experiment']} ({cfg.get('preset')})", rows,
                             figures={f"sweep: {k}": v for k, v in figures.items()},
                             notes=f"axes: {axes}; seeds: {cfg.get('seeds')}; {len(rows)} points")


def _value(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else math.nan
