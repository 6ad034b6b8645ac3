"""train.device: the trainers run on a CUDA device where there is one; the CPU is the default.

The CUDA tests are marked ``cuda`` and skipped where torch sees no device (CI and the
development machines have none); they compare each trainer on the GPU with the same run on the CPU.
"""

import pytest
import torch

from phenolab.config import RunSpec, validate
from phenolab.tasks import make_task
from phenolab.train.engines import train_group
from phenolab.train.recorder import BufferRecorder
from phenolab.train.schedule import device_of

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def spec(device: str, engine: str = "auto", seed: int = 0) -> RunSpec:
    return validate(RunSpec, {
        "model": {"width": 32, "activation": "tanh"}, "data": {"kind": "sines", "n_train": 40, "seed": 0},
        "train": {"optimizer": "adam", "lr": 1e-2, "steps": 100, "probe_every": 50, "dtype": "float64",
                  "device": device, "engine": engine},
        "probes": [{"name": "loss"}], "seed": seed})


def test_cpu_is_the_default_and_auto_falls_back_to_it():
    assert device_of(spec("cpu").train).type == "cpu"
    assert "device" not in spec("cpu").train.model_dump(mode="json")  # the default keeps older hashes
    if not torch.cuda.is_available():
        assert device_of(spec("auto").train).type == "cpu"
        with pytest.raises(RuntimeError, match="train.device: cuda was asked for"):
            device_of(spec("cuda").train)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("engine", ["ensemble", "plain"])
def test_each_engine_on_cuda_matches_the_cpu(engine):
    task = make_task(spec("cpu").data, 0, dtype=torch.float64)
    specs = {d: [spec(d, engine, s) for s in range(2)] for d in ("cpu", "cuda")}
    results = {d: train_group(task, specs[d], [BufferRecorder() for _ in range(2)]) for d in specs}
    for on_cpu, on_gpu in zip(results["cpu"], results["cuda"]):
        assert on_gpu.status == on_cpu.status == "done"
        assert on_gpu.final_loss == pytest.approx(on_cpu.final_loss, rel=1e-6)
