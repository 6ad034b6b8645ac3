"""The catalog: importing this module registers every experiment, in the order `phenolab list` shows."""

import re

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


def catalog_table() -> str:
    """The README's catalog table, rendered from the registry: name, title, claim and source of
    every entry in catalog order (markdown; ``|`` in a text is escaped). Regenerate the README's
    block with ``python -m phenolab.experiments.catalog README.md``."""
    from phenolab.experiments.base import experiments

    def cell(text: str) -> str:  # one line; a | or an HTML-looking < would break the table
        return re.sub(r"<(?=[A-Za-z/!])", "&lt;", " ".join(text.split()).replace("|", "\\|"))

    rows = ["| name | title | claim | source |", "| --- | --- | --- | --- |"]
    rows += [f"| `{e.name}` | {cell(e.title)} | {cell(e.claim)} | {cell(e.source)} |" for e in experiments()]
    return "\n".join(rows) + "\n"


CATALOG_START, CATALOG_END = "<!-- catalog:start -->", "<!-- catalog:end -->"


def readme_block(text: str) -> str:
    """What lies between the catalog markers of a README's text (without the marker lines)."""
    start, end = text.index(CATALOG_START), text.index(CATALOG_END)
    return text[text.index("\n", start) + 1:end]


def update_readme(path: str) -> None:
    """Replace the block between the catalog markers of the README at `path` with `catalog_table()`."""
    from pathlib import Path

    text = Path(path).read_text()
    block = readme_block(text)
    start = text.index(CATALOG_START)
    head = text[:text.index("\n", start) + 1]
    Path(path).write_text(head + catalog_table() + text[len(head) + len(block):])


if __name__ == "__main__":
    import sys

    update_readme(sys.argv[1] if len(sys.argv) > 1 else "README.md")
