"""The flight-delay model that Part III deploys: its task, features, data windows, candidates, and the
champion every deployment chapter loads by alias.

The task: from what is known **before departure**, the probability that a New York flight of 2013
arrives **15 minutes or more late** (the US DOT definition of a delayed flight, as in notebooks 01-02).
The model is a scikit-learn pipeline trained on a pandas frame on the driver — small, fast to load,
and the same object behind batch scoring (``mlflow.pyfunc.spark_udf``, ``mapInPandas``), streaming
and REST serving. It is trained on the **early months** (January-June 2013); the later months are
kept for the drift chapter.

Notebook 18 registers the model as ``flight_delay`` and promotes versions through an approval gate
(``helpers.registry``). Notebooks 19-23 need a champion whatever order they run in, so each starts with::

    spark = helpers.start("19-batch-inference", experiment=True)
    champion = delays.ensure_champion(spark, scale)          # trains + registers one only if none exists
    flights = delays.model_flights(spark, scale, months=None)            # Spark: key, features, label
    model = mlflow.pyfunc.load_model(delays.CHAMPION_URI)                # "models:/flight_delay@champion"
    p_late = delays.delay_probability(model.predict(frame[delays.FEATURES]))   # frame: pandas rows
    udf = mlflow.pyfunc.spark_udf(spark, delays.CHAMPION_URI, result_type="array<double>",
                                  env_manager="local")
    scored = flights.withColumn("p_late", udf(F.struct(*delays.FEATURES))[1])   # by name; [P(on time), P(late)]

The logged model is the scikit-learn flavour with ``pyfunc_predict_fn="predict_proba"``: its generic
(pyfunc) ``predict`` returns two columns per flight, P(on time) and P(late), and
``delay_probability`` keeps the second. The model artifact then needs nothing but pip packages
(scikit-learn, LightGBM, skops) to load — no code from this repository — which is what lets a REST
server or a Spark executor load it anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from helpers.flights import FLIGHT_KEY
from helpers.tracking import registered_name

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo
    from pyspark.sql import DataFrame, SparkSession
    from sklearn.pipeline import Pipeline

#: The registered model's name (in Unity Catalog it would be ``<catalog>.<schema>.flight_delay``).
MODEL_NAME = registered_name("flight_delay")  # "flight_delay" on a personal store
#: The alias every deployment chapter loads; ``helpers.registry`` moves it.
CHAMPION_ALIAS = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"

#: A flight is "late" when it arrives this many minutes or more after its scheduled arrival.
LATE_MINUTES = 15
LABEL = "label"
#: Calendar and schedule: whole numbers, never missing (typed ``long`` in the model's signature).
SCHEDULE = ["month", "day_of_week", "sched_hour", "distance"]
#: Weather at the origin airport in the scheduled hour (doubles; missing when no observation).
WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]
CATEGORICAL = ["carrier", "origin", "dest"]
NUMERIC = SCHEDULE + WEATHER
#: The model's input columns, by name and in this order.
FEATURES = NUMERIC + CATEGORICAL

#: The columns of ``delay_features``: the flight's key and scheduled hour, the actual delay, features, label.
COLUMNS = list(dict.fromkeys([*FLIGHT_KEY, "time_hour", "arr_delay", *FEATURES, LABEL]))

#: Months the model is trained and validated on; the rest of 2013 is "the future" (notebook 22).
TRAINING_MONTHS = (1, 2, 3, 4, 5, 6)
#: Share of the training months' flights held out as the fixed validation set of the approval gate.
VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 42
#: A wind reading above this is a recording error (notebook 02), treated as missing.
MAX_PLAUSIBLE_WIND_MPH = 100

KINDS = ("logistic", "lightgbm")
#: Types the skops format may rebuild when a model is loaded (skops refuses anything not listed).
SKOPS_TRUSTED_TYPES = ["numpy.dtype", "collections.OrderedDict", "lightgbm.basic.Booster",
                       "lightgbm.sklearn.LGBMClassifier"]
REQUIREMENTS = ("mlflow", "scikit-learn", "lightgbm", "skops", "pandas", "numpy")
#: Datasets the model is trained from: their manifest checksums are recorded as lineage.
DATASETS = ("flights", "weather", "airlines", "airports", "planes")


@dataclass(frozen=True)
class Candidate:
    """A model kind (``"logistic"`` or ``"lightgbm"``) and its settings: what one training run produces."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


#: The candidate notebook 18 promotes, and what ``ensure_champion`` trains when the registry is empty.
REFERENCE = Candidate(
    "lightgbm",
    {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 50},
    "LightGBM, 300 trees of 15 leaves, learning rate 0.05",
)


# --------------------------------------------------------------------------------------------- data


