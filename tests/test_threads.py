"""Thread policy: one thread by default, PHENOLAB_THREADS and --threads override, bad values are errors."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info
from typer.testing import CliRunner

from phenolab.cli import app
from phenolab.config import ConfigError
from phenolab.threads import default_threads, set_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    set_threads(before)


def test_default_is_one_and_env_overrides(monkeypatch):
    monkeypatch.delenv("PHENOLAB_THREADS", raising=False)
    assert default_threads() == 1
    monkeypatch.setenv("PHENOLAB_THREADS", "3")
    assert default_threads() == 3
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("PHENOLAB_THREADS", bad)
        with pytest.raises(ConfigError, match=f"PHENOLAB_THREADS: must be a positive integer.*got '{bad}'"):
            default_threads()


def test_set_threads_sets_torch_and_blas(restore_threads):
    set_threads(2)
    assert torch.get_num_threads() == 2
    set_threads(1)
    assert torch.get_num_threads() == 1
    assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="threads: must be a positive integer"):
            set_threads(bad)


def test_cli_sets_threads_before_the_command(monkeypatch, restore_threads):
    monkeypatch.delenv("PHENOLAB_THREADS", raising=False)
    runner = CliRunner()
    torch.set_num_threads(2)
    assert runner.invoke(app, ["list"]).exit_code == 0
    assert torch.get_num_threads() == 1
    assert runner.invoke(app, ["--threads", "2", "list"]).exit_code == 0
    assert torch.get_num_threads() == 2
    result = runner.invoke(app, ["--threads", "0", "list"])
    assert result.exit_code == 2 and "--threads" in result.output
