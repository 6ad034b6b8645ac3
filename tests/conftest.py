"""Shared fixtures."""

import pytest
import torch


@pytest.fixture()
def one_thread():
    """One torch thread for tiny kernels: with two threads they mostly synchronize, and on a busy
    two-core machine they crawl. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
