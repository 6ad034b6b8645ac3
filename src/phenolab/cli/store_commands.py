"""The commands that read the store: runs, export, show, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from phenolab.cli.shared import BadInput, StoreOption, _open_store, _write_user_file, app, out
from phenolab.cli.verdicts import _index_row, _metric_figures, _print_verdict


@app.command()
def runs(
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Only runs of this experiment / recorder name."),
    kind: Optional[str] = typer.Option(None, "--kind", help="sweep, experiment, train or recorder."),
    status: Optional[str] = typer.Option(None, "--status", help="running, done, failed, diverged or interrupted."),
    limit: int = typer.Option(30, "--limit", min=1, help="Show at most this many (newest first)."),
    sweep_id: Optional[str] = typer.Option(
        None, "--sweep", help="Only runs of this sweep id (its experiment runs and their training runs)."),
    experiment: Optional[str] = typer.Option(
        None, "--experiment", "-e",
        help="Only training runs of this experiment (a name, or an experiment run's id), through their parent."),
    where: Optional[list[str]] = typer.Option(
        None, "--where", "-w",
        help="PATH=VALUE: only runs whose config field PATH equals VALUE, e.g. model.width=100 (repeatable; "
             "numbers compare numerically, strings exactly)."),
    store: Optional[Path] = StoreOption,
) -> None:
    """List stored runs, newest first."""
    from phenolab.store import RUN_STATUSES
    from phenolab.store.summary import where_terms

    if status is not None and status not in RUN_STATUSES:
        raise BadInput(f"--status: must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    try:
        terms = where_terms(list(where or []))
    except ValueError as exc:
        raise BadInput(f"--where: {exc}") from None
    with _open_store(store, readonly=True) as st:
        _check_run_filters(st, terms, experiment)
        rows = st.list_runs(name=name, kind=kind, status=status, sweep_id=sweep_id, experiment=experiment,
                            where=terms, limit=limit)
    table = Table(title=f"runs in {st.path}")
    for col in ("id", "kind", "name", "label", "parent", "status", "verdict", "started", "seconds"):
        table.add_column(col)
    for r in rows:
        passed = r.get("passed")
        table.add_row(str(r["id"]), r["kind"], r["name"], r.get("label") or "",
                      "" if r.get("parent_id") is None else str(r["parent_id"]), r["status"],
                      "" if passed is None else ("PASS" if passed else "FAIL"), (r.get("started") or "")[:19],
                      "" if r.get("duration_s") is None else f"{r['duration_s']:.1f}")
    out.print(table)


def _check_run_filters(st: Any, terms: list[tuple[str, Any]], experiment: Optional[str]) -> None:
    """Bad input for a --where field no run has (with suggestions) or an unknown --experiment."""
    import difflib

    missing = [key for key, _ in terms if not st.has_config_key(key)]
    if missing:
        keys = st.config_keys()
        if keys:  # an empty store has no fields yet: nothing to match, not an error
            close = difflib.get_close_matches(missing[0], keys, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(repr(k) for k in close)}?" if close else ""
            raise BadInput(f"--where {missing[0]}: no run in {st.path} has this config field{hint}")
    if experiment is None:
        return
    if experiment.isdigit():
        run = st.get_run(int(experiment))
        if run["kind"] != "experiment":
            raise BadInput(f"--experiment {experiment}: run {experiment} is a {run['kind']} run, not an experiment run")
        return
    names = st.experiment_names()
    if experiment not in names:
        close = difflib.get_close_matches(experiment, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadInput(f"--experiment: no experiment run named {experiment!r} in {st.path} "
                       f"(experiments: {', '.join(names) or 'none'}){hint}")


@app.command()
def export(
    target: str = typer.Argument(..., help="A sweep id, or a run id (a sweep, experiment or training run)."),
    to: Optional[str] = typer.Option(None, "--to", help="parquet, csv or tensorboard."),
    out_dir: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Directory to write into (default: ./phenolab-export/<id>/)."),
    store: Optional[Path] = StoreOption,
) -> None:
    """Export a sweep's or a run's training runs: runs and metrics tables (Parquet, CSV) or TensorBoard event files."""
    from phenolab.export import FORMATS, ExportError, check_format
    from phenolab.export import export as write_export
    from phenolab.store.artifacts import safe_file_name

    if to is None:
        raise BadInput(f"--to: give the format, one of {', '.join(FORMATS)}")
    try:
        check_format(to)
    except ExportError as exc:
        raise BadInput(f"--to: {exc}") from None
    dest = out_dir if out_dir is not None else Path.cwd() / "phenolab-export" / safe_file_name(target)
    with _open_store(store, readonly=True) as st:
        try:
            paths = write_export(st, target, to, dest)
        except ExportError as exc:
            raise BadInput(f"--out: {exc}") from None
    what = (f"{len(paths)} run directories (tensorboard --logdir {dest})" if to == "tensorboard"
            else ", ".join(p.name for p in paths))
    out.print(f"exported {target} as {to} to {dest}: {what}")


@app.command()
def show(run_id: int = typer.Argument(..., help="Run id (see `phenolab runs`)."),
         store: Optional[Path] = StoreOption) -> None:
    """Show one run: status, config, verdict, children, metrics and artifacts."""
    with _open_store(store, readonly=True) as st:
        r = st.get_run(run_id)
        out.print(f"[bold]run {r['id']}[/] {r['kind']} {r['name']} {r.get('label') or ''} - {r['status']}")
        out.print(f"config hash {r['config_hash']}, started {r.get('started')}, finished {r.get('finished')}, "
                  f"{r.get('duration_s') or 0:.1f} s")
        if r.get("error"):
            out.print(f"[red]error:[/] {r['error']}", markup=True)
        engine = (r.get("summary") or {}).get("engine")
        if engine:
            out.print(f"engine: {engine}")
        if r.get("verdict"):
            _print_verdict(r["name"], r["verdict"], r["id"], False, st)
        kids = st.children(run_id)
        if kids:
            out.print("children: " + ", ".join(
                f"{k['id']} ({k.get('label')}, {k['status']}"
                + (f", {k['summary']['engine']}" if (k.get("summary") or {}).get("engine") else "") + ")"
                for k in kids))
        metrics = st.metrics(run_id)
        if len(metrics):
            last = metrics.groupby("name").tail(1)
            out.print("last metric values: " + ", ".join(f"{n} = {v:.4g} @ {s}" for n, v, s in
                                                          zip(last["name"], last["value"], last["step"])))
        for a in st.artifacts(run_id):
            out.print(f"artifact {a['name']}: {st.root / a['path']}")
        out.print("config: " + json.dumps(r["config"], sort_keys=True))


@app.command()
def report(
    target: Optional[str] = typer.Argument(None, help="A run id, or a sweep id; omit with --all."),
    all_: bool = typer.Option(False, "--all", help="One index page over every experiment run in the store."),
    out_path: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Write the page here instead of the store's folder."),
    store: Optional[Path] = StoreOption,
) -> None:
    """Write the HTML report of one run (figures embedded), or an index of all experiment runs."""
    from phenolab.report.html import render_index_page, render_run_page
    from phenolab.sweep.report import load_sweep_record, sweep_figures, sweep_page

    if (target is None) == (not all_):
        raise BadInput("report: give a RUN id, a SWEEP id or --all (not both)")
    with _open_store(store) as st:
        if target is not None and not target.isdigit():
            record = load_sweep_record(st, target)
            figures = {k: st.save_figure(record["id"], k, f) for k, f in sweep_figures(record).items()}
            page = sweep_page(record, figures)
            path = _write_user_file(out_path, page) if out_path else st.save_text(record["id"], "report.html", page)
        elif all_:
            rows = [_index_row(r) for r in st.list_runs(kind="experiment")]
            page = render_index_page("phenolab: all experiment runs", rows)
            path = _write_user_file(out_path, page) if out_path else st.save_page("index.html", page)
        else:
            run_id = int(str(target))  # a run id: the other branches took a sweep id or --all
            r = st.get_run(run_id)
            figures = {a["name"]: st.root / a["path"] for a in st.artifacts(run_id) if a.get("kind") == "figure"}
            if not figures and r["kind"] != "experiment":
                figures = _metric_figures(st, run_id)
            kids = st.children(run_id) or [st.get_run(i) for i in (r.get("summary") or {}).get("runs", {}).values()]
            page = render_run_page(r, verdict=r.get("verdict"), figures=figures, children=kids)
            path = _write_user_file(out_path, page) if out_path else st.save_text(run_id, "report.html", page)
    out.print(f"report: {path}")
