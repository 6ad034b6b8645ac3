"""The experiment catalog: one module per phenomenon, the registry, and the experiment contract
(`runner`: plan, judge, report). Running them is `phenolab.execution.run_experiment`."""

from phenolab.experiments.base import Experiment, RunData, experiments, get_experiment, register
from phenolab.experiments.runner import Outcome
from phenolab.experiments.verdict import Check, Verdict


def catalog_table() -> str:
    """The README's catalog table (markdown), rendered from the registry (`catalog.catalog_table`)."""
    from phenolab.experiments.catalog import catalog_table as table

    return table()


__all__ = ["Check", "Experiment", "Outcome", "RunData", "Verdict", "catalog_table", "experiments", "get_experiment",
           "register"]
