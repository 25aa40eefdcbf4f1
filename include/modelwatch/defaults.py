"""The one place for ModelWatch's settings defaults (Airflow-free).

Every Airflow Variable the tasks read has its default here, and only here:
tasks call ``Variable.get(name, default=defaults.text(name))`` and parse the
text with :func:`parse`. ``airflow_settings.yaml`` lists the same variables
so that they show up (editable) in the UI; ``tests/unit/test_defaults.py``
asserts that its values equal :data:`VARIABLES`, so the two cannot drift apart.

The model artifact store is *not* a Variable: every worker must reach the
same artifacts, so it is the environment variable ``MODELWATCH_ARTIFACT_DIR``
(:func:`artifact_dir`), set where the worker is deployed: a local folder or an
fsspec URL (``s3://conn_id@bucket/prefix``...; ``registry/artifacts.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

#: The native direction model (BUY/HOLD/SELL signals) and the native volatility-regime model (LOW/HIGH).
MODEL_NAME = "spx_signal"
VOL_MODEL_NAME = "spx_vol_regime"
#: The models ModelWatch trains itself: name -> what it predicts (its target, ``training/targets.py``) and the
#: symbols it is trained on and scores (a per-model setting). Bootstrap trains each; ``score_signals`` scores each
#: one's symbols; ``retrain_gated`` retrains it on them.
NATIVE_MODELS: dict[str, dict[str, Any]] = {
    MODEL_NAME: {"target": "direction", "symbols": ["SPX", "IXIC"]},
    VOL_MODEL_NAME: {"target": "vol_regime", "symbols": ["SPX", "IXIC"]},
}
#: Where daily bars come from: ``arch`` (the demo data, real S&P 500 / NASDAQ 1999-2018) or ``folder:/path``
#: (a CSV or Parquet file of OHLCV bars per symbol, ``include/modelwatch/data/sources.py``).
MARKET_SOURCE = "arch"
#: Relative drop of a metric below the baseline that counts as degraded.
PERFORMANCE_TOLERANCE = 0.10
#: A champion older than this (days) is reported as stale.
MAX_MODEL_AGE_DAYS = 30

#: Retention (the ``maintenance_daily`` DAG, ``include/modelwatch/ops/retention.py``), in days before the data
#: interval's end: hourly ``drift_results`` rows older than this are rolled up to one row per feature, test and UTC day;
#: ``predictions.features`` snapshots of predictions with a recorded outcome are emptied (the predictions are kept);
#: settled (sent or skipped) ``notifications`` are deleted; drift-window ``data_quality_results`` are deleted.
RETENTION_DRIFT_RESULTS_DAYS = 90
RETENTION_PREDICTION_FEATURES_DAYS = 365
RETENTION_NOTIFICATIONS_DAYS = 180
RETENTION_DATA_QUALITY_DAYS = 365

#: Environment variable of the model artifact store (a folder or an fsspec URL), and its default (a local folder).
ARTIFACT_DIR_ENV = "MODELWATCH_ARTIFACT_DIR"
ARTIFACT_DIR_DEFAULT = ".modelwatch/artifacts"

#: Airflow Variable name -> default value (Python value; :func:`text` gives the stored text).
VARIABLES: dict[str, Any] = {
    "modelwatch_native_models": NATIVE_MODELS,
    "modelwatch_market_source": MARKET_SOURCE,
    "modelwatch_drift_overrides": {},
    "modelwatch_performance_tolerance": PERFORMANCE_TOLERANCE,
    "modelwatch_max_model_age_days": MAX_MODEL_AGE_DAYS,
    "modelwatch_require_approval": {},
    "modelwatch_gate_overrides": {},
    "modelwatch_approvers": {},
    "modelwatch_ab_first": {},
    "modelwatch_retention_drift_results_days": RETENTION_DRIFT_RESULTS_DAYS,
    "modelwatch_retention_prediction_features_days": RETENTION_PREDICTION_FEATURES_DAYS,
    "modelwatch_retention_notifications_days": RETENTION_NOTIFICATIONS_DAYS,
    "modelwatch_retention_data_quality_days": RETENTION_DATA_QUALITY_DAYS,
}

#: Variables holding a number of days (a whole number, at least 1).
_DAYS = (
    "modelwatch_retention_drift_results_days",
    "modelwatch_retention_prediction_features_days",
    "modelwatch_retention_notifications_days",
    "modelwatch_retention_data_quality_days",
)

_JSON_OBJECTS = (
    "modelwatch_native_models",
    "modelwatch_drift_overrides",
    "modelwatch_require_approval",
    "modelwatch_gate_overrides",
    "modelwatch_approvers",
    "modelwatch_ab_first",
)


def text(name: str) -> str:
    """The default of Variable ``name`` as the text Airflow stores (JSON for lists/objects)."""
    if name not in VARIABLES:
        raise KeyError(f"unknown ModelWatch variable {name!r}; known: {sorted(VARIABLES)}")
    value = VARIABLES[name]
    return value if isinstance(value, str) else json.dumps(value)


def parse(name: str, raw: str | None) -> Any:
    """Variable ``name``'s text as its typed value; empty/None means the default.

    Raises ``ValueError`` naming the variable and the bad value.
    """
    if name not in VARIABLES:
        raise KeyError(f"unknown ModelWatch variable {name!r}; known: {sorted(VARIABLES)}")
    raw = text(name) if raw is None or not str(raw).strip() else str(raw).strip()
    try:
        if name == "modelwatch_market_source":
            from include.modelwatch.data import sources

            sources.source_from_spec(raw)  # the one check of a source spec (raises naming the problem)
            return raw
        if name == "modelwatch_native_models":
            return _native_models(json.loads(raw))
        if name == "modelwatch_performance_tolerance":
            return float(raw)
        if name == "modelwatch_max_model_age_days":
            return int(raw)
        if name in _DAYS:
            days = int(raw)
            if days < 1:
                raise ValueError("expected a whole number of days, at least 1")
            return days
        value = json.loads(raw)
        if name in _JSON_OBJECTS and not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        if name == "modelwatch_approvers":
            from include.modelwatch.training import approval

            approval.parse(value)  # raises naming the model and the bad entry
        return value
    except ValueError as exc:
        raise ValueError(f"variable {name} = {raw!r}: {exc}") from None


def _native_models(value: Any) -> dict[str, dict[str, Any]]:
    """``{model: {"target": name, "symbols": [..]}}`` checked: a ValueError names the model and the field."""
    if not isinstance(value, dict) or not value:
        raise ValueError('expected a JSON object {"model": {"target": "direction", "symbols": ["SPX"]}, ...}')
    out: dict[str, dict[str, Any]] = {}
    for model, conf in value.items():
        if not isinstance(conf, dict) or set(conf) - {"target", "symbols"}:
            raise ValueError(f'{model}: expected {{"target": ..., "symbols": [...]}}, got {conf!r}')
        target = conf.get("target", "direction")
        if target not in TARGET_NAMES:
            raise ValueError(f"{model}: unknown target {target!r}; expected one of {list(TARGET_NAMES)}")
        symbols = conf.get("symbols")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(x, str) and x.strip() for x in symbols):
            raise ValueError(f"{model}: symbols must be a non-empty list of symbol names, got {symbols!r}")
        out[str(model)] = {"target": target, "symbols": [x.strip() for x in symbols]}
    return out


#: The targets a native model can have (``include/modelwatch/training/targets.py`` ``TARGETS``; a test keeps the two
#: equal).
TARGET_NAMES: tuple[str, ...] = ("direction", "vol_regime")


def artifact_dir(env: Mapping[str, str] | None = None) -> str:
    """The model artifact store: ``$MODELWATCH_ARTIFACT_DIR`` or :data:`ARTIFACT_DIR_DEFAULT`, as given: a local
    folder or an fsspec URL (``file:///srv/artifacts``, ``s3://aws_default@bucket/prefix``, ``gs://...``);
    ``registry.artifacts.store_url`` turns a folder into its ``file://`` URL."""
    env = os.environ if env is None else env
    return env.get(ARTIFACT_DIR_ENV) or ARTIFACT_DIR_DEFAULT
