"""Export (phenolab.export): Parquet and CSV tables that round-trip through pandas with the store's
values, TensorBoard event files that read back with the right scalars, and the store left as it was."""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest

from phenolab.export import ExportError, check_format, export, select
from phenolab.store import Store, StoreError

from fake_store import SWEEP_ID, train_config, write_fake_sweep


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the store's folder (SQLite's -wal/-shm companions of a reader left out)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_tables_round_trip_through_pandas_with_the_store_values(fake_sweep, tmp_path: Path, fmt: str) -> None:
    path, ids = fake_sweep
    before = snapshot(path.parent)
    with Store(path, readonly=True) as st:
        written = export(st, SWEEP_ID, fmt, tmp_path / "out")
        assert [p.name for p in written] == [f"runs.{fmt}", f"metrics.{fmt}"]
        runs = read(tmp_path / "out" / f"runs.{fmt}")
        metrics = read(tmp_path / "out" / f"metrics.{fmt}")
        exp0, exp1 = ids["experiments"]
        t, ref = ids["train"], ids["reference"]
        # one row per training run per point: the reference run serves both points
        assert list(zip(runs["point"], runs["run_id"])) == [
            (0, ref), (0, t[(100, 0)]), (0, t[(100, 1)]), (1, ref), (1, t[(200, 0)]), (1, t[(200, 1)])]
        assert list(runs["experiment_run_id"]) == [exp0] * 3 + [exp1] * 3
        assert list(runs["axis.model.width"]) == [100] * 3 + [200] * 3
        assert list(runs["verdict.passed"]) == [False] * 3 + [True] * 3
        assert list(runs["check.ratio"]) == [2.0] * 3 + [4.0] * 3
        assert runs["check.gap"].isna().all()
        assert list(runs["label"]) == ["reference", "seed=0", "seed=1"] * 2
        assert set(runs["sweep_id"]) == {SWEEP_ID}
        summaries = st.summaries(runs["run_id"])
        for row in runs.to_dict("records"):
            run = st.get_run(row["run_id"])
            assert row["status"] == run["status"] and row["config_hash"] == run["config_hash"]
            assert row["duration_s"] == pytest.approx(run["duration_s"])
            for name, value in summaries[row["run_id"]]["final"].items():
                assert same(row[f"final.{name}"], value) or row[f"final.{name}"] == pytest.approx(value)
            config = run["config"]
            assert row["config.model.width"] == config["model"]["width"]
            assert row["config.train.lr"] == pytest.approx(config["train"]["lr"])
            assert row["config.model.init.std"] == "[0.1,0.1]"
            assert row["config.probes.0.name"] == "loss" and bool(row["config.model.bias"]) is True
            assert pd.isna(row["config.model.depth"])
        assert math.isnan(runs.loc[runs["run_id"] == t[(200, 1)], "final.loss"].iloc[0])
        # the metrics table: each training run once, every (step, name, value) of the store
        expected = pd.concat([st.metrics(r).assign(run_id=r) for r in dict.fromkeys(runs["run_id"])])
        assert len(metrics) == len(expected) and list(metrics.columns) == ["run_id", "step", "name", "value"]
        got = metrics.sort_values(["run_id", "name", "step"]).reset_index(drop=True)
        want = (expected[["run_id", "step", "name", "value"]].sort_values(["run_id", "name", "step"])
                .reset_index(drop=True))
        assert list(got["run_id"]) == list(want["run_id"]) and list(got["step"]) == list(want["step"])
        assert list(got["name"]) == list(want["name"])
        assert all(same(a, b) for a, b in zip(got["value"], want["value"]))
    assert snapshot(path.parent) == before


def tfrecords(path: Path):
    """The events of a TensorBoard event file, checking each record's masked CRC-32C."""
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    data = path.read_bytes()
    i = 0
    while i < len(data):
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8:i + 12])[0] == masked_crc32c(header)
        body = data[i + 12:i + 12 + length]
        assert struct.unpack("<I", data[i + 12 + length:i + 16 + length])[0] == masked_crc32c(body)
        yield event_pb2.Event.FromString(body)
        i += 16 + length


