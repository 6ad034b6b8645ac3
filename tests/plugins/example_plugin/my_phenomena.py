"""my_phenomena: one probe and one experiment, registered with phenolab when imported."""
from phenolab.config import ExperimentSpec, MLPSpec, ProbeSpec, Spec, TrainSpec
from phenolab.experiments import Check, Experiment, Verdict, register
from phenolab.probes import predict, register_probe
from phenolab.report import plots


@register_probe("output_rms")
def output_rms(model, task):
    """Root mean square of the network's outputs on the training inputs."""
    return {"train": float(predict(model, task.x_train).pow(2).mean().sqrt())}


class FitCheck(Spec):
    max_loss_ratio: float = 0.7  # final / initial training loss, median over seeds


class FitConfig(ExperimentSpec):
    experiment: str = "sines-fit"
    model: MLPSpec = MLPSpec(width=32)
    train: TrainSpec = TrainSpec(lr=2e-2, steps=300, probe_every=20)
    probes: list[ProbeSpec] = [ProbeSpec(name="loss"), ProbeSpec(name="output_rms")]
    check: FitCheck = FitCheck()


def analyze(cfg, runs):
    ratios = sorted(r.series("loss/train").iloc[-1] / r.series("loss/train").iloc[0]
                    for r in runs if r.status == "done")
    return {"ratio": ratios[len(ratios) // 2] if ratios else None}


def verdict(cfg, summary):
    check = Check("final / initial training loss", summary["ratio"], "<", cfg.check.max_loss_ratio)
    return Verdict(cfg.experiment, (check,), source="my notes, 2025")


def figures(cfg, runs, summary):
    rms = runs[0].series("output_rms/train")
    return {"output rms": plots.curves(rms.index, {"seed 0": rms.values}, title="output RMS", ylabel="rms")}


register(Experiment(
    name="sines-fit", title="A small tanh net fits three sines", source="my notes, 2025",
    claim="300 Adam steps cut the loss of a width-32 tanh net on sin x + 2 sin 3x + 3 sin 5x by 30 %.",
    config=FitConfig, presets={"quick": {}, "full": {"seeds": [0, 1, 2], "train": {"steps": 2000}},
                               "smoke": {"train": {"steps": 20}}},
    analyze=analyze, verdict=verdict, figures=figures))  # plan: one run per seed (the default)
