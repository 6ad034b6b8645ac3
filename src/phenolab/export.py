"""Export a sweep or a run from the store to files other tools read: Parquet, CSV, TensorBoard.

    phenolab export SWEEP_OR_RUN_ID --to parquet|csv|tensorboard [--out DIR]

Parquet and CSV write two tables (``runs`` and ``metrics``, as ``.parquet`` or ``.csv``):

- ``runs``: one row per training run (per sweep point it serves: a run that two points share,
  trained once, appears under each), with its ids, label, status and timings, the sweep point's
  axis values (``axis.<path>``), the experiment run's verdict (``verdict.passed``,
  ``verdict.reason``, ``check.<name>`` measured and ``check.<name>.passed``), the final value of
  each metric series (``final.<metric>``; runs still running have none) and every scalar config
  field (``config.<dotted path>``).
- ``metrics``: long, one row per (run_id, step, name, value), each training run once.

TensorBoard writes one subdirectory per training run with its metric series as scalars over
steps, its config fields (and axis values) as hparams, and the whole config as text.

This module reads the store (opened read-only by the command) and writes only into the
directory it is given. pyarrow (Parquet) and tensorboardX (TensorBoard) are optional:
``pip install 'phenolab[export]'``.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phenolab.store import Store, StoreError
from phenolab.store.summary import flatten_config

FORMATS = ("parquet", "csv", "tensorboard")
EXTRA = "pip install 'phenolab[export]'"
_NEEDS = {"parquet": "pyarrow", "tensorboard": "tensorboardX"}
METRIC_COLUMNS = ("run_id", "step", "name", "value")


class ExportError(ValueError):
    """The export cannot be done as asked (format, missing package, output directory); one line."""


def check_format(fmt: str) -> None:
    """ExportError unless `fmt` is a known format whose optional package is installed."""
    if fmt not in FORMATS:
        raise ExportError(f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    module = _NEEDS.get(fmt)
    if module is not None:
        try:
            import_module(module)
        except ImportError:
            raise ExportError(f"{fmt} export needs the package {module}, which is not installed: {EXTRA}") from None


# ------------------------------------------------------------------------------ what to export
@dataclass(frozen=True)
class Member:
    """One training run as a row of the export: the experiment run and sweep point it serves."""

    run_id: int
    label: str | None = None
    experiment_id: int | None = None
    point: int | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """What a target id names: a sweep, an experiment run or a single run, as training-run rows."""

    target: str
    kind: str  # "sweep", "experiment" or "run"
    sweep_id: str | None
    axes: list[str]
    members: list[Member]

    @property
    def run_ids(self) -> list[int]:
        """Each training run once, in the order of the rows."""
        return list(dict.fromkeys(m.run_id for m in self.members))


def select(store: Store, target: str) -> Selection:
    """The training runs of sweep id `target`, or of run id `target` (a sweep, experiment or
    training run); StoreError naming the known sweeps when there is no such sweep or run."""
    target = str(target).strip()
    records = store.list_runs(kind="sweep", sweep_id=target) if target else []
    if records:
        return _sweep(store, target, records)
    if not target.isdigit():
        known = sorted({r["sweep_id"] for r in store.list_runs(kind="sweep") if r["sweep_id"]})
        raise StoreError(f"no sweep or run {target!r} in {store.path} "
                         f"(give a run id or a sweep id; sweeps: {', '.join(known) or 'none'})")
    run = store.get_run(int(target))
    if run["kind"] == "sweep" and run.get("sweep_id"):
        return _sweep(store, run["sweep_id"], [run])
    if run["kind"] == "experiment":
        axes, point, values = _point_of(store, run)
        members = _training_runs(store, run, point=point, values=values)
        return Selection(target, "experiment", run.get("sweep_id"), axes, members)
    parent = store.get_run(run["parent_id"]) if run.get("parent_id") is not None else None
    experiment = parent if parent is not None and parent["kind"] == "experiment" else None
    axes, point, values = _point_of(store, experiment) if experiment is not None else ([], None, {})
    label = _labels(experiment).get(run["id"], run.get("label")) if experiment is not None else run.get("label")
    member = Member(run["id"], label, None if experiment is None else experiment["id"], point, values)
    return Selection(target, "run", (experiment or run).get("sweep_id"), axes, [member])


def _sweep(store: Store, sid: str, records: list[dict[str, Any]]) -> Selection:
    axes = list(((records[0].get("config") or {}).get("axis_values") or {}))
    done = next((r for r in records if r["status"] == "done" and (r.get("summary") or {}).get("points")), None)
    members: list[Member] = []
    if done is not None:
        for p in done["summary"]["points"]:
            experiment = store.get_run(p["run_id"])
            members += _training_runs(store, experiment, point=p.get("index"), values=dict(p.get("values") or {}))
    else:  # an unfinished sweep: the experiment runs it has so far, newest of each config
        grid = (records[0].get("config") or {}).get("axis_values") or {}
        newest: dict[str, dict[str, Any]] = {}
        for run in store.list_runs(kind="experiment", sweep_id=sid):
            newest.setdefault(run["config_hash"], run)
        for experiment in sorted(newest.values(), key=lambda r: r["id"]):
            values = {path: _lookup(experiment.get("config") or {}, path) for path in axes}
            members += _training_runs(store, experiment, point=_grid_index(grid, values), values=values)
    return Selection(sid, "sweep", sid, axes, members)


def _point_of(store: Store, experiment: dict[str, Any]) -> tuple[list[str], int | None, dict[str, Any]]:
    """The axes of the sweep an experiment run belongs to, its point's index and values on them."""
    sid = experiment.get("sweep_id")
    records = store.list_runs(kind="sweep", sweep_id=sid) if sid else []
    if not records:
        return [], None, {}
    grid = (records[0].get("config") or {}).get("axis_values") or {}
    for record in records:
        for p in (record.get("summary") or {}).get("points") or []:
            if p.get("run_id") == experiment["id"]:
                return list(grid), p.get("index"), dict(p.get("values") or {})
    values = {path: _lookup(experiment.get("config") or {}, path) for path in grid}
    return list(grid), _grid_index(grid, values), values


