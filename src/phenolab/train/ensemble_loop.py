"""The ensemble's training loop: the plain trainer's rules applied to every member of a stack.

Per step, as `train` does for one network: probes due at this step, then the loss (on each
member's minibatch) and its gradient, then per member in this order: record ``loss``; NaN, inf
or a loss above its train.max_loss -> ``diverged``; a loss above (1 + restart_on_jump) x its
previous one -> restart (initial weights, lr / 2, fresh optimizer, no update this step);
loss <= stop_ratio x its first loss -> last probes, ``done``; else the member is updated;
past its time_limit -> ``failed``. After the last step: the full-batch loss, the last probes.
A member that ends leaves the stack with its weights as they were then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence, cast

import torch
from torch import Tensor, nn

from phenolab.config import MLPSpec, ProbeSpec, RunSpec
from phenolab.models import MLP, build_model
from phenolab.objectives import make_objective
from phenolab.tasks.base import Task
from phenolab.train.fused_relu1d import FusedRelu1d
from phenolab.train.loop import Status, TrainResult, batch_plan
from phenolab.train.recorder import BufferRecorder, Recorder, iter_probe_specs
from phenolab.train.schedule import device_of, lr_factor, scheduled
from phenolab.train.seeding import batch_seed, generator
from phenolab.train.stacked_mlp import StackedMLP
from phenolab.train.stacked_optim import StackedOptimizer
from phenolab.train.stopping import Watch
from phenolab.train.vmap_gradients import VmapGradients

PathName = Literal["auto", "fused", "stacked", "vmap"]
STACKED_LOSSES = ("mse", "cross_entropy")  # the objectives `StackedMLP` computes itself
EnsembleProgress = Callable[[int, int], None]
AnyRecorder = Recorder | BufferRecorder
Gradients = FusedRelu1d | StackedMLP | VmapGradients


@dataclass(frozen=True)
class MemberResult(TrainResult):
    """A member's `TrainResult` and its final parameters, keyed as the `MLP`'s state dict."""

    state: dict[str, Tensor] = field(default_factory=dict, repr=False, compare=False)


def mlp_spec(spec: RunSpec) -> MLPSpec:
    """`spec.model`, the `MLPSpec` of an ensemble member (to mypy, ``RunSpec.model`` is any `KindSpec`)."""
    return cast(MLPSpec, spec.model)


def fused_applies(spec: RunSpec, task: Task) -> bool:
    """Whether the fused path computes this ensemble's gradients: a two-layer ReLU MLP, 1-D input,
    MSE, every parameter trained (no fixed readout) and no centring."""
    if spec.model.kind != "mlp":
        return False
    model = mlp_spec(spec)
    return (
        len(model.hidden_widths) == 1
        and model.activation == "relu"
        and task.input_dim == 1
        and spec.train.loss.kind == "mse"
        and task.y_train.is_floating_point()
        and model.fixed_readout is None
        and not model.centered
    )


def initial_models(task: Task, specs: Sequence[RunSpec]) -> list[nn.Module]:
    """Each member's network at its initialization: `build_model` with `generator(seed, "model")`."""
    dtype = torch.float64 if specs[0].train.dtype == "float64" else torch.float32
    return [build_model(s.model, task.input_dim, task.output_dim, generator(s.seed, "model"), dtype)
            for s in specs]


@dataclass
class _Member:
    """Bookkeeping of one member while it trains: its stopping state (`Watch`: lr, restarts,
    first and previous loss), its recorder, and its model (built once: the member's initial
    weights, later the probes' CPU copy of its weights)."""

    index: int
    spec: RunSpec
    model: nn.Module
    recorder: AnyRecorder | None
    watch: Watch

    @property
    def lr(self) -> float:
        return self.watch.lr


