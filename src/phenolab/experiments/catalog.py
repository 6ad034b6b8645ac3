"""The catalog: importing this module registers every experiment, in the order `phenolab list` shows."""

from phenolab.experiments import f_principle, f_principle_nd  # noqa: F401
