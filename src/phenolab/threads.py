"""How many threads phenolab's own compute uses: torch's intra-op pool and the BLAS behind numpy.

phenolab's models are small (hundreds to a few thousand units), where a second thread mostly
synchronizes: on a 2-core machine two torch threads were up to 2x slower than one for the NTK and
Hessian kernels, and when the cores are shared with other processes each small torch operation
took ~16 ms with two threads against ~33 us with one (OpenMP threads spin-waiting for a core).
So the command line uses one thread unless told otherwise (``phenolab --threads N`` or
``PHENOLAB_THREADS=N``); a user's own script keeps torch's defaults unless it calls `set_threads`.
Parallelism across runs comes from processes (`train/workers.py`), one thread each.
"""

from __future__ import annotations

import os

from phenolab.config import ConfigError, Problem

ENV = "PHENOLAB_THREADS"


def default_threads() -> int:
    """``$PHENOLAB_THREADS`` if set (a positive integer), else 1."""
    raw = os.environ.get(ENV)
    if raw is None or raw.strip() == "":
        return 1
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError([Problem(ENV, "must be a positive integer (threads per process)", raw)])
    return n


def set_threads(n: int) -> None:
    """Use `n` threads in torch (intra-op) and in the BLAS/OpenMP pools numpy and scipy call."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError([Problem("threads", "must be a positive integer", n)])
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)  # without a `with`, the limit stays for the life of the process
