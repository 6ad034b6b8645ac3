"""The ensemble trainer: many networks of one shape train in one call, each as `train` would train it.

A phase diagram is hundreds of small networks that differ only in seed, initialization scale,
output scale or learning rate. `train_ensemble` stacks their parameters on a leading member
axis and takes one step for all of them; every member starts from the weights
`build_model(spec.model, ..., generator(spec.seed, "model"))` gives and follows the plain
trainer's rules on its own: its own learning rate, optimizer state, minibatch order
(`batch_plan` with `generator(batch_seed(spec.seed, spec.train.batch_seed), "batches")`: per-run
orders by default, one shared order with a common `train.batch_seed`), divergence, stop ratio, restarts and
time limit. A member that ends is taken out of the stack; the others go on.

Gradient paths (`path=`):

- ``fused``: two-layer ReLU nets on 1-D inputs with MSE (`fused_relu1d`): exact gradients in
  O(m + n) per member and step from prefix sums over the sorted points, no hidden tensor.
- ``stacked``: any MLP and loss (`stacked_mlp`): batched matmuls and autograd, members in
  cache-sized chunks.
- ``auto`` (default): ``fused`` where it applies, else ``stacked``.

With ``workers > 1`` the members are split into that many processes (one thread each); their
records are buffered (`BufferRecorder`) and replayed into the given recorders in order
(`workers`). The loop itself is `ensemble_loop`.

    specs = [base.model_copy(update={"seed": s}) for s in range(64)]   # base: a RunSpec
    task = make_task(base.data, base.seed)                             # data.seed set: one task
    results = train_ensemble(task, specs, workers=2)
    results[3].status, results[3].final_loss, results[3].state["layers.0.weight"]
"""

from __future__ import annotations

from typing import Sequence, cast

import torch

from phenolab.config import RunSpec, SeededData, canonical_json
from phenolab.tasks.base import Task
from phenolab.train.ensemble_loop import (
    AnyRecorder,
    EnsembleProgress,
    MemberResult,
    PathName,
    fused_applies,
    mlp_spec,
    train_members,
)

__all__ = ["MemberResult", "ensemble_key", "fused_applies", "train_ensemble"]


def ensemble_key(spec: RunSpec, input_dim: int, output_dim: int, data_key: str | None = None) -> tuple:
    """What members must share to train together: data (seed resolved), architecture, schedule.

    Members may differ in seed, `model.init`, `model.output_scale`, `train.lr`, `stop_ratio`,
    `restart_on_jump`, `max_restarts`, `max_loss` and `time_limit`; they share the activation and
    its `activation_param`, `fixed_readout` and `centered` (both supported on the stacked path). `data_key`, when given,
    stands for the data instead of its spec (e.g. a hash of the tensors, so that seeds whose
    data are identical, as on a fixed grid, can share an ensemble).
    """
    data = spec.data.model_dump(mode="json")
    data_seed = cast(SeededData, spec.data).seed
    data["seed"] = data_seed if data_seed is not None else spec.seed
    tr = spec.train
    shared = (int(input_dim), int(output_dim),
              tr.optimizer, tr.loss, tr.batch_size, tr.steps, tr.dtype, tr.momentum, tr.probe_every,
              tr.weight_decay, tr.warmup, tr.schedule, tr.clip_norm, tr.device, tr.engine,
              tuple(canonical_json(p) for p in spec.probes))
    if spec.model.kind != "mlp":  # another stackable kind: the whole model spec is shared
        return (data_key if data_key is not None else canonical_json(data), canonical_json(spec.model), *shared)
    model = mlp_spec(spec)
    return (
        data_key if data_key is not None else canonical_json(data),
        tuple(model.hidden_widths), model.activation, model.activation_param, model.fixed_readout, model.centered,
        model.bias,
        model.bias if model.output_bias is None else model.output_bias, model.parametrization, model.base_width,
        int(input_dim), int(output_dim),
        tr.optimizer, tr.loss, tr.batch_size, tr.steps, tr.dtype, tr.momentum, tr.probe_every,
        tr.weight_decay, tr.warmup, tr.schedule, tr.clip_norm, tr.device, tr.engine,
        tuple(canonical_json(p) for p in spec.probes),
    )


def train_ensemble(
    task: Task,
    specs: Sequence[RunSpec],
    *,
    recorders: Sequence[AnyRecorder | None] | None = None,
    progress: EnsembleProgress | None = None,
    workers: int = 1,
    path: PathName = "auto",
    data_key: str | None = None,
) -> list[MemberResult]:
    """Train every spec's network on `task` as `train` would alone; one result per spec, in order.

    Each result is a `MemberResult`: the member's `TrainResult` and ``state``, its final
    parameters as its `MLP`'s state dict (the weights when it ended, for an early end).
    All specs must have the same `ensemble_key` (ValueError otherwise). `recorders[i]` (or None)
    receives member i's records: ``loss`` every step and the probes at the plain trainer's
    probe steps. `progress(step, steps)` is called after every step (with ``workers > 1``, once
    at the end). `time_limit` counts from the start of this call. `data_key` is passed to
    `ensemble_key`: the caller vouches that members whose data specs differ have the same data.
    """
    specs = list(specs)
    if not specs:
        return []
    recorders = list(recorders) if recorders is not None else [None] * len(specs)
    if len(recorders) != len(specs):
        raise ValueError(f"recorders: need one per spec ({len(specs)}), got {len(recorders)}")
    keys = [ensemble_key(s, task.input_dim, task.output_dim, data_key) for s in specs]
    odd = [i for i, k in enumerate(keys) if k != keys[0]]
    if odd:
        raise ValueError(
            f"specs {odd} cannot train with spec 0: they differ in data, architecture or schedule "
            "(only seed, model.init, model.output_scale, train.lr, stop_ratio, restart_on_jump, "
            "max_restarts, max_loss and time_limit may differ)"
        )
    tr = specs[0].train
    if tr.optimizer == "gd" and tr.batch_size is not None:
        raise ValueError("train.batch_size: gd is full-batch gradient descent; use optimizer=sgd for minibatches")
    if path not in ("auto", "fused", "stacked", "vmap"):
        raise ValueError(f"path: must be one of auto, fused, stacked, vmap, got {path!r}")
    if path == "fused" and not fused_applies(specs[0], task):
        raise ValueError("path=fused needs two-layer ReLU nets on 1-D inputs trained with MSE, every parameter "
                         "trained (no model.fixed_readout) and no model.centered")
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    dtype = torch.float64 if tr.dtype == "float64" else torch.float32
    if task.x_train.dtype != dtype:
        raise ValueError(f"train.dtype: the task's inputs are {task.x_train.dtype}, the networks {tr.dtype}; "
                         "make the task with make_task(..., dtype=...) of the same dtype")
    if workers > 1 and len(specs) > 1:
        from phenolab.train.workers import train_in_workers

        return train_in_workers(task, specs, recorders, progress, workers, path)
    return train_members(task, specs, recorders, progress, path)
