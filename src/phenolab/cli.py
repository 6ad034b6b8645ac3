"""The `phenolab` command: list, run, verify, sweep, runs, show, report, export.

Exit codes: 0 success, 1 a verdict failed, 2 bad input (unknown experiment, bad config key or
value, unusable store). Bad input is reported in one line and leaves the store unchanged.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from phenolab.config import ConfigError, load_yaml, merge, parse_overrides

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A laboratory for the phenomena of neural-network training.")
# off a terminal (logs, pipes) rich would wrap at 80 columns and cut names short: allow wider lines
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

StoreOption = typer.Option(None, "--store", help="SQLite store file (default: $PHENOLAB_STORE or ./phenolab-runs/phenolab.sqlite).")
ExecutorOption = typer.Option(
    None, "--executor", metavar="NAME",
    help="Where the groups of runs train: inline (this process, one after another), local (a pool of worker "
         "processes) or ray (Ray tasks; pip install 'phenolab[ray]'). Default: local for sweep and verify; for run, "
         "local for an experiment made of several measurements, else inline (local when --jobs is given).")
JobsOption = typer.Option(None, "--jobs", "-j", metavar="N",
                          help="Worker processes for --executor local (default: the CPUs this process may use).")
AttemptsOption = typer.Option(None, "--attempts", metavar="N",
                              help="Tries per group whose worker dies, for --executor local or ray (default: 3); then its runs are failed.")
AddressOption = typer.Option(
    None, "--address", metavar="auto|HOST:PORT",
    help="For --executor ray: the Ray cluster to run on (auto: the one `ray start` began on this machine; HOST:PORT: "
         "its head). Default: a private Ray instance on this machine, stopped at the end.")


class BadInput(Exception):
    """Raised inside commands for input problems; printed as one line, exit code 2."""


def main() -> None:
    """Entry point: typer handles usage errors (exit 2) and exit codes; input errors print one line."""
    from phenolab.plugins import PluginError
    from phenolab.store import StoreError

    try:
        app()
    except (ConfigError, StoreError, BadInput, PluginError) as exc:
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)  # keep [brackets]
        sys.exit(EXIT_BAD_INPUT)


def _open_store(path: Optional[Path], readonly: bool = False) -> Any:
    from phenolab.store import Store

    return Store(path, readonly=readonly)


def _overrides(items: list[str], config_file: Optional[Path]) -> dict[str, Any]:
    base = load_yaml(config_file) if config_file else {}
    return merge(base, parse_overrides(items))


# ------------------------------------------------------------------------------- progress
class _Progress:
    """A rich progress bar on a terminal; one plain status line every 10 s otherwise."""

    def __init__(self, title: str):
        self.title = title
        self.tty = out.is_terminal
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last = 0.0

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TextColumn("loss {task.fields[loss]}"),
                                 TimeRemainingColumn(), console=out, transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, label: str, step: int, total: int, loss: float) -> None:
        if self._bar is not None:
            key = label
            if key not in self._tasks:
                self._tasks[key] = self._bar.add_task(f"{self.title} {label}", total=total, loss="")
            if step % 10 == 0 or step == total:
                self._bar.update(self._tasks[key], completed=step, loss="" if loss != loss else f"{loss:.3g}")
            return
        now = time.monotonic()
        if now - self._last > 10 or step == total:
            self._last = now
            tail = "" if loss != loss else f" loss {loss:.4g}"
            print(f"[{self.title} {label}] step {step}/{total}{tail}", flush=True)


# ------------------------------------------------------------------------------- commands
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
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. model.width=200 train.lr=1e-3"),
    quick: bool = typer.Option(False, "--quick", help="Quick preset (the default)."),
    full: bool = typer.Option(False, "--full", help="Full preset: the paper's sizes where a CPU bears them."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of overrides, applied before key=value ones."),
    force: bool = typer.Option(False, "--force", help="Run again even if this exact config is already done."),
    executor: Optional[str] = ExecutorOption,
    jobs: Optional[str] = JobsOption,
    attempts: Optional[str] = AttemptsOption,
    address: Optional[str] = AddressOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Run one experiment, print its verdict beside the paper's numbers, write figures and a report."""
    from phenolab.execution import run_experiment
    from phenolab.experiments import get_experiment

    preset = _preset(quick, full)
    experiment = get_experiment(name)
    ovr = _overrides(overrides or [], config)
    cfg = experiment.resolve(preset, ovr)  # validate before the store is touched
    # independent measurements (batches of small trials) are worth a pool; one training group is not
    default = "local" if len(experiment.measure(cfg)) > 1 else "inline"
    pool = _executor(executor, jobs, attempts, default=default, address=address)
    with _open_store(store) as st, pool:
        with _Progress(name) as progress:
            outcome = run_experiment(name, store=st, preset=preset, overrides=ovr, force=force, progress=progress,
                                     executor=pool)
        _print_verdict(name, outcome.verdict, outcome.run_id, outcome.reused, st)
    raise typer.Exit(EXIT_OK if outcome.passed else EXIT_FAILED)