class _Stack:
    """The members still training, row by row: stacked parameters, optimizer state, gradients.

    Every parameter is stacked (the state and the probes need them all); frozen ones
    (``requires_grad`` False, a fixed readout) get no gradient buffer and no optimizer state."""

    def __init__(self, members: list[_Member], gradients: Gradients, optimizer_spec: RunSpec,
                 device: torch.device) -> None:
        self.members = members
        named = dict(members[0].model.named_parameters())
        self.names = list(named)
        self.trainable = [named[name].requires_grad for name in self.names]
        self.params = [
            torch.stack([dict(m.model.named_parameters())[name].detach() for m in members]).to(device)
            for name in self.names
        ]
        self.initial = [p.clone() for p in self.params]
        self.grads = [torch.empty_like(p) for p in self.trained]
        self.scale = torch.tensor([getattr(m.spec.model, "output_scale", 1.0) for m in members], dtype=torch.float64)
        self.max_loss = torch.tensor([m.spec.train.max_loss for m in members], dtype=torch.float64)
        tr = optimizer_spec.train
        lr_scales = getattr(members[0].model, "lr_scales", None)  # per-layer lr factors (muP), shared by all
        scales = lr_scales(tr.optimizer) if callable(lr_scales) else dict.fromkeys(self.names, 1.0)
        self.optimizer = StackedOptimizer(tr.optimizer, self.trained, [m.lr for m in members], tr.momentum,
                                          [scales[n] for n, t in zip(self.names, self.trainable) if t],
                                          weight_decay=tr.weight_decay)
        self.gradients = gradients

    @property
    def trained(self) -> list[Tensor]:
        """The stacked parameters that train (all but the frozen ones), in parameter order."""
        return [p for p, t in zip(self.params, self.trainable) if t]

    def __len__(self) -> int:
        return len(self.members)

    def keep(self, rows: list[int]) -> None:
        """Keep only the members at `rows` (in that order)."""
        index = torch.tensor(rows, dtype=torch.int64)
        self.members = [self.members[r] for r in rows]
        self.params = [p[index] for p in self.params]
        self.initial = [p[index] for p in self.initial]
        self.grads = [g[index] for g in self.grads]
        self.scale = self.scale[index]
        self.max_loss = self.max_loss[index]
        self.optimizer.select(rows)
        self.gradients.select(index)

    def state(self, row: int) -> dict[str, Tensor]:
        """Member `row`'s parameters, and its model's buffers (a centred net's initial parameters),
        keyed as its `MLP`'s state dict."""
        buffers = {name: b.detach().clone() for name, b in self.members[row].model.named_buffers()}
        return {**buffers, **{name: p[row].detach().to("cpu", copy=True) for name, p in zip(self.names, self.params)}}

    def restart(self, rows: list[int]) -> None:
        """Back to the initial weights with a fresh optimizer at each member's (halved) lr."""
        with torch.no_grad():
            for p, p0 in zip(self.params, self.initial):
                p[rows] = p0[rows]
        self.optimizer.reset(rows, [self.members[r].lr for r in rows])

    def probe(self, rows: Sequence[int], step: int, task: Task, due: Sequence[ProbeSpec]) -> None:
        """Run the due probes on each member at `rows` that has a recorder, on its `MLP`."""
        if not due:
            return
        for row in rows:
            mem = self.members[row]
            if mem.recorder is None:
                continue
            with torch.no_grad():
                for p, stacked in zip(mem.model.parameters(), self.params):
                    p.copy_(stacked[row])
            mem.recorder.probe(step, mem.model, task, list(due))


def train_members(
    task: Task,
    specs: Sequence[RunSpec],
    recorders: Sequence[AnyRecorder | None],
    progress: EnsembleProgress | None = None,
    path: PathName = "auto",
    models: Sequence[nn.Module] | None = None,
) -> list[MemberResult]:
    """`train_ensemble` in this process, on specs whose keys match (not checked here).

    `models` are the members' networks as `initial_models` builds them, if already built.
    """
    run = _Run(task, specs, recorders, path, models)
    steps = specs[0].train.steps
    for step in range(steps):
        if not run.step(step):
            break
        if progress is not None:
            progress(step + 1, steps)
    return run.end()


