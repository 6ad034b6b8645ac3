"""The inline reference run of the tiny sweep, shared by the local and Ray executor tests."""

import pytest
from tiny_sweeps import tiny_sweep

from phenolab.execution.executors import InlineExecutor
from phenolab.store import Store
from phenolab.sweep.run import run_sweep


@pytest.fixture(scope="session")
def inline_store(tmp_path_factory):
    """The tiny sweep trained inline (one thread, the suite's policy): the reference run by run."""
    path = tmp_path_factory.mktemp("inline") / "s.sqlite"
    with Store(path) as st, InlineExecutor() as ex:
        run_sweep(tiny_sweep(), store=st, executor=ex)
    return path
