"""Trigger forms and what a manual run asked for, shared by the ``retrain_gated`` and ``rollback_model`` tasks.

The form of ``retrain_gated`` (:func:`retrain_params`), its choices and quick-run defaults; reading a run's
request (form params overridden by conf); refusing a bad one. Light imports only: DAG files import this at
parse time.
"""

from __future__ import annotations

import json
from typing import Any

from include.modelwatch import defaults

ALGORITHMS = ["lightgbm", "xgboost"]
RETRAIN_MODES = ("full", "incremental")
DEPLOY_ALIASES = ("champion", "challenger")
#: Quick-run knobs (tests, demos) and their defaults.
DEFAULTS: dict[str, Any] = {
    "eval_sessions": 126,
    "min_eval_sessions": 40,
    "embargo": 5,
    "num_boost_round": 150,
    "shuffle_labels": False,
    "train_years": 8,
}


def request(context: dict[str, Any]) -> dict[str, Any]:
    """What the run was asked to do: the trigger form's params, overridden by the run's conf (None = unset)."""
    out: dict[str, Any] = {}
    conf = (context["dag_run"].conf or {}) if context.get("dag_run") else {}
    for source in (context.get("params") or {}, conf):
        out.update({k: v for k, v in dict(source).items() if v is not None})
    return out


def settings(context: dict[str, Any]) -> dict[str, Any]:
    """The quick-run knobs of the request, defaults filled in."""
    req = request(context)
    return {k: req.get(k, v) for k, v in DEFAULTS.items()}


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as plain JSON values (dates as text) for XCom."""
    return json.loads(json.dumps(row, default=str))


def refuse(message: str) -> None:
    """Fail the task at once: a bad request does not get better on retry."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(message)


def optional_int(title: str, minimum: int, description: str) -> Any:
    """An optional integer field of a trigger form (empty: the task's default)."""
    from airflow.sdk import Param

    return Param(None, type=["null", "integer"], minimum=minimum, title=title, description=description)


def model_field(description: str) -> Any:
    """The model field of a trigger form (empty allowed): the native models are suggested, any registered model
    (an external one too) may be typed."""
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        examples=sorted(defaults.NATIVE_MODELS),
        title="Model",
        description=description,
    )


def reason_field(description: str) -> Any:
    """The reason of a trigger form: optional in the schema (an automatic run has none) but never blank."""
    from airflow.sdk import Param

    return Param(None, type=["null", "string"], minLength=1, title="Reason", description=description)


def _knob(name: str, minimum: int, what: str) -> Any:
    title = name.replace("_", " ").capitalize()
    return optional_int(title, minimum, f"optional quick-run knob: {what} (empty: {DEFAULTS[name]})")


def retrain_params() -> dict[str, Any]:
    """The trigger form of ``retrain_gated``: every field a manual run needs, none a JSON key to know."""
    from airflow.sdk import Param

    return {
        "model_name": model_field("retrain this model now (manual trigger); empty: only claim pending triggers"),
        "reason": reason_field("why (required when a model is chosen; recorded on the trigger)"),
        "retrain_mode": Param(
            "full",
            type="string",
            enum=list(RETRAIN_MODES),
            title="Retrain mode",
            description="full: retrain from scratch; incremental: continue the champion",
        ),
        "deploy_alias": Param(
            "champion",
            type="string",
            enum=list(DEPLOY_ALIASES),
            title="Deploy as",
            description="champion: replace it; challenger: deploy for an A/B test",
        ),
        "num_boost_round": _knob("num_boost_round", 1, "boosting rounds"),
        "eval_sessions": _knob("eval_sessions", 1, "sessions of the shared out-of-sample period"),
        "min_eval_sessions": _knob(
            "min_eval_sessions", 1, "fewest out-of-sample sessions after the champion's training end"
        ),
        "embargo": _knob("embargo", 0, "sessions between training and out-of-sample (plus the label horizon)"),
        "train_years": _knob("train_years", 1, "years of training data"),
        "shuffle_labels": Param(
            False,
            type="boolean",
            title="Shuffle labels",
            description="sanity check: train on permuted labels (the gates must reject it)",
        ),
    }


def rollback_params() -> dict[str, Any]:
    """The trigger form of ``rollback_model``."""
    return {
        "model_name": model_field("the model to roll back (empty: check every model with a champion)"),
        "target_version": optional_int(
            "Target version", 1, "restore this version as champion (empty: automatic check only)"
        ),
        "reason": reason_field("why (required with a target version; recorded in the alias history)"),
        "period_days": optional_int(
            "Period (days)", 1, "automatic check: days compared before / after the last change (empty: 30)"
        ),
        "min_days": optional_int(
            "Minimum days", 1, "automatic check: days of live evidence needed on each side (empty: 10)"
        ),
    }