def _training_runs(store: Store, experiment: dict[str, Any], *, point: int | None,
                   values: dict[str, Any]) -> list[Member]:
    """The experiment run's training runs: those its summary lists (label -> id), else its children."""
    labels = _labels(experiment)
    if not labels:
        labels = {child["id"]: child.get("label") for child in store.children(experiment["id"])}
    return [Member(run_id, label, experiment["id"], point, values) for run_id, label in labels.items()]


def _labels(experiment: dict[str, Any] | None) -> dict[int, str | None]:
    listed = ((experiment or {}).get("summary") or {}).get("runs")
    if not isinstance(listed, Mapping):
        return {}
    out: dict[int, str | None] = {}
    for label, run_id in listed.items():
        if isinstance(run_id, int) and not isinstance(run_id, bool):
            out.setdefault(run_id, str(label))
    return out


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _grid_index(grid: Mapping[str, list[Any]], values: Mapping[str, Any]) -> int | None:
    """The point's index in the Cartesian product of the axes (first axis slowest)."""
    index = 0
    for path, options in grid.items():
        found = next((i for i, option in enumerate(options) if option == values.get(path)), None)
        if found is None:
            return None
        index = index * len(options) + found
    return index


# ------------------------------------------------------------------------------ the tables
def runs_table(store: Store, selection: Selection) -> pd.DataFrame:
    """One row per member: ids, status, axis values, verdict and checks, final metrics, config."""
    runs = {run_id: store.get_run(run_id) for run_id in selection.run_ids}
    experiment_ids = dict.fromkeys(m.experiment_id for m in selection.members if m.experiment_id is not None)
    experiments = {i: store.get_run(i) for i in experiment_ids}
    summaries = store.summaries([*runs, *experiments])
    rows = []
    for m in selection.members:
        run = runs[m.run_id]
        experiment = experiments.get(m.experiment_id) if m.experiment_id is not None else None
        row: dict[str, Any] = {
            "run_id": m.run_id, "experiment_run_id": m.experiment_id,
            "experiment": experiment["name"] if experiment is not None else run["name"],
            "sweep_id": (experiment or run).get("sweep_id") or selection.sweep_id,
            "point": m.point, "label": m.label, "kind": run["kind"], "status": run["status"],
            "error": run.get("error"), "config_hash": run["config_hash"], "started": run.get("started"),
            "finished": run.get("finished"), "duration_s": run.get("duration_s"),
        }
        for path in selection.axes:
            row[f"axis.{path}"] = _cell(m.values.get(path))
        if experiment is not None:
            verdict = experiment.get("verdict") or {}
            row["verdict.passed"] = experiment.get("passed")
            row["verdict.reason"] = verdict.get("reason")
            for check in (summaries.get(experiment["id"]) or {}).get("checks", []):
                row[f"check.{check['name']}"] = check["measured"]
                row[f"check.{check['name']}.passed"] = check["passed"]
        for name, value in (summaries.get(m.run_id) or {}).get("final", {}).items():
            row[f"final.{name}"] = value
        for key, value in flatten_config(run.get("config") or {}).items():
            row[f"config.{key}"] = value
        rows.append(row)
    return _tidy(pd.DataFrame(rows, columns=_columns(rows)))


def _cell(value: Any) -> Any:
    """A table cell: scalars as they are, lists and dicts as JSON text."""
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, tuple, dict)) else value


RUN_COLUMNS = ("run_id", "experiment_run_id", "experiment", "sweep_id", "point", "label", "kind", "status", "error",
               "config_hash", "started", "finished", "duration_s")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The fixed columns, then those of the rows: axis, verdict, check, final, config."""
    seen = list(dict.fromkeys(k for row in rows for k in row))
    order = ("axis.", "verdict.", "check.", "final.", "config.")
    return [*RUN_COLUMNS, *(c for prefix in order for c in seen if c.startswith(prefix))]


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Types every reader agrees on: integer ids nullable, times as UTC timestamps, a column mixing
    text with numbers or booleans (a config field that differs in type between runs) as text."""
    for column in ("experiment_run_id", "point"):
        frame[column] = frame[column].astype("Int64")
    for column in ("started", "finished"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object:
            continue
        kinds = {_kind(v) for v in series if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1:
            frame[column] = series.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v))
                                       else v if isinstance(v, str) else json.dumps(v))
    return frame


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.number)):
        return "number"
    return type(value).__name__


