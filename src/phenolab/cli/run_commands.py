"""The commands that run experiments: list, run, verify, sweep (and the global options)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from phenolab.cli.progress import _Progress
from phenolab.cli.shared import (
    EXIT_FAILED,
    EXIT_OK,
    AddressOption,
    AttemptsOption,
    BadInput,
    ExecutorOption,
    JobsOption,
    StoreOption,
    _executor,
    _open_store,
    _overrides,
    _preset,
    _write_user_file,
    app,
    out,
)
from phenolab.cli.verdicts import _measured, _print_verdict, _verify_page


@app.callback()
def _global_options(
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1,
        help="Threads per process for torch and BLAS (default: $PHENOLAB_THREADS or 1; phenolab's models are small)."),
    plugin: Optional[list[str]] = typer.Option(
        None, "--plugin", metavar="MODULE_OR_FILE",
        help="Load experiments and probes from this module or .py file too (repeatable; added to $PHENOLAB_PLUGINS, "
             "beside the installed entry points of group phenolab.plugins)."),
) -> None:
    """A laboratory for the phenomena of neural-network training."""
    from phenolab.threads import default_threads, set_threads

    set_threads(threads if threads is not None else default_threads())
    if plugin:
        from phenolab.plugins import add_plugins

        add_plugins(list(plugin))  # in the environment, so that executor workers load them too


@app.command("list")
def list_cmd() -> None:
    """List the experiments of the catalog (and of plugins) with their sources and claims."""
    from phenolab.experiments import experiments
    from phenolab.plugins import provided_by

    entries = experiments()
    origins = [provided_by("experiment", e.name) for e in entries]
    plugged = any(origins)  # a "from" column only when a plugin adds entries
    table = Table(title="phenolab catalog", show_lines=True)
    for col in ("name", "title", "source", "claim") + (("from",) if plugged else ()):
        table.add_column(col, overflow="fold")
    for e, origin in zip(entries, origins):
        origin_cell = [origin.label if origin else "phenolab"] if plugged else []
        table.add_row(e.name, e.title, e.source, e.claim, *origin_cell)
    out.print(table)


@app.command()
def run(
    name: str = typer.Argument(..., help="Experiment name (see `phenolab list`)."),
    overrides: Optional[list[str]] = typer.Argument(
        None, help="key=value overrides, e.g. model.width=200 train.lr=1e-3"),
    quick: bool = typer.Option(False, "--quick", help="Quick preset (the default)."),
    full: bool = typer.Option(False, "--full", help="Full preset: the paper's sizes where a CPU bears them."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML file of overrides, applied before key=value ones."),
    force: bool = typer.Option(False, "--force", help="Run again even if this exact config is already done."),
    executor: Optional[str] = ExecutorOption,
    jobs: Optional[str] = JobsOption,
    attempts: Optional[str] = AttemptsOption,
    address: Optional[str] = AddressOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Run one experiment, print its verdict beside the paper's numbers, write figures and a report."""
    from phenolab.execution import run_prepared
    from phenolab.experiments.runner import prepare

    preset = _preset(quick, full)
    prepared = prepare(name, preset, _overrides(overrides or [], config))  # bad input stops here, store untouched
    # independent measurements (batches of small trials) are worth a pool; one training group is not
    default = "local" if len(prepared.computations) > 1 else "inline"
    pool = _executor(executor, jobs, attempts, default=default, address=address)
    with _open_store(store) as st, pool:
        with _Progress(name) as progress:
            outcome = run_prepared(prepared, store=st, force=force, progress=progress, executor=pool)
        _print_verdict(name, outcome.verdict, outcome.run_id, outcome.reused, st)
    raise typer.Exit(EXIT_OK if outcome.passed else EXIT_FAILED)


