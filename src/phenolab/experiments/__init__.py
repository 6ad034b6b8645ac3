"""The experiment catalog: one module per phenomenon, the registry and the runner."""

from phenolab.experiments.base import Experiment, RunData, experiments, get_experiment, register
from phenolab.experiments.runner import Outcome, run_experiment
from phenolab.experiments.verdict import Check, Verdict

__all__ = ["Check", "Experiment", "Outcome", "RunData", "Verdict", "experiments", "get_experiment",
           "register", "run_experiment"]
