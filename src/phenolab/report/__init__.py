"""Reports: figures (`plots`) and self-contained HTML pages (`html`) for phenolab runs.

Neither module imports anything else of phenolab: experiments may use the plots, and the
pages are built from plain dicts (``Run``/``Verdict`` ``to_dict()`` output).
"""

from phenolab.report.html import figure_to_data_uri, render_index_page, render_run_page, safe_href
from phenolab.report.plots import curves, fit_1d, peak_heatmap, spectra_1d

__all__ = [
    "curves",
    "figure_to_data_uri",
    "fit_1d",
    "peak_heatmap",
    "render_index_page",
    "render_run_page",
    "safe_href",
    "spectra_1d",
]