def delay_features(enriched: DataFrame) -> DataFrame:
    """The model's columns from ``helpers.flights.enriched_flights`` rows (batch or streaming): the flight's
    key, ``time_hour``, ``arr_delay``, every column of ``FEATURES`` with the signature's type, and ``label``
    (1 when ``arr_delay`` >= ``LATE_MINUTES``, 0 when on time, null for a cancelled or diverted flight)."""
    from pyspark.sql import functions as F

    wind = F.col("wind_speed")
    typed = [F.col(c).cast("long").alias(c) for c in ("month", "distance")] + [
        F.dayofweek(F.make_date("year", "month", "day")).cast("long").alias("day_of_week"),  # 1 = Sunday
        F.col("hour").cast("long").alias("sched_hour"),
        *[F.col(c).cast("double").alias(c) for c in WEATHER if c != "wind_speed"],
        F.when(wind <= MAX_PLAUSIBLE_WIND_MPH, wind).cast("double").alias("wind_speed"),
        *[F.col(c).cast("string").alias(c) for c in CATEGORICAL],
    ]
    label = F.when(F.col("arr_delay").isNull(), F.lit(None)).otherwise(
        (F.col("arr_delay") >= LATE_MINUTES).cast("int")).alias(LABEL)
    keys = [c for c in FLIGHT_KEY if c not in ("month", *CATEGORICAL)]
    return enriched.select(*keys, "time_hour", "arr_delay", *typed, label).select(*COLUMNS)


def model_flights(spark: SparkSession, scale: str = "default",
                  months: Sequence[int] | None = TRAINING_MONTHS) -> DataFrame:
    """Flights of ``months`` (all of 2013 when ``None``) that arrived — so the label is known — as
    ``delay_features`` rows."""
    from pyspark.sql import functions as F

    from helpers.flights import enriched_flights

    flights = delay_features(enriched_flights(spark, scale=scale)).where(F.col(LABEL).isNotNull())
    return flights if months is None else flights.where(F.col("month").isin(list(months)))


