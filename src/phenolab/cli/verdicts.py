"""Verdict tables and report pages the commands print or write."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from phenolab.cli.shared import out


def _measured(verdict: dict[str, Any]) -> str:
    parts = []
    for c in verdict.get("checks", []):
        m = c.get("measured")
        parts.append(f"{c['name']}: {('n/a' if m is None else f'{m:.3g}')} ({c['op']} {c['threshold']:g})")
    if verdict.get("failure"):
        parts.append(verdict["failure"])
    return "\n".join(parts)


def _print_verdict(name: str, verdict: dict[str, Any], run_id: int, reused: bool, st: Any) -> None:
    table = Table(title=f"{name}: {'PASS' if verdict.get('passed') else 'FAIL'}"
                        + (" (reused the stored runs of this config, judged again; --force re-runs)" if reused else ""))
    for col in ("check", "measured", "need", "paper", "ok"):
        table.add_column(col, overflow="fold")
    for c in verdict.get("checks", []):
        m = c.get("measured")
        table.add_row(c["name"], "n/a" if m is None else f"{m:.4g}", f"{c['op']} {c['threshold']:g}",
                      c.get("paper", ""), "[green]yes[/]" if c.get("passed") else "[red]no[/]")
    out.print(table)
    out.print(f"verdict: {verdict.get('reason', '')}")
    out.print(f"source: {verdict.get('source', '')}")
    out.print(f"run {run_id}; figures and report in {st.run_dir(run_id)}")


def _index_row(r: dict[str, Any]) -> dict[str, Any]:
    v = r.get("verdict") or {}
    return {"name": r["name"], "status": r["status"], "passed": v.get("passed"), "reason": v.get("reason", ""),
            "checks": v.get("checks", []), "source": v.get("source", ""), "duration_s": r.get("duration_s"),
            "run_id": r["id"], "href": f"runs/{r['id']}/report.html"}


def _verify_page(rows: list[dict[str, Any]], st: Any, preset: str) -> str:
    from phenolab.report.html import render_index_page

    index, figures = [], {}
    for r in rows:
        e, o = r["experiment"], r["outcome"]
        index.append({"name": e.name, "title": e.title, "source": e.source, "claim": e.claim, "status": "done",
                      "passed": o.passed, "reason": o.verdict.get("reason", ""), "checks": o.verdict.get("checks", []),
                      "duration_s": r["seconds"], "run_id": o.run_id, "href": f"runs/{o.run_id}/report.html"})
        for a in st.artifacts(o.run_id):
            if a.get("kind") == "figure":
                figures[f"{e.name}: {a['name']}"] = st.root / a["path"]
    return render_index_page(f"phenolab verify ({preset})", index, figures=figures)


def _metric_figures(st: Any, run_id: int) -> dict[str, Any]:
    from phenolab.report import plots

    m = st.metrics(run_id)
    figs = {}
    for name, grp in m.groupby("name"):
        figs[str(name)] = plots.curves(grp["step"].to_numpy(), {str(name): grp["value"].to_numpy()},
                                       title=str(name), ylabel=str(name))
        if len(figs) >= 8:
            break
    return figs