@app.command()
def verify(
    quick: bool = typer.Option(False, "--quick", help="Quick presets (the default)."),
    full: bool = typer.Option(False, "--full", help="Full presets."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these experiments (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Re-run experiments whose config is already done."),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Where to write the HTML summary (default: <store dir>/verify.html)."),
    executor: Optional[str] = ExecutorOption,
    jobs: Optional[str] = JobsOption,
    attempts: Optional[str] = AttemptsOption,
    address: Optional[str] = AddressOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Run every catalog entry and print a verdict table; writes one HTML summary page."""
    from phenolab.execution import run_experiment
    from phenolab.experiments import experiments, get_experiment

    preset = _preset(quick, full)
    chosen = [get_experiment(n) for n in only] if only else experiments()
    # one pool, warm across the experiments
    pool = _executor(executor, jobs, attempts, default="local", address=address)
    rows: list[dict[str, Any]] = []
    with _open_store(store) as st, pool:
        for e in chosen:
            started = time.monotonic()
            with _Progress(e.name) as progress:
                outcome = run_experiment(e.name, store=st, preset=preset, force=force, progress=progress,
                                         executor=pool)
            rows.append({"experiment": e, "outcome": outcome, "seconds": time.monotonic() - started})
        table = Table(title=f"phenolab verify ({preset})")
        for col in ("experiment", "verdict", "measured (need)", "run", "time"):
            table.add_column(col, overflow="fold")
        for r in rows:
            o = r["outcome"]
            table.add_row(o.name, "[green]PASS[/]" if o.passed else "[red]FAIL[/]", _measured(o.verdict),
                          str(o.run_id) + (" (reused)" if o.reused else ""), f"{r['seconds']:.1f} s")
        out.print(table)
        page = _verify_page(rows, st, preset)
        path = _write_user_file(report, page) if report else st.save_page("verify.html", page)
        out.print(f"report: {path}")
    raise typer.Exit(EXIT_OK if all(r["outcome"].passed for r in rows) else EXIT_FAILED)


@app.command()
def sweep(
    name: Optional[str] = typer.Argument(None, help="Experiment to sweep (or give --file)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides applied to every point."),
    axis: Optional[list[str]] = typer.Option(
        None, "--axis", "-a", help="PATH=VALUES: a list 1,2,4, a range a:b:n or a:b:n:log (repeatable)."),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="n (seeds 0..n-1) or a list 0,1,2; replaces the experiment's seeds."),
    file: Optional[Path] = typer.Option(
        None, "--file", "-f", help="A YAML sweep file (experiment, preset, base, axes, seeds, name)."),
    quick: bool = typer.Option(False, "--quick", help="Quick preset at every point (the default)."),
    full: bool = typer.Option(False, "--full", help="Full preset at every point."),
    sweep_name: Optional[str] = typer.Option(None, "--name", help="A name to prefix the sweep id with."),
    force: bool = typer.Option(False, "--force", help="Re-run points and runs that are already done."),
    executor: Optional[str] = ExecutorOption,
    jobs: Optional[str] = JobsOption,
    attempts: Optional[str] = AttemptsOption,
    address: Optional[str] = AddressOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Run an experiment over a grid of config values; every point lands in the store under one sweep id."""
    from phenolab.sweep import load_sweep, sweep_from_cli
    from phenolab.sweep.report import sweep_figures, sweep_page
    from phenolab.sweep.run import run_sweep

    if file is not None:
        if name or axis or overrides:
            raise BadInput("--file: give the experiment, axes and overrides in the file, not on the command line")
        spec = load_sweep(file)
    else:
        if not name:
            raise BadInput("sweep: give an experiment NAME with --axis options, or --file")
        if not axis:
            raise BadInput("--axis: a sweep needs at least one axis, e.g. --axis model.init.gamma=0.5:2:4")
        spec = sweep_from_cli(name, list(axis), seeds, list(overrides or []), _preset(quick, full), sweep_name)
    pool = _executor(executor, jobs, attempts, default="local", address=address)
    started = time.monotonic()
    with _open_store(store) as st, pool:
        with _Progress("sweep") as progress:
            outcome = run_sweep(spec, store=st, force=force, progress=progress, executor=pool)
        record = st.get_run(outcome.run_id)
        figures = {k: st.save_figure(outcome.run_id, k, f) for k, f in sweep_figures(record).items()}
        page = st.save_text(outcome.run_id, "report.html", sweep_page(record, figures))
    table = Table(title=f"sweep {outcome.sweep_id}: {spec.experiment}" + (" (reused)" if outcome.reused else ""))
    for col in ("point", "verdict", "measured (need)", "run"):
        table.add_column(col, overflow="fold")
    for point, o in outcome.points:
        table.add_row(point.label, "[green]PASS[/]" if o.passed else "[red]FAIL[/]", _measured(o.verdict),
                      str(o.run_id))
    out.print(table)
    out.print(f"{len(outcome.points)} points in {time.monotonic() - started:.1f} s; report: {page}")
    out.print(f"phenolab report {outcome.sweep_id} redraws it; phenolab runs --sweep {outcome.sweep_id} lists its runs")