def test_tensorboard_event_files_read_back_with_the_right_scalars(fake_sweep, tmp_path: Path) -> None:
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    path, ids = fake_sweep
    out = tmp_path / "tb"
    with Store(path, readonly=True) as st:
        dirs = export(st, SWEEP_ID, "tensorboard", out)
        run_ids = [ids["reference"], *ids["train"].values()]
        assert sorted(int(d.name.split("-")[0]) for d in dirs) == sorted(run_ids)
        assert (out / f"{ids['train'][(100, 0)]}-seed=0").is_dir()
        for d in dirs:
            run_id = int(d.name.split("-")[0])
            (events_file,) = d.glob("events.out.tfevents.*")
            scalars: dict[str, list[tuple[int, float]]] = {}
            hparams, text = {}, None
            for event in tfrecords(events_file):
                for value in event.summary.value:
                    if value.tag == "_hparams_/session_start_info":
                        data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                        hparams = dict(data.session_start_info.hparams)
                    elif value.tag.startswith("config"):
                        text = value.tensor.string_val[0].decode()
                    elif not value.tag.startswith("_hparams_"):
                        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
            metrics = st.metrics(run_id)
            assert set(scalars) == set(metrics["name"])
            for name, group in metrics.groupby("name"):
                got = sorted(scalars[name])
                assert [s for s, _ in got] == list(group["step"])
                assert all(same(a, b) or a == pytest.approx(b, rel=1e-6) for (_, a), b in zip(got, group["value"]))
            config = st.get_run(run_id)["config"]
            assert hparams["config.model.width"].number_value == config["model"]["width"]
            assert hparams["config.model.activation"].string_value == "relu"
            assert hparams["config.model.bias"].bool_value is True
            assert hparams["run_id"].number_value == run_id
            if run_id == ids["reference"]:  # shared by both points: no single axis value
                assert "axis.model.width" not in hparams
            else:
                assert hparams["axis.model.width"].number_value == config["model"]["width"]
            assert text is not None and '"width"' in text
        with pytest.raises(ExportError, match="already holds TensorBoard event files"):
            export(st, SWEEP_ID, "tensorboard", out)


def test_unfinished_sweep_experiment_and_single_run_targets(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        ids = write_fake_sweep(st, finish_sweep=False)
        mine = st.create_run(kind="recorder", name="mine", config={"lr": 0.1}, config_hash="m")
        st.log_metrics(mine, [(0, "loss", 1.0)])
        exp0, exp1 = ids["experiments"]
        sweep = select(st, SWEEP_ID)  # no finished sweep record: points found from its experiment runs
        assert [(m.point, m.experiment_id, m.values) for m in sweep.members] == [
            (0, exp0, {"model.width": 100})] * 3 + [(1, exp1, {"model.width": 200})] * 3
        assert select(st, str(ids["sweep"])).members == sweep.members
        experiment = select(st, str(exp1))
        assert experiment.kind == "experiment" and [m.label for m in experiment.members] == [
            "reference", "seed=0", "seed=1"]
        single = select(st, str(ids["train"][(200, 1)]))
        assert single.axes == ["model.width"] and single.members[0].values == {"model.width": 200}
        assert single.members[0].experiment_id == exp1 and single.members[0].label == "seed=1"
        assert single.members[0].point == 1 and {m.point for m in experiment.members} == {1}
        export(st, str(mine), "csv", tmp_path / "mine")  # a run of a user's own loop, still running
        runs = pd.read_csv(tmp_path / "mine" / "runs.csv")
        assert list(runs["run_id"]) == [mine] and runs["status"][0] == "running" and runs["config.lr"][0] == 0.1
        assert not any(c.startswith("final.") for c in runs.columns)  # no final values while running
        with pytest.raises(StoreError, match=f"no sweep or run 'nope' in .*sweeps: {SWEEP_ID}"):
            select(st, "nope")
        with pytest.raises(StoreError, match="no run 999"):
            select(st, "999")


def test_a_config_field_of_mixed_types_is_written_as_text(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        exp = st.create_run(kind="experiment", name="e", config={}, config_hash="e")
        for i, value in enumerate([1, "relu", None, 2.5]):
            run = st.create_run(kind="train", name="e", config={**train_config(10, i), "x": value},
                                config_hash=str(i), parent_id=exp, label=str(i))
            st.finish_run(run, "done")
        st.finish_run(exp, "done")
        export(st, str(exp), "parquet", tmp_path / "out")
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert list(runs["config.x"].fillna("<none>")) == ["1", "relu", "<none>", "2.5"]


@pytest.mark.parametrize("fmt,module", [("parquet", "pyarrow"), ("tensorboard", "tensorboardX")])
def test_a_missing_optional_package_names_the_extra(monkeypatch, fmt: str, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ExportError) as info:
        check_format(fmt)
    assert module in str(info.value) and "pip install 'phenolab[export]'" in str(info.value)
    check_format("csv")  # needs nothing beyond pandas
    with pytest.raises(ExportError, match="must be one of parquet, csv, tensorboard, got 'xls'"):
        check_format("xls")
