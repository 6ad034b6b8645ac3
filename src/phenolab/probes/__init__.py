"""Probes: pure measurements ``(model, task, **options) -> dict`` of floats and numpy arrays.

Built-in probes: ``loss``, ``accuracy`` (`phenolab.probes.basic`), ``frequency``, ``projection``
and ``filter`` (`phenolab.probes.frequency`, F-Principle, arXiv 1807.01251 / 1901.06523),
``parameters`` (`phenolab.probes.parameters`: the flat parameter vector, and helpers that evaluate
f(x; theta) and J(x; theta) v at a stored theta).
"""

from phenolab.probes.evaluate import predict
from phenolab.probes.frequency import (
    first_principal_component,
    gaussian_filter_split,
    local_maxima,
    projected_spectrum,
    relative_spectral_error,
    spectrum_peaks,
)
from phenolab.probes.parameters import (
    directional_derivative,
    flat_parameters,
    function_values,
    unflatten_parameters,
)
from phenolab.probes.registry import get_probe, probe_names, register_probe, run_probe

__all__ = [
    "directional_derivative",
    "first_principal_component",
    "flat_parameters",
    "function_values",
    "gaussian_filter_split",
    "get_probe",
    "local_maxima",
    "predict",
    "probe_names",
    "projected_spectrum",
    "register_probe",
    "relative_spectral_error",
    "run_probe",
    "spectrum_peaks",
    "unflatten_parameters",
]
