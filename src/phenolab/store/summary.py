"""The per-run summary tables (schema 2): flattened config fields, and what a finished run ended with.

- ``run_config (run_id, key, value)``: every scalar config field under its dotted path
  (``model.width``), written when the run is created. `value` has no type affinity, so 100 stays
  an INTEGER, 1.5 a REAL and 'relu' TEXT, and SQLite compares numbers numerically (100 = 100.0)
  and never equals a number to a string. The index on (key, value) serves ``field = value`` for
  any field, which is why this is a long table rather than JSON with per-path expression indexes
  (the fields differ between experiments and are not known when the schema is made).
- ``run_summary``: one row per finished run (id, kind, name, the experiment it belongs to, sweep
  id, status, passed, config hash, finish time), written by `finish_run` and when a dead run is
  marked interrupted.
- ``run_final_metrics (run_id, name, step, value)``: each metric series' value at its last step.
- ``run_checks (run_id, name, position, measured, op, threshold, passed)``: an experiment verdict's checks.

The same SQL writes one run's summary and back-fills a whole store created before schema 2.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from phenolab.store.encoding import from_json

SUMMARY_TABLES = ("run_config", "run_summary", "run_final_metrics", "run_checks")


def summary_ddl(schema: str = "main", references: bool = True) -> tuple[str, ...]:
    """CREATE statements for the summary tables in `schema` ('main', or 'temp' for a read-only
    view of an older store; temporary tables cannot reference tables of another schema)."""
    ref = (lambda table: f" REFERENCES {table} ON DELETE CASCADE") if references else (lambda table: "")
    return (
        f"""CREATE TABLE IF NOT EXISTS {schema}.run_config (
            run_id INTEGER NOT NULL{ref("runs(id)")},
            key    TEXT NOT NULL,
            value,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        f"CREATE INDEX IF NOT EXISTS {schema}.run_config_by_key_value ON run_config (key, value)",
        f"""CREATE TABLE IF NOT EXISTS {schema}.run_summary (
            run_id        INTEGER PRIMARY KEY{ref("runs(id)")},
            kind          TEXT NOT NULL,
            name          TEXT NOT NULL,
            experiment    TEXT,
            experiment_id INTEGER,
            sweep_id      TEXT,
            status        TEXT NOT NULL,
            passed        INTEGER,
            config_hash   TEXT NOT NULL,
            finished      TEXT,
            duration_s    REAL
        )""",
        f"CREATE INDEX IF NOT EXISTS {schema}.run_summary_by_sweep ON run_summary (sweep_id)",
        f"CREATE INDEX IF NOT EXISTS {schema}.run_summary_by_experiment ON run_summary (experiment_id)",
        f"""CREATE TABLE IF NOT EXISTS {schema}.run_final_metrics (
            run_id INTEGER NOT NULL{ref("run_summary(run_id)")},
            name   TEXT NOT NULL,
            step   INTEGER NOT NULL,
            value  REAL,
            PRIMARY KEY (run_id, name)
        ) WITHOUT ROWID""",
        f"CREATE INDEX IF NOT EXISTS {schema}.run_final_metrics_by_name ON run_final_metrics (name, value)",
        f"""CREATE TABLE IF NOT EXISTS {schema}.run_checks (
            run_id    INTEGER NOT NULL{ref("run_summary(run_id)")},
            name      TEXT NOT NULL,
            position  INTEGER NOT NULL,
            measured  REAL,
            op        TEXT,
            threshold REAL,
            passed    INTEGER,
            PRIMARY KEY (run_id, name)
        ) WITHOUT ROWID""",
    )