def split_flights(flights: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(train, validation): ``VALIDATION_FRACTION`` of the flights, decided by a hash of the flight's key —
    the same flights on every machine, at every partitioning (``helpers.splits.hash_split``)."""
    from helpers.splits import hash_split

    return hash_split(flights, VALIDATION_FRACTION, list(FLIGHT_KEY), seed=VALIDATION_SEED)


def to_pandas(flights: DataFrame) -> pd.DataFrame:
    """A Spark frame of ``delay_features`` rows on the driver, in a fixed row order (by flight key), so a
    model trained on it is the same whatever the partitioning."""
    from helpers.tables import ordered_pandas

    return ordered_pandas(flights, FLIGHT_KEY,
                          {c: "int64" for c in SCHEDULE} | {c: "float64" for c in WEATHER} | {LABEL: "int64"})


def training_frames(spark: SparkSession, scale: str = "default",
                    months: Sequence[int] = TRAINING_MONTHS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) pandas frames of the training months: the training rows and the **fixed
    validation set** every candidate and the champion are judged on."""
    train, validation = split_flights(model_flights(spark, scale, months))
    return to_pandas(train), to_pandas(validation)


# --------------------------------------------------------------------------------------------- models


def build_pipeline(candidate: Candidate) -> Pipeline:
    """An unfitted scikit-learn pipeline for ``candidate``: preprocessing and classifier in one object, so the
    logged model takes the raw ``FEATURES`` columns.

    - ``logistic``: median imputation + standardisation of the numeric columns, one-hot categories (an
      unseen category gets all zeros), L2-penalised logistic regression (``C`` etc. from ``params``).
    - ``lightgbm``: categories as integer codes (unseen → missing), LightGBM's own categorical splits;
      missing weather is left to LightGBM, which learns where missing values go.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    params = dict(candidate.params)
    if candidate.kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        prepare = ColumnTransformer([
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            ("categories",
             OneHotEncoder(handle_unknown="ignore", min_frequency=params.pop("min_frequency", 20)),
             CATEGORICAL),
        ])
        model = LogisticRegression(**{"C": 1.0, "max_iter": 2000, **params})
        return Pipeline([("prepare", prepare), ("model", model)])
    if candidate.kind == "lightgbm":
        import lightgbm as lgb

        from helpers.tuning import category_codes

        prepare = category_codes(NUMERIC, CATEGORICAL)
        settings = {"random_state": 42, "deterministic": True, "force_row_wise": True, "n_jobs": 1,
                    "verbose": -1, **params}
        return Pipeline([("prepare", prepare), ("model", lgb.LGBMClassifier(**settings))])
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {candidate.kind!r}.")


def train_candidate(candidate: Candidate, train: pd.DataFrame) -> Pipeline:
    """``candidate`` fitted on ``train`` (a ``training_frames`` frame). Deterministic: the same rows give the
    same model."""
    pipeline = build_pipeline(candidate)
    # LightGBM splits the category codes as categories (not as ordered numbers) when told which they are
    fit_params = {"model__categorical_feature": CATEGORICAL} if candidate.kind == "lightgbm" else {}
    return pipeline.fit(train[FEATURES], train[LABEL], **fit_params)


def delay_probability(output: Any) -> np.ndarray:
    """P(late) per flight from a model's output: the second column of ``predict_proba`` (what the logged
    model's pyfunc ``predict`` returns), or a single column / vector of probabilities as it is."""
    from helpers.registry import positive_scores

    return positive_scores(output)


def signature() -> ModelSignature:
    """The model's contract: every ``FEATURES`` column, by name, is required (a weather value may be missing,
    the column may not) — ``SCHEDULE`` as long integers, ``WEATHER`` as doubles, ``CATEGORICAL`` as
    strings — and the output is two probabilities per flight (on time, late)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec("long", c) for c in SCHEDULE] + [ColSpec("double", c) for c in WEATHER]
                    + [ColSpec("string", c) for c in CATEGORICAL])
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))]))


def log_candidate(model: Pipeline, candidate: Candidate, train: pd.DataFrame,
                  validation: pd.DataFrame | None = None, run_name: str | None = None, scale: str = "default",
                  months: Sequence[int] = TRAINING_MONTHS, model_name: str = MODEL_NAME) -> ModelInfo:
    """Log a fitted candidate as one MLflow run of the active experiment: its settings, its validation metrics
    (when ``validation`` is given), lineage tags (code version, dataset checksums — ``helpers.registry``),
    the training data as an input, and the model (scikit-learn flavour, skops format, pyfunc = predict_proba,
    named-column signature, input example, pinned requirements). ``months`` records the training window;
    ``model_name``, the registered model the candidate is meant for, becomes the run's ``model_name`` tag, so
    ``tags.model_name = '…'`` finds every candidate trained for that model.
    Returns the ``ModelInfo``; register it with ``helpers.registry.register``."""
    import mlflow

    from helpers import registry
    from helpers.tracking import log_dataset, pinned_requirements

    example = train[FEATURES].head(5)
    with mlflow.start_run(run_name=run_name or f"{candidate.kind} candidate"):
        mlflow.log_params({"kind": candidate.kind, **{k: v for k, v in candidate.params.items()},
                           "training_months": ",".join(str(m) for m in months), "scale": scale,
                           "late_minutes": LATE_MINUTES, "features": len(FEATURES)})
        mlflow.set_tags({**registry.lineage_tags(DATASETS), "model_name": model_name,
                         "candidate": candidate.description or candidate.kind})
        log_dataset(train[FEATURES + [LABEL]], name="flights-train", targets=LABEL)
        if validation is not None:
            scores = delay_probability(model.predict_proba(validation[FEATURES]))
            mlflow.log_metrics(registry.classification_metrics(validation[LABEL].to_numpy(), scores))
        return mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature(),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=pinned_requirements(*REQUIREMENTS),
        )


def ensure_champion(spark: SparkSession, scale: str = "default", name: str = MODEL_NAME,
                    quiet: bool = False) -> ModelVersion:
    """The registered model's ``champion`` version — after training, logging and registering ``REFERENCE``
    (in the active MLflow experiment) when the registry has none. Safe to call at the top of every
    deployment notebook, in any order: it trains only once. Prints one line saying which case it was
    (``quiet=True`` prints nothing: the line differs between a fresh store and one where notebook 18 ran,
    and so does the champion's version number — print ``champion.description`` in a notebook instead).

    Call it after ``helpers.start(notebook, experiment=True)``, which points MLflow at the curriculum's
    store."""
    import mlflow

    from helpers import registry
    from helpers.tracking import tracking_uri

    if mlflow.get_tracking_uri() != tracking_uri():
        raise RuntimeError("MLflow is not pointed at the curriculum's tracking store: start the notebook "
                           "with helpers.start(name, experiment=True) before calling ensure_champion.")

    existing = registry.champion(name)
    if existing is not None:
        if not quiet:
            print(f"registered model {name!r}: champion found, nothing to train")
        return existing
    train, validation = training_frames(spark, scale)
    model = train_candidate(REFERENCE, train)
    info = log_candidate(model, REFERENCE, train, validation,
                         run_name=f"{name} reference (ensure_champion)", scale=scale, model_name=name)
    # the same description and tags as notebook 18 gives this model, so a chapter may print them either way
    version = registry.register(info, name, description=REFERENCE.description, tags={"algorithm": "LightGBM"})
    decision = registry.gate(name, version.version, validation, features=FEATURES, label=LABEL, log_run=False)
    if not decision.promoted:
        raise RuntimeError(f"The reference model was refused by the gate: {decision.reason}")
    if not quiet:
        print(f"registered model {name!r} had no champion: trained the reference model and registered it "
              "as champion")
    return registry.champion(name)
