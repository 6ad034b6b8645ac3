"""The phenolab store: every run, its metric series and its arrays, in one SQLite file and a folder.

    with Store("phenolab-runs/phenolab.sqlite") as st:
        run = st.create_run(kind="train", name="mlp", config=cfg, config_hash=digest)
        st.log_metrics(run, [(0, "loss", 1.0), (1, "loss", 0.5)])
        st.finish_run(run, "done", summary={"final_loss": 0.5})
    load_runs(kind="train", where={"model.width": 100}); load_metrics(run); load_summary(sweep_id=sid)
"""

from phenolab.store.errors import StoreError
from phenolab.store.paths import default_store_path
from phenolab.store.read import load_metrics, load_runs, load_summary
from phenolab.store.registry import Store
from phenolab.store.schema import RUN_STATUSES

__all__ = ["RUN_STATUSES", "Store", "StoreError", "default_store_path", "load_metrics", "load_runs",
           "load_summary"]
