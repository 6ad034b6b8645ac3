"""`Recorder`: one run in the store, fed scalars and probe results from any training loop.

phenolab's own trainer uses it, and so can a researcher's loop that phenolab did not write::

    with Recorder("phenolab-runs/phenolab.sqlite", "my-mlp", config={"lr": 1e-3}) as rec:
        for step in range(1000):
            ...
            rec.record(step, loss=loss.item())
            if step % 50 == 0:
                rec.probe(step, model, (x, y), probes=["frequency", "loss"])

Scalars become metric series (``loss``, ``frequency/rel_err_0``, ...); probe arrays are
stacked over the probe steps and saved as one artifact per key when the run closes
(``frequency/rel_err`` -> arrays ``steps`` (T,) and ``values`` (T, ...)).
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from phenolab.config import ProbeSpec, config_hash
from phenolab.probes.registry import needs_reference, run_probe
from phenolab.store import Store
from phenolab.tasks.base import Task

_FLUSH_ROWS = 5000
_FLUSH_SECONDS = 5.0


class _Probing:
    """`probe` for recorders: runs registered probes and records their scalars and arrays.
    Probes that need a reference point get the parameters of the model's first probed step."""

    _references: dict[int, dict[str, torch.Tensor]]  # subclasses set it, and define record / record_arrays

    if TYPE_CHECKING:  # what `probe` needs of its subclasses (declared for mypy only)
        def record(self, step: int, **scalars: float) -> None: ...

        def record_arrays(self, step: int, arrays: Mapping[str, np.ndarray]) -> None: ...

    def probe(
        self,
        step: int,
        model: nn.Module,
        task_or_batch: Task | tuple[torch.Tensor, torch.Tensor],
        probes: Sequence[str | ProbeSpec | Mapping[str, Any]] = ("loss",),
    ) -> dict[str, float | np.ndarray]:
        """Run registered probes on `model` and record their outputs under ``probe/key``."""
        task = task_or_batch if isinstance(task_or_batch, Task) else Task.from_batch(*task_or_batch)
        results: dict[str, float | np.ndarray] = {}
        for spec in probes:
            name, options = _probe_name_options(spec)
            if needs_reference(name) and "reference" not in options:
                options["reference"] = self._reference_of(model)
            for key, value in run_probe(name, model, task, **options).items():
                results[f"{name}/{key}"] = value
        self.record(step, **{k: v for k, v in results.items() if not isinstance(v, np.ndarray)})
        self.record_arrays(step, {k: v for k, v in results.items() if isinstance(v, np.ndarray)})
        return results

    def _reference_of(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The parameters `model` had when this recorder first probed it (its initialization
        when probing starts at step 0), kept for probes that measure change from it."""
        key = id(model)
        if key not in self._references:
            self._references[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return self._references[key]


class Recorder(_Probing):
    """Buffers a run's scalars and arrays and writes them to the store in short transactions."""

    def __init__(
        self,
        store: Store | str | Path | None,
        name: str,
        config: Mapping[str, Any] | Any | None = None,
        *,
        kind: str = "recorder",
        parent_id: int | None = None,
        label: str | None = None,
        sweep_id: str | None = None,
        code_version: str | None = None,
        run_id: int | None = None,
    ):
        """A new ``running`` run in `store`, or, with `run_id`, the ``running`` run the caller
        already created (claimed, `Store.claim_run`) for this config."""
        self._owns_store = not isinstance(store, Store)
        self.store = store if isinstance(store, Store) else Store(store)
        cfg = _config_dict(config)
        self.config = cfg
        self.config_hash = config_hash(cfg)
        if run_id is None:
            run_id = self.store.create_run(
                kind=kind, name=name, config=cfg, config_hash=self.config_hash,
                parent_id=parent_id, sweep_id=sweep_id, label=label, code_version=code_version,
            )
        self.run_id = run_id
        self.status: str | None = None
        self._rows: list[tuple[int, str, float]] = []
        self._arrays: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._references: dict[int, dict[str, torch.Tensor]] = {}
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ recording
    def record(self, step: int, **scalars: float) -> None:
        """Record scalar metrics at `step` (floats, 0-d tensors or numpy scalars)."""
        for key, value in scalars.items():
            self._rows.append((int(step), key, _to_float(value)))
        self._maybe_flush()

    def record_arrays(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Record arrays at `step`; each key's arrays are stacked over steps when the run closes."""
        for key, value in arrays.items():
            self._arrays.setdefault(key, []).append((int(step), np.asarray(value)))

    # ------------------------------------------------------------------ lifecycle
    def flush(self) -> None:
        if self._rows:
            self.store.log_metrics(self.run_id, self._rows)
            self._rows = []
        self.store.heartbeat(self.run_id)
        self._last_flush = time.monotonic()

    def close(self, status: str = "done", *, error: str | None = None,
              summary: dict[str, Any] | None = None) -> None:
        """Write what is buffered, then mark the run `status` (done, failed, diverged, interrupted)."""
        if self.status is not None:
            return
        self.flush()
        for key, items in self._arrays.items():
            steps = np.array([s for s, _ in items], dtype=np.int64)
            try:
                values = np.stack([v for _, v in items])
            except ValueError:  # shapes changed between steps: keep one array per step
                arrays = {f"values_{i}": v for i, (_, v) in enumerate(items)}
                self.store.save_artifact(self.run_id, key, {"steps": steps, **arrays})
                continue
            self.store.save_artifact(self.run_id, key, {"steps": steps, "values": values})
        self.store.finish_run(self.run_id, status, error=error, summary=summary)
        self.status = status
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.status is not None:
            return
        if exc is None:
            self.close("done")
        elif isinstance(exc, KeyboardInterrupt):
            self.close("interrupted", error="interrupted by the user (KeyboardInterrupt)")
        else:
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.close("failed", error=last)

    def _maybe_flush(self) -> None:
        if len(self._rows) >= _FLUSH_ROWS or time.monotonic() - self._last_flush > _FLUSH_SECONDS:
            self.flush()


def _probe_name_options(spec: str | ProbeSpec | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, ProbeSpec):
        return spec.name, dict(spec.options)
    return str(spec["name"]), dict(spec.get("options", {}))


def _to_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().cpu().item())
    return float(value)


def _config_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return json.loads(json.dumps(dict(config), default=str))


def iter_probe_specs(probes: Iterable[ProbeSpec], step: int, default_every: int,
                     last: bool) -> list[ProbeSpec]:
    """The probes due at `step`: every `every` steps (or train.probe_every) from their `start`
    step on, and at the last step."""
    return [p for p in probes if last or (step >= p.start and step % (p.every or default_every) == 0)]


class BufferRecorder(_Probing):
    """A `Recorder` that keeps everything in memory, for a process that cannot write the store.

    Same `record`, `record_arrays` and `probe` as `Recorder` (probes that need a reference
    point get the parameters of the model's first probed step); `replay(into)` then feeds the
    records, in their order, into a real `Recorder`. Picklable once its probes have run.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, int, dict[str, Any]]] = []  # ("scalars" | "arrays", step, values)
        self._references: dict[int, dict[str, torch.Tensor]] = {}

    def record(self, step: int, **scalars: float) -> None:
        """Keep scalar metrics at `step` (floats, 0-d tensors or numpy scalars)."""
        if scalars:
            self.events.append(("scalars", int(step), {k: _to_float(v) for k, v in scalars.items()}))

    def record_arrays(self, step: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Keep arrays at `step`."""
        if arrays:
            self.events.append(("arrays", int(step), {k: np.asarray(v) for k, v in arrays.items()}))

    def replay(self, into: Recorder | BufferRecorder) -> None:
        """Feed every kept record into `into`, in the order they were made."""
        for kind, step, values in self.events:
            if kind == "scalars":
                into.record(step, **values)
            else:
                into.record_arrays(step, values)

    def __getstate__(self) -> dict[str, Any]:
        return {"events": self.events, "_references": {}}  # references point at this process's models
