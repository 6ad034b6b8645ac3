"""Fixtures of the store tests."""

from __future__ import annotations

import pytest

from phenolab.store import Store

from fake_store import write_fake_sweep


@pytest.fixture
def fake_sweep(tmp_path):
    """(store path, ids) of a store holding `write_fake_sweep`'s runs."""
    path = tmp_path / "store" / "phenolab.sqlite"
    with Store(path) as st:
        ids = write_fake_sweep(st)
    return path, ids