def iter_metrics(store: Store, selection: Selection) -> Iterator[pd.DataFrame]:
    """The metrics table, one training run at a time: columns run_id, step, name, value."""
    for run_id in selection.run_ids:
        frame = store.metrics(run_id)
        frame.insert(0, "run_id", np.full(len(frame), run_id, dtype=np.int64))
        yield frame[list(METRIC_COLUMNS)]


# ------------------------------------------------------------------------------ writing
def export(store: Store, target: str, fmt: str, out_dir: str | Path) -> list[Path]:
    """Write the export of `target` in format `fmt` into `out_dir`; the paths written.

    Everything is checked (format, package, target, and for TensorBoard that `out_dir` holds no
    earlier event files for these runs) before the first file is written; tables are written to
    a temporary name and renamed, so that a failure leaves no half-written table.
    """
    check_format(fmt)
    selection = select(store, target)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a directory")
    if fmt == "tensorboard":
        return _tensorboard(store, selection, out)
    writer = {"parquet": _write_parquet, "csv": _write_csv}[fmt]
    try:
        out.mkdir(parents=True, exist_ok=True)
        return writer(store, selection, out)
    except OSError as exc:
        raise ExportError(f"cannot write into {out}: {exc.strerror or exc}") from None


def _atomic(dest: Path, write: Callable[[Path], None]) -> Path:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _write_csv(store: Store, selection: Selection, out: Path) -> list[Path]:
    runs = _atomic(out / "runs.csv", lambda p: runs_table(store, selection).to_csv(p, index=False))

    def metrics(path: Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(",".join(METRIC_COLUMNS) + "\n")
            for frame in iter_metrics(store, selection):
                frame.to_csv(f, index=False, header=False)

    return [runs, _atomic(out / "metrics.csv", metrics)]


def _write_parquet(store: Store, selection: Selection, out: Path) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(runs_table(store, selection), preserve_index=False)
    runs = _atomic(out / "runs.parquet", lambda p: pq.write_table(table, p))
    schema = pa.schema([("run_id", pa.int64()), ("step", pa.int64()), ("name", pa.string()),
                        ("value", pa.float64())])

    def metrics(path: Path) -> None:
        with pq.ParquetWriter(path, schema) as writer:
            for frame in iter_metrics(store, selection):
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))

    return [runs, _atomic(out / "metrics.parquet", metrics)]


def run_dir_name(run_id: int, label: str | None) -> str:
    """The TensorBoard run name of a training run: its id (unique), then its label made file-safe,
    e.g. ``12-small_init_gamma_2_seed_0``."""
    tail = re.sub(r"[^A-Za-z0-9.=-]+", "_", label or "").strip("._-")[:80]
    return f"{run_id}-{tail}" if tail else str(run_id)


def _tensorboard(store: Store, selection: Selection, out: Path) -> list[Path]:
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    first: dict[int, Member] = {}
    for m in selection.members:
        first.setdefault(m.run_id, m)
    dirs = {run_id: out / run_dir_name(run_id, m.label) for run_id, m in first.items()}
    stale = [d for d in dirs.values() if d.is_dir() and any(d.glob("events.out.tfevents.*"))]
    if stale:
        raise ExportError(f"{stale[0]} already holds TensorBoard event files (an earlier export?); "
                          "remove it or give another --out")
    points = {run_id: [m for m in selection.members if m.run_id == run_id] for run_id in first}
    written = []
    frames = iter_metrics(store, selection)
    for run_id, frame in zip(selection.run_ids, frames):
        run = store.get_run(run_id)
        member = first[run_id]
        hp: dict[str, Any] = {f"config.{k}": v for k, v in flatten_config(run.get("config") or {}).items()}
        if len(points[run_id]) == 1:  # a run shared by several sweep points has no single axis value
            hp.update({f"axis.{k}": _cell(v) for k, v in member.values.items()})
        hp.update({"run_id": run_id, "experiment_run_id": member.experiment_id, "status": run["status"]})
        try:
            writer = SummaryWriter(logdir=str(dirs[run_id]))
        except OSError as exc:
            raise ExportError(f"cannot write into {dirs[run_id]}: {exc.strerror or exc}") from None
        with writer:
            for step, name, value in zip(frame["step"].tolist(), frame["name"].tolist(), frame["value"].tolist()):
                writer.add_scalar(name, value, step)
            for summary in hparams({k: _hparam(v) for k, v in hp.items()},
                                   {name: 0.0 for name in dict.fromkeys(frame["name"].tolist())}):
                writer.file_writer.add_summary(summary)
            writer.add_text("config", "```\n" + json.dumps(run.get("config"), indent=2, sort_keys=True) + "\n```")
        written.append(dirs[run_id])
    return written


def _hparam(value: Any) -> Any:
    """An hparam value TensorBoard can show: numbers, booleans and text; None as 'null'."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
