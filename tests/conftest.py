"""Shared fixtures."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def cli_thread_policy():
    """The suite runs under the command line's policy (`phenolab.threads`): one torch and BLAS
    thread per process, so its times do not collapse when the machine is shared."""
    from phenolab.threads import set_threads

    set_threads(1)


@pytest.fixture()
def one_thread():
    """One torch thread for tiny kernels: with two threads they mostly synchronize, and on a busy
    two-core machine they crawl. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def kill_after_done_runs():
    """A function that starts `cmd`, waits until the store holds `n` finished training runs (or
    `timeout` seconds pass), SIGKILLs the process and returns those runs."""
    import signal
    import subprocess
    import time

    from phenolab.store import Store, StoreError

    def run(cmd: list[str], store, n: int, timeout: float) -> list[dict]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline, done = time.monotonic() + timeout, []
        while time.monotonic() < deadline and len(done) < n:
            time.sleep(0.2)
            try:  # the other process may not have written the schema yet
                with Store(store, readonly=True) as st:
                    done = [r for r in st.list_runs(kind="train") if r["status"] == "done"]
            except StoreError:
                continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return done

    return run
