"""The Recorder logs scalars and probes from a training loop phenolab did not write."""

import numpy as np
import pytest
import torch
from torch import nn

import phenolab
from phenolab.store import Store


def test_users_own_loop_is_recorded(tmp_path):
    path = tmp_path / "runs.sqlite"
    x = torch.linspace(-3, 3, 64)[:, None]
    y = torch.sin(x) + 0.5 * torch.sin(4 * x)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with phenolab.Recorder(path, "my-mlp", config={"lr": 1e-2, "width": 64}) as rec:
        for step in range(60):
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            rec.record(step, loss=loss)  # a tensor is fine
            if step % 20 == 0:
                rec.probe(step, model, (x, y), probes=["frequency", "loss"])
    runs = phenolab.load_runs(path)
    assert list(runs["name"]) == ["my-mlp"] and list(runs["status"]) == ["done"]
    wide = phenolab.load_metrics(rec.run_id, path)
    assert len(wide["loss"].dropna()) == 60
    assert wide["loss"].iloc[-1] < wide["loss"].iloc[0]
    assert list(wide["frequency/rel_err_0"].dropna().index) == [0, 20, 40]
    # the probe at step k ran after the update of step k: the loop's loss at step k + 1 saw the same weights
    assert wide["loss/train"].loc[40] == pytest.approx(wide["loss"].loc[41], rel=1e-5)
    with Store(path) as st:
        art = st.load_artifact(rec.run_id, "frequency/rel_err")
        assert list(art["steps"]) == [0, 20, 40] and np.all(art["values"] >= 0)
        assert st.get_run(rec.run_id)["config"] == {"lr": 1e-2, "width": 64}


def test_exception_in_the_loop_marks_the_run_failed(tmp_path):
    path = tmp_path / "runs.sqlite"
    with pytest.raises(RuntimeError):
        with phenolab.Recorder(path, "crashy") as rec:
            rec.record(0, loss=1.0)
            raise RuntimeError("boom")
    run = phenolab.load_runs(path).iloc[0]
    assert run["status"] == "failed" and "boom" in run["error"]
    assert phenolab.load_metrics(rec.run_id, path)["loss"].tolist() == [1.0]
