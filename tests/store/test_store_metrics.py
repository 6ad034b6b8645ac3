"""Metric series: round trip, replace on re-log, atomicity of a call, wide pivot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from phenolab.store import Store, StoreError, load_metrics


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as st:
        yield st


def _run(st: Store) -> int:
    return st.create_run(kind="train", name="mlp", config={}, config_hash="h")


def test_metrics_round_trip_sorted_by_name_then_step(store: Store) -> None:
    run = _run(store)
    store.log_metrics(run, [(2, "loss", 0.5), (0, "loss", 2.0), (1, "acc", 0.75), (1, "loss", 1.0)])
    long = store.metrics(run)
    assert list(long.columns) == ["step", "name", "value"]
    assert list(long["name"]) == ["acc", "loss", "loss", "loss"]
    assert list(long["step"]) == [1, 0, 1, 2]
    assert list(long["value"]) == [0.75, 2.0, 1.0, 0.5]
    assert long["step"].dtype == np.int64 and long["value"].dtype == np.float64
    assert list(store.metrics(run, names=["acc"])["value"]) == [0.75]


def test_relogging_replaces_and_numpy_and_nan_values(store: Store) -> None:
    run = _run(store)
    store.log_metrics(run, [(0, "loss", 1.0), (1, "loss", 0.9)])
    store.log_metrics(run, [(np.int64(1), "loss", np.float32(0.5)), (2, "loss", math.nan), (3, "loss", math.inf)])
    long = store.metrics(run)
    assert list(long["step"]) == [0, 1, 2, 3]
    values = long["value"].to_numpy()
    assert values[0] == 1.0 and values[1] == 0.5 and math.isnan(values[2]) and values[3] == math.inf


def test_bad_row_midway_rolls_back_the_whole_call(store: Store) -> None:
    run = _run(store)
    store.log_metrics(run, [(0, "loss", 1.0)])

    def rows():
        yield (1, "loss", 0.5)
        yield (2, "loss", 0.25)
        yield (3, "loss", "not a number")
        yield (4, "loss", 0.1)

    with pytest.raises(ValueError, match="metric row 2"):
        store.log_metrics(run, rows())
    with pytest.raises(ValueError, match="metric row 1"):
        store.log_metrics(run, [(5, "loss", 1.0), (6.5, "loss", 1.0)])
    assert list(store.metrics(run)["step"]) == [0]
    store.log_metrics(run, [(1, "loss", 0.5)])  # the store is usable afterwards
    assert list(store.metrics(run)["step"]) == [0, 1]


def test_metrics_of_unknown_run(store: Store) -> None:
    with pytest.raises(StoreError, match="no run 7"):
        store.log_metrics(7, [(0, "loss", 1.0)])
    with pytest.raises(StoreError, match="no run 7"):
        store.metrics(7)


def test_load_metrics_wide_and_long(store: Store) -> None:
    run = _run(store)
    store.log_metrics(run, [(0, "loss", 1.0), (10, "loss", 0.5), (10, "acc", 0.8), (20, "loss", 0.25)])
    store.log_metrics(_run(store), [(0, "loss", 99.0)])  # another run must not leak in
    wide = load_metrics(run, store)
    assert wide.index.name == "step" and list(wide.index) == [0, 10, 20]
    assert list(wide.columns) == ["acc", "loss"]
    assert list(wide["loss"]) == [1.0, 0.5, 0.25]
    assert wide.loc[10, "acc"] == 0.8 and math.isnan(wide.loc[0, "acc"])
    long = load_metrics(run, store.path, wide=False)
    assert len(long) == 4 and list(long.columns) == ["step", "name", "value"]
    empty = load_metrics(_run(store), store)
    assert empty.empty and empty.index.name == "step"
