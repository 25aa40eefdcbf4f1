"""A model version's evidence: walk-forward baseline, drift reference profile, and a retrained
candidate gated against the champion on the same out-of-sample rows (no Airflow, no database).

Used by the bootstrap (the first champion) and by ``retrain_gated`` (every candidate), so both
register versions with the same kind of baseline and reference profile. The ``train_candidate`` task
of ``retrain_gated`` is a thin shell around :func:`train_for_trigger` and the record builders below
(job params, registration fields, job metrics, XCom result, summary line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import pandas as pd

from include.modelwatch.metrics import get_metrics
from include.modelwatch.monitoring import drift
from include.modelwatch.training import dataset, gates, targets, training
from include.modelwatch.vocabulary import CLASSES, finite_values, prob_columns

if TYPE_CHECKING:
    from include.modelwatch.registry import ModelVersion

# Calendar features are fixed by the window itself (a one-month window has one
# `month`), so comparing their distribution with the reference says nothing.
NOT_DRIFT_MONITORED = ("day_of_week", "month")
#: Gates in the order they run (keys of the ``modelwatch_gate_overrides`` variable).
GATE_NAMES = ("performance", "business", "calibration", "stability", "data_quality")


def prediction_frame(proba: np.ndarray, classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """Probability columns (``p_<class>``), confidence and predicted label: the prediction side of drift."""
    out = pd.DataFrame(proba, columns=prob_columns(classes))
    out["confidence"] = proba.max(axis=1)
    out["predicted_label"] = np.asarray(list(classes), dtype=object)[proba.argmax(axis=1)]
    return out


def reference_profile(
    X: pd.DataFrame,
    proba: np.ndarray,
    importance: Mapping[str, float],
    prediction_proba: np.ndarray | None = None,
    *,
    classes: Sequence[str] = CLASSES,
    categorical: Sequence[str] = (),
) -> dict[str, Any]:
    """Drift reference of a model version, rows in time order.

    Features come from the training rows ``X`` (``categorical`` names the category-valued ones). The
    prediction side (class probabilities, confidence, predicted label) comes from
    ``prediction_proba`` when given: out-of-sample (walk-forward) predictions,
    which is what live predictions look like; a model's predictions on its own
    training rows are sharper and would make every live window look like
    prediction drift. Without it, ``proba`` (predictions on ``X``) is used.
    An external model's reference frame is its validation period's live-like
    predictions, so it passes them as ``proba``. Features get 80% of the drift
    score's weight (by ``importance``, uniform when it is empty), the prediction side 20%.
    """
    monitored = [c for c in X.columns if c not in NOT_DRIFT_MONITORED]
    imp = {c: float(importance.get(c, 0.0)) for c in monitored}
    if not any(imp.values()):
        imp = dict.fromkeys(monitored, 1.0)
    total = sum(imp.values()) or 1.0
    # prediction columns get a fixed share so the model score also reflects output drift
    weights = {c: 0.8 * v / total for c, v in imp.items()}
    side = [*prob_columns(classes), "confidence", "predicted_label"]
    for c in side:
        weights[c] = 0.2 / len(side)
    numeric = [c for c in monitored if c not in categorical]
    feat = drift.build_reference_profile(
        X[monitored].reset_index(drop=True),
        numeric=numeric,
        categorical=[c for c in monitored if c in categorical],
        importance=None,
    )
    pred = drift.build_reference_profile(
        prediction_frame(proba if prediction_proba is None else prediction_proba, classes),
        numeric=[*prob_columns(classes), "confidence"],
        categorical=["predicted_label"],
        importance=None,
    )
    profile = {
        **feat,
        "numeric": {**feat["numeric"], **pred["numeric"]},
        "categorical": {**feat["categorical"], **pred["categorical"]},
        "prediction_rows": pred["n_rows"],
    }
    profile["importance"] = drift.normalize_importance([*profile["numeric"], *profile["categorical"]], weights)
    return profile


def walk_forward_baseline(
    wf: training.WalkForwardResult, rows: pd.DataFrame, target: targets.Target = targets.TARGETS[targets.DIRECTION]
) -> dict[str, float | None]:
    """Backtest baseline of a version: classification metrics of the out-of-fold predictions, and trading metrics
    when the target's predictions are trades (finite numbers, else None). ``rows`` is the training frame the folds
    were cut from."""
    oof = wf.oof
    held = rows.loc[oof.index]
    cls = training.classification_metrics(
        oof["y_true"].to_numpy(), oof["y_pred"].to_numpy(), wf.proba, classes=target.classes
    )
    trade: dict[str, Any] = {}
    if target.trading:
        trade = training.trading_metrics(
            oof["y_pred"].to_numpy(), held["r_fwd"].to_numpy(), held["threshold"].to_numpy(), held["date"].to_numpy()
        )
    numbers = {k: v for k, v in {**cls, **trade}.items() if not isinstance(v, (list, dict))}
    return finite_values(numbers)


@dataclass
class CandidateEvaluation:
    """A trained candidate and the evidence it is judged and registered with."""

    model: Any
    results: list[gates.GateResult]
    summary: gates.GateSummary
    oos_accuracy: float
    oos_candidate: dict[str, float]
    oos_champion: dict[str, float]
    baseline: dict[str, float | None]
    baseline_period: tuple[Any, Any, int]  # (first date, last date, rows) of the out-of-fold predictions
    importance: dict[str, float]
    profile: dict[str, Any]


def evaluate_candidate(
    train: pd.DataFrame,
    evaluation: pd.DataFrame,
    *,
    algorithm: training.Algorithm,
    champion_model: Any,
    num_boost_round: int,
    embargo: int,
    horizon: int,
    incremental: bool,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    n_splits: int = 3,
    target: targets.Target = targets.TARGETS[targets.DIRECTION],
) -> CandidateEvaluation:
    """Train one candidate and gate it against the champion on the same out-of-sample rows.

    Purged walk-forward validation on ``train`` gives the baseline and the prediction side of the
    reference profile; the final fit continues the champion when ``incremental`` and the champion is of
    the same algorithm (warm start). ``overrides``: per-gate keyword arguments (``GATE_NAMES``). The business
    gate (trading metrics) runs only for a target whose predictions are trades.
    """
    ov = dict(overrides or {})
    unknown = sorted(set(ov) - set(GATE_NAMES))
    if unknown:
        raise ValueError(f"gate overrides name unknown gate(s) {unknown}; expected some of {list(GATE_NAMES)}")
    cols = list(target.feature_columns)
    X, y = train[cols], train["label"].astype(str).to_numpy()
    weight = train["weight"].to_numpy() if "weight" in train.columns else None  # human labels (active learning)
    init = champion_model if incremental and training.model_algorithm(champion_model) == algorithm else None
    classes = target.classes
    wf = training.walk_forward_evaluate(
        X,
        y,
        train["date"],
        algorithm=algorithm,
        n_splits=n_splits,
        horizon=horizon,
        embargo=embargo,
        num_boost_round=num_boost_round,
        sample_weight=weight,
        classes=classes,
    )
    model = training.train_model(
        algorithm, X, y, init_model=init, num_boost_round=num_boost_round, sample_weight=weight, classes=classes
    )
    ye = evaluation["label"].astype(str).to_numpy()
    p_cand = training.predict_proba(model, evaluation[cols])
    p_champ = training.predict_proba(champion_model, evaluation[cols])
    lab_cand, lab_champ = training.predict_labels(p_cand, classes), training.predict_labels(p_champ, classes)

    def trading(labels: np.ndarray) -> dict[str, float]:
        if not target.trading:  # not a trade: the out-of-sample record holds accuracy only
            return {"accuracy": float(np.mean(labels == ye))}
        return training.trading_metrics(
            labels, evaluation["r_fwd"].to_numpy(), evaluation["threshold"].to_numpy(), evaluation["date"].to_numpy()
        )

    m_cand, m_champ = trading(lab_cand), trading(lab_champ)
    per_class = {str(k): int(v) for k, v in train["label"].value_counts().sort_index().items()}
    results = [gates.performance_gate(ye, lab_champ, lab_cand, **ov.get("performance", {}))]
    if target.trading:
        results.append(gates.business_gate(m_cand, m_champ, **ov.get("business", {})))
    results += [
        gates.calibration_gate(ye, p_cand, list(classes), **ov.get("calibration", {})),
        gates.stability_gate(p_champ, p_cand, **ov.get("stability", {})),
        gates.data_quality_gate(
            len(train), per_class, float(train[cols].isna().mean().mean()), **ov.get("data_quality", {})
        ),
    ]
    importance = training.feature_importance_gain(model, cols)
    held = train.loc[wf.oof.index]
    return CandidateEvaluation(
        model=model,
        results=results,
        summary=gates.run_gates(results),
        oos_accuracy=float(np.mean(lab_cand == ye)),
        oos_candidate=m_cand,
        oos_champion=m_champ,
        baseline=walk_forward_baseline(wf, train, target),
        baseline_period=(held["date"].min().date(), held["date"].max().date(), len(wf.oof)),
        importance=importance,
        profile=reference_profile(
            X, training.predict_proba(model, X), importance, prediction_proba=wf.proba, classes=classes
        ),
    )


def gate_lines(results: Sequence[gates.GateResult]) -> list[str]:
    """One readable line per gate: name, status, message."""
    return [f"gate {r.name}: {r.status}: {r.message}" for r in results]


# ------------------------------------------------------------------ one candidate of a retrain trigger


def trigger_frames(
    trigger: Mapping[str, Any],
    split: dataset.SplitSettings,
    champion: ModelVersion,
    symbols: Sequence[str] | None = None,
    source: Any = None,
) -> dataset.TrainingFrames:
    """The frames a trigger's candidates train and are gated on: the model's ``symbols`` (its setting, else the
    champion's registered ones) from the market ``source``, labelled for the champion's target, incremental from
    its training end; ``info`` also names the champion."""
    what = f"{champion.model_name} trigger {trigger.get('trigger_id')}"
    symbols = list(symbols or (champion.params or {}).get("symbols") or [])
    if not symbols:
        raise ValueError(f"{what}: no symbols: set them in the variable modelwatch_native_models")
    frames = dataset.trigger_frames(
        trigger,
        split,
        symbols=symbols,
        champion_train_end=champion.train_end,
        target=targets.target_of(champion.params, what),
        params=champion.params,
        source=source,
    )
    frames.info.update(champion_version=champion.version, champion_train_end=str(champion.train_end))
    return frames


def algorithm_named(model_name: str, algorithm: str) -> training.Algorithm:
    """``algorithm`` as a known training algorithm, else a ValueError naming the model."""
    known = list(get_args(training.Algorithm))
    if algorithm not in known:
        raise ValueError(f"{model_name}: unknown algorithm {algorithm!r}; expected one of {known}")
    return "lightgbm" if algorithm == "lightgbm" else "xgboost"


def job_params(*, num_boost_round: Any, retrain_mode: str, split: dataset.SplitSettings) -> dict[str, Any]:
    """The params a training job (and the version it registers) records: boosting rounds, mode and split."""
    return {
        "num_boost_round": int(num_boost_round),
        "retrain_mode": retrain_mode,
        "embargo": split.embargo,
        "eval_sessions": split.eval_sessions,
        "shuffle_labels": split.shuffle_labels,
    }


def train_for_trigger(
    frames: dataset.TrainingFrames,
    champion_model: Any,
    *,
    model_name: str,
    algorithm: str,
    params: Mapping[str, Any],
    split: dataset.SplitSettings,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    target: targets.Target = targets.TARGETS[targets.DIRECTION],
) -> CandidateEvaluation:
    """Train and gate the ``algorithm`` candidate of a trigger on its frames (``params`` from :func:`job_params`;
    an incremental trigger continues the champion)."""
    return evaluate_candidate(
        frames.train,
        frames.evaluation,
        algorithm=algorithm_named(model_name, algorithm),
        champion_model=champion_model,
        num_boost_round=int(params["num_boost_round"]),
        embargo=split.embargo,
        horizon=split.horizon,
        incremental=params["retrain_mode"] == "incremental",
        overrides=overrides,
        target=target,
    )


def registration(
    ev: CandidateEvaluation,
    train: pd.DataFrame,
    *,
    params: Mapping[str, Any],
    champion_params: Mapping[str, Any] | None,
    trigger_id: int,
    horizon: int,
) -> dict[str, Any]:
    """Keyword arguments of ``registry.register_version`` for a trained candidate (all but who, where and how):
    artifact, features, classes, params (the champion's, overridden by the job's), training period, dataset
    fingerprint, metrics (walk-forward baseline, out-of-sample candidate vs champion, gates), importance, profile."""
    return {
        "artifact": training.serialize_model(ev.model),
        "features": list(targets.target_of(champion_params).feature_columns),
        "classes": list(targets.target_of(champion_params).classes),
        "params": {**(champion_params or {}), **params, "trigger_id": trigger_id},
        "horizon_days": horizon,
        "train_start": train["date"].min().date(),
        "train_end": train["date"].max().date(),
        "dataset_fingerprint": dataset.fingerprint(train),
        "metrics": {
            "walk_forward": ev.baseline,
            "out_of_sample": {"candidate": ev.oos_candidate, "champion": ev.oos_champion},
            "gates": ev.summary.status,
            "train_rows": len(train),
        },
        "feature_importance": ev.importance,
        "reference_profile": ev.profile,
    }


def job_metrics(ev: CandidateEvaluation, info: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics of a succeeded training job: out-of-sample accuracy, gate status and the split's ``info``."""
    return {"oos_accuracy": ev.oos_accuracy, "gates": ev.summary.status, **info}


def job_error(exc: BaseException) -> str:
    """The error a failed training job records (type and message, at most 1,000 characters)."""
    return f"{type(exc).__name__}: {exc}"[:1000]


def candidate_result(
    ev: CandidateEvaluation, *, algorithm: str, job_id: int, version: int, champion_version: int
) -> dict[str, Any]:
    """What a trained candidate hands to the decision (``pick_candidate``, gate branch): JSON-able."""
    return {
        "algorithm": algorithm,
        "job_id": job_id,
        "version": version,
        "status": ev.summary.status,
        "failing": list(ev.summary.failing),
        "borderline": list(ev.summary.borderline),
        "oos_accuracy": ev.oos_accuracy,
        "champion_version": champion_version,
    }


def summary_line(
    ev: CandidateEvaluation, *, algorithm: str, label: str, info: Mapping[str, Any], seconds: float
) -> str:
    """The closing line of a candidate's log: accuracy, out-of-sample period, gate decision and training time."""
    return (
        f"{algorithm} candidate {label} (status candidate): out-of-sample accuracy {ev.oos_accuracy:.4f} on "
        f"{info['eval_start']}..{info['eval_end']}; gates -> {ev.summary.status} ({ev.summary.message}); "
        f"trained in {seconds:.1f} s"
    )


def record_train_time(model_name: str, algorithm: str, seconds: float) -> None:
    """``retrain.train_seconds.<model>.<algorithm>`` timer; statsd timers take milliseconds."""
    get_metrics().timing("retrain.train_seconds", seconds * 1000.0, model_name, algorithm)