class _Run:
    """One call of `train_members`: the stack, the members' results, the step's bookkeeping."""

    def __init__(self, task: Task, specs: Sequence[RunSpec], recorders: Sequence[AnyRecorder | None],
                 path: PathName, models: Sequence[nn.Module] | None) -> None:
        self.started = time.monotonic()
        self.task = task
        self.train = specs[0].train  # what all members share: steps, probe schedule, dtype, ...
        self.dtype = torch.float64 if self.train.dtype == "float64" else torch.float32
        models = list(models) if models is not None else initial_models(task, specs)
        self.members = [_Member(i, s, models[i], recorders[i], Watch.of(s.train)) for i, s in enumerate(specs)]
        for mem in self.members:
            mem.model.train()
        device = device_of(self.train)
        self.stack = _Stack(self.members, _make_gradients(path, specs[0], task, models, device), specs[0], device)
        gradients = self.stack.gradients
        self.path = ("fused" if isinstance(gradients, FusedRelu1d) else
                     "vmap" if isinstance(gradients, VmapGradients) else "stacked")
        self.schedule = scheduled(self.train)
        self.clip = self.train.clip_norm
        self.plans = _batch_plans(len(task.x_train), specs)
        self.probes = specs[0].probes
        self.results: list[MemberResult | None] = [None] * len(specs)
        self.recording = any(r is not None for r in recorders)
        self.watching = any(s.train.restart_on_jump or s.train.stop_ratio is not None for s in specs)
        self.timed = any(s.train.time_limit is not None for s in specs)

    def finish(self, row: int, status: Status, step: int, loss: float, reason: str) -> None:
        mem = self.stack.members[row]
        self.results[mem.index] = MemberResult(status, step, loss, reason, time.monotonic() - self.started,
                                               mem.watch.restarts, mem.lr, f"ensemble/{self.path}",
                                               state=self.stack.state(row))

    def step(self, step: int) -> bool:
        """One training step of every member still in the stack; False once none is left."""
        stack = self.stack
        due = iter_probe_specs(self.probes, step, self.train.probe_every, last=False) if self.recording else []
        stack.probe(range(len(stack)), step, self.task, due)
        # a plan returns None only for full batches, and then `plans` is None
        batch = None if self.plans is None else torch.stack([cast(Tensor, self.plans[m.index](step))
                                                             for m in stack.members])
        loss = stack.gradients.loss_and_grads(stack.params, stack.scale, batch, stack.grads)
        loss = loss.to(self.dtype).double()  # the plain loop reads float(loss) of a `dtype` tensor
        values: list[float] = []
        restarted: list[int] = []
        if self.recording or self.watching or bool((~torch.isfinite(loss)).logical_or_(loss > stack.max_loss).any()):
            values = loss.tolist()
            ended, restarted = self._check_losses(step, values, due)
            if ended:
                rows = [r for r in range(len(stack)) if r not in ended]
                restarted = [rows.index(r) for r in restarted]
                values = [values[r] for r in rows]
                stack.keep(rows)
                if not len(stack):
                    return False
        if self.clip is not None:
            _clip(stack.grads, self.clip)
        stack.optimizer.step(stack.trained, stack.grads, lr_factor(self.train, step) if self.schedule else 1.0)
        if restarted:
            stack.restart(restarted)
        if self.timed:
            self._check_time(step, values or loss.tolist(), restarted)
        return len(stack) > 0

    def _check_losses(self, step: int, values: list[float], due: Sequence[ProbeSpec]) -> tuple[list[int], list[int]]:
        """Each member's loss through the plain loop's checks: rows that ended, rows to restart."""
        ended, restarted = [], []
        for row, value in enumerate(values):
            outcome = _member_step(self.stack.members[row], step, value)
            if outcome == "restart":
                restarted.append(row)
            elif outcome == "stop":
                last = iter_probe_specs(self.probes, step, self.train.probe_every, last=True)
                self.stack.probe([row], step, self.task, [p for p in last if all(p is not q for q in due)])
                self.finish(row, "done", step, value,
                            f"loss fell to train.stop_ratio x its initial value at step {step}")
                ended.append(row)
            elif outcome is not None:
                self.finish(row, "diverged", step, value, outcome)
                ended.append(row)
        return ended, restarted

    def _check_time(self, step: int, values: list[float], restarted: list[int]) -> None:
        """Members past their train.time_limit (counted from the start of the call) fail."""
        elapsed = time.monotonic() - self.started
        reasons = {row: mem.watch.late(elapsed, step + 1) for row, mem in enumerate(self.stack.members)
                   if row not in restarted}
        late = [row for row, reason in reasons.items() if reason is not None]
        for row in late:
            self.finish(row, "failed", step + 1, values[row], str(reasons[row]))
        if late:
            self.stack.keep([r for r in range(len(self.stack)) if r not in late])

    def end(self) -> list[MemberResult]:
        """After the last step: full-batch loss, last probes, ``done`` (or ``diverged``) for those left."""
        stack, steps = self.stack, self.train.steps
        if len(stack):
            with torch.no_grad():
                final = stack.gradients.loss_and_grads(stack.params, stack.scale).to(self.dtype).double().tolist()
            for row, mem in enumerate(stack.members):
                if mem.recorder is not None:
                    mem.recorder.record(steps, loss=final[row])
            last = iter_probe_specs(self.probes, steps, self.train.probe_every, last=True) if self.recording else []
            stack.probe(range(len(stack)), steps, self.task, last)
            for row, mem in enumerate(stack.members):
                status, reason = mem.watch.final(final[row])
                self.finish(row, status, steps, final[row], reason)
        for mem in self.members:
            mem.model.eval()
        return [r for r in self.results if r is not None]


