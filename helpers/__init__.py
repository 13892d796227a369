"""Helpers for the Azure Databricks ML curriculum.

A notebook's whole set-up is one line::

    spark = helpers.start("01-ingestion")                  # Spark + the curriculum's plot style
    spark = helpers.start("04-mlflow", experiment=True)    # ... and an MLflow experiment of that name
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from helpers.datasets import load, load_pandas
from helpers.paths import display_path, project_root, work_dir
from helpers.tables import display

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# PySpark's pandas conversion warns about behaviour it already handles, and tqdm (imported by MLflow)
# asks for ipywidgets; neither is about the learner's code. Set on import, because notebooks import
# helpers before MLflow.
warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
warnings.filterwarnings("ignore", message="IProgress not found")

__all__ = ["start", "load", "load_pandas", "display", "project_root", "work_dir", "display_path"]
__version__ = "0.1.0"


def start(notebook: str, experiment: bool = False) -> SparkSession:
    """Everything a chapter needs before its first cell of real work.

    Applies the plot style, starts (or reuses) the Spark session named after the notebook and,
    with ``experiment=True``, points MLflow at the experiment of the same name.
    """
    from helpers.plots import use_style
    from helpers.spark import spark_session

    use_style()
    session = spark_session(notebook)
    if experiment:
        from helpers.tracking import use_experiment

        use_experiment(notebook)
    return session
