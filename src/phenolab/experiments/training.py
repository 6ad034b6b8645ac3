"""Train planned runs into the store: reuse finished ones by config hash, batch the rest as ensembles.

A `TrainItem` is one planned training run of an experiment. `train_items` looks each one up by
its config hash (a ``done`` run with that hash is reused unless ``force``), groups the others
whose networks and data match (`phenolab.train.ensemble.ensemble_key`) and trains each group
in one call of the ensemble trainer, or a lone run with the plain loop. Every run is recorded
as a child of its item's parent experiment run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from phenolab.config import RunSpec, config_hash
from phenolab.experiments.base import RunData
from phenolab.models import build_model
from phenolab.store import Store
from phenolab.tasks import Task, make_task
from phenolab.train import Recorder, generator, train
from phenolab.train.seeding import batch_seed
from phenolab.train.ensemble import ensemble_key, fused_applies, train_ensemble

ProgressFn = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class TrainItem:
    """One planned training run: the experiment it belongs to, its label, spec and parent run."""

    experiment: str
    label: str
    spec: RunSpec
    parent_id: int | None = None

    @property
    def config_hash(self) -> str:
        return config_hash(self.spec)


def dtype_of(spec: RunSpec) -> torch.dtype:
    return torch.float64 if spec.train.dtype == "float64" else torch.float32


def build(spec: RunSpec) -> tuple[Task, nn.Module]:
    """The run's task and freshly initialized model (from the run's own random streams)."""
    dtype = dtype_of(spec)
    task = make_task(spec.data, spec.seed, dtype=dtype)
    model = build_model(spec.model, task.input_dim, task.output_dim, generator(spec.seed, "model"), dtype=dtype)
    return task, model


def train_items(items: Sequence[TrainItem], store: Store, *, force: bool = False,
                progress: ProgressFn | None = None) -> list[RunData]:
    """Train (or reuse) every item; returns their `RunData` in the items' order."""
    results: dict[int, RunData] = {}
    todo: list[int] = []
    for i, item in enumerate(items):
        done = None if force else store.find_done("train", item.experiment, item.config_hash)
        if done is not None:
            results[i] = RunData(item.label, done, item.spec, "done", None, store)
        else:
            todo.append(i)
    # identical specs within one call train once
    first_of: dict[tuple[str, str], int] = {}
    unique = []
    for i in todo:
        key = (items[i].experiment, items[i].config_hash)
        if key in first_of:
            continue
        first_of[key] = i
        unique.append(i)
    groups = _groups(items, unique)
    trained = 0
    for group in groups:
        for i, data in zip(group, _train_group([items[i] for i in group], store, progress)):
            results[i] = data
        trained += len(group)
        if progress is not None and len(groups) > 1:  # the overall bar: training runs finished
            progress("training runs", trained, len(unique), float("nan"))
    for i in todo:
        if i not in results:
            src = results[first_of[(items[i].experiment, items[i].config_hash)]]
            results[i] = RunData(items[i].label, src.run_id, items[i].spec, src.status, src.error, store)
    return [results[i] for i in range(len(items))]


def _groups(items: Sequence[TrainItem], indices: list[int]) -> list[list[int]]:
    """Indices grouped by ensemble key (data, architecture, optimizer, schedule), in plan order."""
    groups: dict[tuple, list[int]] = {}
    seen: dict[tuple[str, int, str], tuple[str, Task]] = {}  # (data, seed, dtype) -> fingerprint, task
    for i in indices:
        spec = items[i].spec
        seed = spec.data.seed if spec.data.seed is not None else spec.seed
        where = (config_hash(spec.data), seed, spec.train.dtype)
        if where not in seen:
            task = make_task(spec.data, spec.seed, dtype=dtype_of(spec))
            seen[where] = (data_fingerprint(task), task)
        fingerprint, task = seen[where]
        key = ensemble_key(spec, task.input_dim, task.output_dim, data_key=fingerprint)
        if parameter_count(spec, task.input_dim, task.output_dim) > ENSEMBLE_MAX_PARAMS and not fused_applies(spec, task):
            key = (*key, "alone", i)  # big networks: stacking buys nothing, train one after another
        groups.setdefault(key, []).append(i)
    return list(groups.values())


ENSEMBLE_MAX_PARAMS = 250_000
"""Above this many parameters per network the stacked ensemble path is no faster than the plain loop
(its matmuls are already large), and stacking only costs memory; the fused path has no such limit."""


def parameter_count(spec: RunSpec, input_dim: int, output_dim: int) -> int:
    """Weights and biases of the run's MLP."""
    widths = [input_dim, *spec.model.hidden_widths, output_dim]
    out_bias = spec.model.bias if spec.model.output_bias is None else spec.model.output_bias
    biases = [spec.model.bias] * (len(widths) - 2) + [out_bias]
    return sum((a + int(b)) * c for a, c, b in zip(widths[:-1], widths[1:], biases))



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


def _train_group(group: list[TrainItem], store: Store, progress: ProgressFn | None) -> list[RunData]:
    first = group[0].spec
    task = make_task(first.data, first.seed, dtype=dtype_of(first))
    recorders = [Recorder(store, item.experiment, item.spec, kind="train", parent_id=item.parent_id,
                          label=item.label) for item in group]
    label = group[0].label if len(group) == 1 else f"{len(group)} runs ({group[0].label}, ...)"
    callback = (lambda step, total, loss=float("nan"): progress(label, step, total, loss)) if progress else None
    try:
        if len(group) == 1:
            model = build_model(first.model, task.input_dim, task.output_dim, generator(first.seed, "model"),
                                dtype=dtype_of(first))
            results = [train(model, task, first.train, probes=first.probes, recorder=recorders[0],
                             generator=generator(batch_seed(first.seed, first.train.batch_seed), "batches"),
                             progress=callback)]
        else:
            results = train_ensemble(task, [item.spec for item in group], recorders=recorders,
                                     progress=(lambda step, total: callback(step, total)) if callback else None,
                                     data_key=data_fingerprint(task))
    except BaseException as exc:
        for rec in recorders:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            rec.close(status, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    out = []
    for item, rec, result in zip(group, recorders, results):
        error = None if result.status == "done" else result.reason
        rec.close(result.status, error=error, summary={"final_loss": result.final_loss, "steps": result.steps,
                                                        "wall_s": result.wall_s, "restarts": result.restarts,
                                                        "lr": result.lr})
        out.append(RunData(item.label, rec.run_id, item.spec, result.status, error, store))
    return out