# ------------------------------------------------------------------------------ config fields
def flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Scalar config fields by dotted path: ``{"model": {"width": 100}}`` -> ``{"model.width": 100}``.

    A list of scalars is one field holding its compact JSON text (``"[0.01,0.01]"``, integral
    floats written as integers); a list holding dicts or lists is walked with indexes
    (``probes.0.name``). Empty dicts have no fields.
    """
    fields: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (list, tuple)):
            if any(isinstance(v, (Mapping, list, tuple)) for v in value):
                for i, item in enumerate(value):
                    walk(f"{prefix}.{i}", item)
            else:
                fields[prefix] = list_text(value)
        else:
            fields[prefix] = _scalar(value)

    walk("", config)
    return fields


def list_text(values: Iterable[Any]) -> str:
    """The text a list of scalars is stored (and compared) as: compact JSON, 1.0 written as 1."""
    return json.dumps([_integral(_scalar(v)) for v in values], separators=(",", ":"))


def _integral(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return str(value)


def insert_config(conn: sqlite3.Connection, run_id: int, config: Mapping[str, Any], schema: str = "main") -> None:
    """Write the run's flattened config fields (inside the caller's transaction)."""
    conn.executemany(
        f"INSERT OR REPLACE INTO {schema}.run_config (run_id, key, value) VALUES (?, ?, ?)",
        [(run_id, key, _sql_value(value)) for key, value in flatten_config(config).items()],
    )


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


# ------------------------------------------------------------------------------ the summary
def _summary_select(where: str) -> str:
    """SELECT of run_summary rows for the finished runs `r` matching `where`.

    The experiment a run belongs to: its parent's name and id when it has a parent (a training run
    of an experiment), itself when it is an experiment run, its own name for a sweep. The sweep id
    is the run's own, else its parent's (training runs of a sweep's experiment runs).
    """
    return (
        "SELECT r.id, r.kind, r.name, "
        "CASE WHEN p.id IS NOT NULL THEN p.name WHEN r.kind IN ('experiment', 'sweep') THEN r.name END, "
        "CASE WHEN p.id IS NOT NULL THEN p.id WHEN r.kind = 'experiment' THEN r.id END, "
        "COALESCE(r.sweep_id, p.sweep_id), r.status, r.passed, r.config_hash, r.finished, r.duration_s "
        "FROM main.runs r LEFT JOIN main.runs p ON p.id = r.parent_id "
        f"WHERE r.status != 'running' AND {where}"
    )


_SUMMARY_COLUMNS = ("run_id, kind, name, experiment, experiment_id, sweep_id, status, passed, config_hash, "
                    "finished, duration_s")


def write_summary(conn: sqlite3.Connection, run_id: int) -> None:
    """(Re)write the summary of one finished run (inside the caller's transaction)."""
    for table in ("run_final_metrics", "run_checks"):
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    conn.execute(f"INSERT OR REPLACE INTO run_summary ({_SUMMARY_COLUMNS}) {_summary_select('r.id = ?')}", (run_id,))
    if conn.execute("SELECT 1 FROM run_summary WHERE run_id = ?", (run_id,)).fetchone() is None:
        return  # still running: nothing to summarize
    # a bare column beside max() takes its value from the row with the largest step
    conn.execute("INSERT INTO run_final_metrics (run_id, name, step, value) "
                 "SELECT run_id, name, MAX(step), value FROM main.metrics WHERE run_id = ? GROUP BY name", (run_id,))
    verdict = conn.execute("SELECT verdict FROM main.runs WHERE id = ?", (run_id,)).fetchone()[0]
    _insert_checks(conn, "main", [(run_id, verdict)])


def refresh_final_metrics(conn: sqlite3.Connection, run_id: int) -> None:
    """After metrics were logged to a run that already has a summary: its final values again."""
    if conn.execute("SELECT 1 FROM run_summary WHERE run_id = ?", (run_id,)).fetchone() is None:
        return
    conn.execute("DELETE FROM run_final_metrics WHERE run_id = ?", (run_id,))
    conn.execute("INSERT INTO run_final_metrics (run_id, name, step, value) "
                 "SELECT run_id, name, MAX(step), value FROM main.metrics WHERE run_id = ? GROUP BY name", (run_id,))


def backfill(conn: sqlite3.Connection, schema: str = "main") -> None:
    """Fill the (empty) summary tables of `schema` from every run already in the store."""
    # rows in primary-key order, and the (key, value) index built once at the end: several times
    # faster than keeping the index up to date row by row
    index = next(s for s in summary_ddl(schema) if "run_config_by_key_value" in s)
    conn.execute(f"DROP INDEX IF EXISTS {schema}.run_config_by_key_value")
    for (run_id, config) in conn.execute("SELECT id, config FROM main.runs ORDER BY id").fetchall():
        parsed = from_json(config)
        fields = flatten_config(parsed if isinstance(parsed, Mapping) else {})
        conn.executemany(f"INSERT OR REPLACE INTO {schema}.run_config (run_id, key, value) VALUES (?, ?, ?)",
                         [(run_id, key, _sql_value(fields[key])) for key in sorted(fields)])
    conn.execute(index)
    conn.execute(f"INSERT OR REPLACE INTO {schema}.run_summary ({_SUMMARY_COLUMNS}) {_summary_select('1')}")
    conn.execute(f"INSERT OR REPLACE INTO {schema}.run_final_metrics (run_id, name, step, value) "
                 f"SELECT m.run_id, m.name, MAX(m.step), m.value FROM main.metrics m "
                 f"WHERE m.run_id IN (SELECT run_id FROM {schema}.run_summary) GROUP BY m.run_id, m.name")
    rows = conn.execute(f"SELECT r.id, r.verdict FROM main.runs r JOIN {schema}.run_summary s ON s.run_id = r.id "
                        "WHERE r.verdict IS NOT NULL").fetchall()
    _insert_checks(conn, schema, [(r[0], r[1]) for r in rows])


def _insert_checks(conn: sqlite3.Connection, schema: str, verdicts: list[tuple[int, str | None]]) -> None:
    rows = []
    for run_id, text in verdicts:
        verdict = from_json(text)
        checks = verdict.get("checks") if isinstance(verdict, Mapping) else None
        for position, check in enumerate(checks if isinstance(checks, list) else []):
            if isinstance(check, Mapping) and isinstance(check.get("name"), str):
                passed = check.get("passed")
                rows.append((run_id, check["name"], position, _number(check.get("measured")), _text(check.get("op")),
                             _number(check.get("threshold")), None if passed is None else int(bool(passed))))
    conn.executemany(f"INSERT OR REPLACE INTO {schema}.run_checks "
                     "(run_id, name, position, measured, op, threshold, passed) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# ------------------------------------------------------------------------------ filters
def parse_where(item: str) -> tuple[str, Any]:
    """``"model.width=100"`` -> ``("model.width", 100)``; the value is read as on the command line
    (a YAML scalar or flow list: ``100``, ``1e-3``, ``true``, ``null``, ``[1, 2]``, ``relu``,
    ``'100'`` for the string). ValueError for anything not PATH=VALUE."""
    from phenolab.config import parse_value

    if not isinstance(item, str):
        raise ValueError(f"expected PATH=VALUE (e.g. model.width=100), got {item!r}")
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")) or not raw.strip():
        raise ValueError(f"expected PATH=VALUE with a dotted config path (e.g. model.width=100), got {item!r}")
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return key, raw[1:-1]  # quoted: a string, even if it looks like a number
    return key, parse_value(raw)


def where_terms(where: Mapping[str, Any] | Iterable[Any] | None) -> list[tuple[str, Any]]:
    """(path, value) pairs from a dict ``{"model.width": 100}`` or ``"PATH=VALUE"`` strings
    (or (path, value) pairs); ValueError naming the bad item."""
    if where is None:
        return []
    if isinstance(where, str):
        where = [where]
    items = list(where.items()) if isinstance(where, Mapping) else list(where)
    terms = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) and item[0]:
            key, value = item
        else:
            key, value = parse_where(item)  # type: ignore[arg-type]
        if isinstance(value, Mapping):
            raise ValueError(f"{key}: compare one field at a time (e.g. {key}.x=1), not a dict")
        terms.append((key, value))
    return terms


# Floats from a range axis (0.1 * 3) may differ from what the user types in the last bits.
REL_TOLERANCE = 1e-9


def where_condition(key: str, value: Any) -> tuple[str, list[Any]]:
    """SQL over run_config selecting the run ids whose field `key` equals `value`:
    numbers numerically (100 matches 100 and 100.0, to a relative 1e-9), booleans as 1/0, None
    as a null field, strings exactly, lists as their JSON text."""
    base = "SELECT run_id FROM run_config WHERE key = ? AND "
    if value is None:
        return base + "value IS NULL", [key]
    if isinstance(value, bool):
        return base + "value = ?", [key, int(value)]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return base + "0", [key]  # NaN is stored as null; inf never comes from JSON configs
        if isinstance(value, int) and abs(value) < 2**53:
            value = float(value)
        if isinstance(value, float):
            slack = abs(value) * REL_TOLERANCE
            return base + "value BETWEEN ? AND ?", [key, value - slack, value + slack]
        return base + "value = ?", [key, value]
    if isinstance(value, (list, tuple)):
        return base + "value = ?", [key, list_text(value)]
    return base + "value = ?", [key, str(value)]