def _member_step(mem: _Member, step: int, value: float) -> str | None:
    """The stopping rules (`phenolab.train.stopping`) on one member's loss at `step`.

    Returns None (go on), ``"restart"``, ``"stop"`` or the divergence reason."""
    if mem.recorder is not None:
        mem.recorder.record(step, loss=value)
    action, reason = mem.watch.check(step, value)
    if action == "restart":
        if mem.recorder is not None:
            mem.recorder.record(step, lr=mem.lr)
        return "restart"
    if action == "diverged":
        return reason
    return None if action == "go" else "stop"


def _clip(grads: list[Tensor], max_norm: float) -> None:
    """Each member's gradient (row e of every tensor) rescaled to norm `max_norm` when larger,
    as ``torch.nn.utils.clip_grad_norm_`` does for one network: factor max_norm / (norm + 1e-6)."""
    norms = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor.to(g.dtype).reshape(-1, *([1] * (g.ndim - 1))))


def _make_gradients(path: PathName, spec: RunSpec, task: Task, models: Sequence[nn.Module],
                    device: torch.device) -> Gradients:
    """The gradient path: fused where it applies (or is asked for), stacked for an MLP with an
    objective it computes (`STACKED_LOSSES`), else the generic ``vmap`` path (any stackable
    module, any objective on outputs). A centred ensemble's stacked path subtracts each member's
    output at its initial parameters (the buffers of its `MLP`); frozen parameters get no gradient."""
    if path == "vmap" or (path == "auto" and (spec.model.kind != "mlp" or spec.train.loss.kind not in STACKED_LOSSES)):
        named = dict(models[0].named_parameters())
        return VmapGradients(models, make_objective(spec.train.loss), task.x_train, task.y_train, list(named),
                             [p.requires_grad for p in named.values()], device)
    model = cast(MLP, models[0])
    mults = model.multipliers
    biases = [layer.bias is not None for layer in model.layers]
    if path == "fused" or (path == "auto" and fused_applies(spec, task)):
        return FusedRelu1d(task.x_train.to(device), task.y_train.to(device), mult1=mults[0], mult2=mults[1],
                           hidden_bias=biases[0], output_bias=biases[1])
    reference = None
    if mlp_spec(spec).centered:
        initial = [cast(MLP, m).initial_parameters() for m in models]
        # (weight, bias) per layer; the bias (k = 1) is taken only where the layer has one
        reference = [torch.stack([cast(Tensor, member[layer][k]) for member in initial]).to(device)
                     for layer in range(len(biases)) for k in (0, 1) if k == 0 or biases[layer]]
    return StackedMLP(task.x_train.to(device), task.y_train.to(device), widths=mlp_spec(spec).hidden_widths,
                      multipliers=mults, sigma=model.sigma, biases=biases, loss=spec.train.loss.kind,
                      trainable=[p.requires_grad for p in model.parameters()], reference=reference,
                      reference_scale=[cast(MLP, m).output_scale for m in models])


def _batch_plans(n: int, specs: Sequence[RunSpec]) -> list[Callable[[int], Tensor | None]] | None:
    """Each member's minibatch plan (members with one batch seed share one), or None for full batches."""
    shared: dict[int, Callable[[int], Tensor | None]] = {}
    seeds = [batch_seed(s.seed, s.train.batch_seed) for s in specs]
    for s, seed in zip(specs, seeds):
        if seed not in shared:
            shared[seed] = batch_plan(n, s.train, generator(seed, "batches"))
    plans = [shared[seed] for seed in seeds]
    return None if plans[0](0) is None else plans