@app.command()
def verify(
    quick: bool = typer.Option(False, "--quick", help="Quick presets (the default)."),
    full: bool = typer.Option(False, "--full", help="Full presets."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these experiments (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Re-run experiments whose config is already done."),
    report: Optional[Path] = typer.Option(None, "--report", help="Where to write the HTML summary (default: <store dir>/verify.html)."),
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
    pool = _executor(executor, jobs, attempts, default="local", address=address)  # one pool, warm across the experiments
    rows = []
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
    axis: Optional[list[str]] = typer.Option(None, "--axis", "-a", help="PATH=VALUES: a list 1,2,4, a range a:b:n or a:b:n:log (repeatable)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="n (seeds 0..n-1) or a list 0,1,2; replaces the experiment's seeds."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="A YAML sweep file (experiment, preset, base, axes, seeds, name)."),
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
        table.add_row(point.label, "[green]PASS[/]" if o.passed else "[red]FAIL[/]", _measured(o.verdict), str(o.run_id))
    out.print(table)
    out.print(f"{len(outcome.points)} points in {time.monotonic() - started:.1f} s; report: {page}")
    out.print(f"phenolab report {outcome.sweep_id} redraws it; phenolab runs --sweep {outcome.sweep_id} lists its runs")


@app.command()
def runs(
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Only runs of this experiment / recorder name."),
    kind: Optional[str] = typer.Option(None, "--kind", help="sweep, experiment, train or recorder."),
    status: Optional[str] = typer.Option(None, "--status", help="running, done, failed, diverged or interrupted."),
    limit: int = typer.Option(30, "--limit", min=1, help="Show at most this many (newest first)."),
    sweep_id: Optional[str] = typer.Option(None, "--sweep", help="Only runs of this sweep id (its experiment runs and their training runs)."),
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
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory to write into (default: ./phenolab-export/<id>/)."),
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
def show(run_id: int = typer.Argument(..., help="Run id (see `phenolab runs`)."), store: Optional[Path] = StoreOption) -> None:
    """Show one run: status, config, verdict, children, metrics and artifacts."""
    with _open_store(store, readonly=True) as st:
        r = st.get_run(run_id)
        out.print(f"[bold]run {r['id']}[/] {r['kind']} {r['name']} {r.get('label') or ''} - {r['status']}")
        out.print(f"config hash {r['config_hash']}, started {r.get('started')}, finished {r.get('finished')}, "
                  f"{r.get('duration_s') or 0:.1f} s")
        if r.get("error"):
            out.print(f"[red]error:[/] {r['error']}", markup=True)
        if r.get("verdict"):
            _print_verdict(r["name"], r["verdict"], r["id"], False, st)
        kids = st.children(run_id)
        if kids:
            out.print("children: " + ", ".join(f"{k['id']} ({k.get('label')}, {k['status']})" for k in kids))
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
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the page here instead of the store's folder."),
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
            run_id = int(target)
            r = st.get_run(run_id)
            figures = {a["name"]: st.root / a["path"] for a in st.artifacts(run_id) if a.get("kind") == "figure"}
            if not figures and r["kind"] != "experiment":
                figures = _metric_figures(st, run_id)
            kids = st.children(run_id) or [st.get_run(i) for i in (r.get("summary") or {}).get("runs", {}).values()]
            page = render_run_page(r, verdict=r.get("verdict"), figures=figures, children=kids)
            path = _write_user_file(out_path, page) if out_path else st.save_text(run_id, "report.html", page)
    out.print(f"report: {path}")


# -------------------------------------------------------------------------------- helpers
def _executor(name: Optional[str], jobs: Optional[str], attempts: Optional[str], default: str,
              address: Optional[str] = None) -> Any:
    """The executor the options ask for (`--jobs` alone means local); bad values are one-line bad input."""
    from phenolab.execution.executors import make_executor

    n_jobs, n_attempts = _count("--jobs", jobs), _count("--attempts", attempts)
    chosen = name if name is not None else ("local" if n_jobs is not None else default)
    if address is not None and chosen != "ray":
        raise BadInput(f"--address: only with --executor ray (a Ray cluster), not with the {chosen} executor")
    options = {} if address is None else {"address": address}
    try:
        return make_executor(chosen, jobs=n_jobs, attempts=n_attempts, **options)
    except ConfigError as exc:
        raise BadInput(f"--{exc}") from None


def _count(flag: str, raw: Optional[str]) -> Optional[int]:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise BadInput(f"{flag}: must be a positive integer, got {raw!r}")
    return value


def _preset(quick: bool, full: bool) -> str:
    if quick and full:
        raise BadInput("--quick and --full: choose one")
    return "full" if full else "quick"


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


def _write_user_file(path: Path, text: str) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise BadInput(f"--out/--report {path}: cannot write ({exc.strerror})") from None
    return path


if __name__ == "__main__":  # pragma: no cover
    main()
