"""The catalog: importing this module registers every experiment, in the order `phenolab list` shows."""

# isort: off
from phenolab.experiments import f_principle  # noqa: F401
from phenolab.experiments import f_principle_nd  # noqa: F401
from phenolab.experiments import phase_diagram  # noqa: F401
from phenolab.experiments import condensation  # noqa: F401
from phenolab.experiments import initial_condensation  # noqa: F401
from phenolab.experiments import ntk_convergence  # noqa: F401
from phenolab.experiments import sharpness_width  # noqa: F401
from phenolab.experiments import hessian_outliers  # noqa: F401
from phenolab.experiments import loss_spike  # noqa: F401
from phenolab.experiments import lazy_rich  # noqa: F401
from phenolab.experiments import local_linear_recovery  # noqa: F401
from phenolab.experiments import optimistic_sample_size  # noqa: F401
from phenolab.experiments import single_neuron_recovery  # noqa: F401
from phenolab.experiments import landscape_global_minima  # noqa: F401
from phenolab.experiments import embedding_principle  # noqa: F401
from phenolab.experiments import matrix_completion  # noqa: F401
