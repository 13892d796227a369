"""JupyterLab for this course: the MLflow UI one click away, on a laptop and on Binder.

``jupyter-server-proxy`` (in the lock) finds ``mlflow_ui`` through the ``jupyter_serverproxy_servers`` entry point
in pyproject.toml: JupyterLab's launcher gets an **MLflow** tile, and ``<lab address>/mlflow/`` starts the MLflow
UI on the course's tracking store the first time it is opened (and stops it with JupyterLab). On a laptop
``make mlflow-ui`` does the same on port 5000; on Binder, where no port but JupyterLab's is reachable, the proxy is
the only way in — as it is for the Spark UI, at ``<lab address>/proxy/<port>/`` (``helpers.spark.ui_url``).
"""

from __future__ import annotations

import sys
from typing import Any


def mlflow_ui() -> dict[str, Any]:
    """jupyter-server-proxy's description of the MLflow UI (``{port}`` is filled in by the proxy)."""
    from helpers.tracking import is_local_store, tracking_uri

    uri = tracking_uri()
    if not is_local_store(uri):  # a team's server has its own UI; a second one on the laptop would be wrong
        raise RuntimeError(f"MLFLOW_TRACKING_URI points at {uri}: open that server's own UI")
    return {
        "command": [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                    "--port", "{port}"],
        "timeout": 120,  # MLflow's first start creates the store's tables
        "launcher_entry": {"title": "MLflow"},
        "new_browser_tab": True,
    }
