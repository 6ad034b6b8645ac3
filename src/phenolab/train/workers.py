"""One ensemble split over worker processes, and the fingerprint of a task's data.

Workers cannot write the store: each member gets a `BufferRecorder` in its worker, and the
caller's process replays it into the member's recorder afterwards, member by member in order.
`train_in_workers`: `train_ensemble(..., workers=n)` splits one ensemble's members over joblib's
reusable loky executor (cloudpickle, so tasks with closures as targets travel too); its processes
stay up for the next call. (One whole group per job of an executor is `phenolab.execution.jobs`.)
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import nn

from phenolab.config import RunSpec
from phenolab.tasks.base import Task
from phenolab.train.ensemble_loop import (
    AnyRecorder,
    EnsembleProgress,
    MemberResult,
    PathName,
    initial_models,
    train_members,
)
from phenolab.train.recorder import BufferRecorder


def split(count: int, parts: int) -> list[range]:
    """`count` items in at most `parts` contiguous, nearly equal ranges."""
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    ranges, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        ranges.append(range(start, stop))
        start = stop
    return ranges


def _work(task: Task, specs: list[RunSpec], models: list[nn.Module], recording: list[bool],
          path: PathName) -> tuple[list[MemberResult], list[BufferRecorder | None]]:
    """One worker's share: train its members in one thread, buffering their records."""
    torch.set_num_threads(1)  # this worker's process only; more threads than cores is ruinous here
    buffers: list[BufferRecorder | None] = [BufferRecorder() if on else None for on in recording]
    results = train_members(task, specs, list(buffers), None, path, models)
    return results, buffers


def train_in_workers(task: Task, specs: Sequence[RunSpec], recorders: Sequence[AnyRecorder | None],
                     progress: EnsembleProgress | None, workers: int, path: PathName) -> list[MemberResult]:
    """`train_ensemble` over `workers` processes; records replayed into `recorders` in spec order."""
    from joblib import Parallel, delayed

    chunks = split(len(specs), workers)
    models = initial_models(task, specs)  # built here: a fresh worker pays torch's first-use costs once less
    jobs = [
        delayed(_work)(task, [specs[i] for i in chunk], [models[i] for i in chunk],
                       [recorders[i] is not None for i in chunk], path)
        for chunk in chunks
    ]
    outputs = Parallel(n_jobs=len(chunks), backend="loky")(jobs)
    results: list[MemberResult] = []
    for chunk, (chunk_results, buffers) in zip(chunks, outputs):
        for i, result, buffer in zip(chunk, chunk_results, buffers):
            recorder = recorders[i]
            if recorder is not None and buffer is not None:
                buffer.replay(recorder)
            results.append(result)
    if progress is not None:
        steps = specs[0].train.steps
        progress(steps, steps)
    return results


def data_fingerprint(task: Task) -> str:
    """SHA-256 of the task's tensors: runs whose data are identical (a fixed grid under
    different seeds) may share an ensemble."""
    digest = hashlib.sha256()
    for tensor in (task.x_train, task.y_train, task.x_test, task.y_test):
        if tensor is None:
            digest.update(b"none")
            continue
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
