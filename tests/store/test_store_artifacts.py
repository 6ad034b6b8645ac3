"""Arrays, figures and files beside the database: exact round trip, checksums, replacement."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from phenolab.store import Store, StoreError  # noqa: E402


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as st:
        yield st


def _run(st: Store) -> int:
    return st.create_run(kind="train", name="mlp", config={}, config_hash="h")


def test_artifact_round_trip_is_exact(store: Store) -> None:
    run = _run(store)
    rng = np.random.default_rng(0)
    arrays = {
        "ntk": rng.standard_normal((5, 5)).astype(np.float32),
        "steps": np.arange(7, dtype=np.int64),
        "flags": np.array([True, False]),
        "nan": np.array([np.nan, np.inf, -0.0]),
        "file": np.zeros((0, 3)),  # a name np.savez(**kw) could not take
    }
    path = store.save_artifact(run, "ntk", arrays)
    assert path == store.root / "artifacts" / str(run) / "ntk.npz" and path.is_file()
    back = store.load_artifact(run, "ntk")
    assert list(back) == list(arrays)
    for key, array in arrays.items():
        assert back[key].dtype == array.dtype and back[key].shape == array.shape
        assert back[key].tobytes() == array.tobytes()
    (row,) = store.artifacts(run)
    assert row["name"] == "ntk" and row["kind"] == "arrays" and row["path"] == f"artifacts/{run}/ntk.npz"
    assert row["arrays"]["ntk"] == {"shape": [5, 5], "dtype": "float32"}
    assert len(row["sha256"]) == 64 and row["size_bytes"] == path.stat().st_size


def test_tampered_artifact_fails_checksum(store: Store) -> None:
    run = _run(store)
    path = store.save_artifact(run, "w", {"w": np.ones(100)})
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum mismatch") as info:
        store.load_artifact(run, "w")
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    path.unlink()
    with pytest.raises(StoreError, match="missing"):
        store.load_artifact(run, "w")
    with pytest.raises(StoreError, match="no artifact 'nope'"):
        store.load_artifact(run, "nope")


def test_saving_again_replaces_and_unsafe_names_stay_apart(store: Store) -> None:
    run = _run(store)
    store.save_artifact(run, "w", {"a": np.zeros(3)})
    store.save_artifact(run, "w", {"b": np.ones(2)})
    assert list(store.load_artifact(run, "w")) == ["b"]
    assert [a["name"] for a in store.artifacts(run)] == ["w"]
    p1 = store.save_artifact(run, "probe/a b", {"x": np.zeros(1)})
    p2 = store.save_artifact(run, "probe_a_b", {"x": np.ones(1)})
    p3 = store.save_artifact(run, "../escape", {"x": np.full(1, 2.0)})
    assert len({p1, p2, p3}) == 3
    assert all(p.parent == store.root / "artifacts" / str(run) for p in (p1, p2, p3))
    assert store.load_artifact(run, "probe/a b")["x"][0] == 0.0
    assert store.load_artifact(run, "../escape")["x"][0] == 2.0
    assert not list(p1.parent.glob("*.tmp"))


def test_figure_and_text_files(store: Store) -> None:
    run = _run(store)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    png = store.save_figure(run, "loss curve", fig)
    plt.close(fig)
    assert png.parent == store.run_dir(run) == store.root / "runs" / str(run)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = store.save_text(run, "report.html", "<p>hé</p>")
    assert html == store.root / "runs" / str(run) / "report.html"
    assert html.read_text(encoding="utf-8") == "<p>hé</p>"
    kinds = {a["name"]: a["kind"] for a in store.artifacts(run)}
    assert kinds == {"loss curve": "figure", "report.html": "file"}
    page = store.save_page("index.html", "<p>all</p>")
    assert page == store.root / "index.html" and page.read_text() == "<p>all</p>"


def test_object_arrays_and_unknown_runs_are_refused(store: Store) -> None:
    run = _run(store)
    with pytest.raises(ValueError, match="object"):
        store.save_artifact(run, "o", {"o": np.array([{}, 1], dtype=object)})
    with pytest.raises(StoreError, match="no run 42"):
        store.save_artifact(42, "x", {"x": np.zeros(1)})
    assert not (store.root / "artifacts" / "42").exists()


def test_failed_write_leaves_no_file_and_no_row(store: Store) -> None:
    run = _run(store)

    class Broken:
        def savefig(self, f, **kw):
            f.write(b"half a png")
            raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError, match="renderer died"):
        store.save_figure(run, "broken", Broken())
    assert store.artifacts(run) == []
    assert list((store.root / "runs" / str(run)).iterdir()) == []
