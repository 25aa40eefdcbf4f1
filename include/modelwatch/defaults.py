"""The one place for ModelWatch's settings defaults (Airflow-free).

Every Airflow Variable the tasks read has its default here, and only here:
tasks call ``Variable.get(name, default=defaults.text(name))`` and parse the
text with :func:`parse`. ``airflow_settings.yaml`` lists the same variables
so that they show up (editable) in the UI; ``tests/unit/test_defaults.py``
asserts that its values equal :data:`VARIABLES`, so the two cannot drift apart.

The model artifact directory is *not* a Variable: every worker must reach the
same files, so it is the environment variable ``MODELWATCH_ARTIFACT_DIR``
(:func:`artifact_dir`), set where the worker is deployed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

#: The monitored model (also the bootstrap's model name).
MODEL_NAME = "spx_signal"
#: Symbols scored by ``score_signals`` (the bootstrap champion is trained on both).
SYMBOLS: tuple[str, ...] = ("SPX", "IXIC")
#: Relative drop of a metric below the baseline that counts as degraded.
PERFORMANCE_TOLERANCE = 0.10
#: A champion older than this (days) is reported as stale.
MAX_MODEL_AGE_DAYS = 30

#: Environment variable of the model artifact directory, and its default.
ARTIFACT_DIR_ENV = "MODELWATCH_ARTIFACT_DIR"
ARTIFACT_DIR_DEFAULT = ".modelwatch/artifacts"

#: Airflow Variable name -> default value (Python value; :func:`text` gives the stored text).
VARIABLES: dict[str, Any] = {
    "modelwatch_model_name": MODEL_NAME,
    "modelwatch_symbols": list(SYMBOLS),
    "modelwatch_drift_overrides": {},
    "modelwatch_performance_tolerance": PERFORMANCE_TOLERANCE,
    "modelwatch_max_model_age_days": MAX_MODEL_AGE_DAYS,
    "modelwatch_require_approval": {},
    "modelwatch_gate_overrides": {},
    "modelwatch_approvers": {},
    "modelwatch_ab_first": {},
}

_JSON_OBJECTS = (
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
        if name == "modelwatch_model_name":
            return raw
        if name == "modelwatch_symbols":
            value = json.loads(raw)
            if not isinstance(value, list) or not value or not all(isinstance(s, str) and s.strip() for s in value):
                raise ValueError("expected a non-empty JSON list of symbol names")
            return [s.strip() for s in value]
        if name == "modelwatch_performance_tolerance":
            return float(raw)
        if name == "modelwatch_max_model_age_days":
            return int(raw)
        value = json.loads(raw)
        if name in _JSON_OBJECTS and not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        if name == "modelwatch_approvers":
            from include.modelwatch.training import approval

            approval.parse(value)  # raises naming the model and the bad entry
        return value
    except ValueError as exc:
        raise ValueError(f"variable {name} = {raw!r}: {exc}") from None


def artifact_dir(env: Mapping[str, str] | None = None) -> str:
    """The model artifact directory: ``$MODELWATCH_ARTIFACT_DIR`` or :data:`ARTIFACT_DIR_DEFAULT`."""
    env = os.environ if env is None else env
    return env.get(ARTIFACT_DIR_ENV) or ARTIFACT_DIR_DEFAULT
