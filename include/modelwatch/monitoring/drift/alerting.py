"""Pure decisions of the drift task: how a window is read, how its result rows
are labelled, the window's verdict (feature and concept drift together) and
what happens to the model's ``drift`` alert.

No database, no Airflow: the task loads, calls these, writes the plan, logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.modelwatch.monitoring.drift.config import DriftConfig
from include.modelwatch.monitoring.drift.hysteresis import HysteresisResult
from include.modelwatch.monitoring.drift.results import FeatureResult, WindowResult
from include.modelwatch.monitoring.drift.stats import fmt_number
from include.modelwatch.vocabulary import PROB_PREFIX

#: Rows of a large (binned-mode) window that the data-quality checks read.
DQ_SAMPLE_ROWS = 50_000
#: Drifted features named in the alert (most severe first).
TOP_FEATURES = 5
#: Result "features" that describe the model's output rather than its input.
PREDICTION_COLUMNS = ("predicted_label", "confidence")


@dataclass(frozen=True)
class WindowMode:
    """How a window of ``n`` rows is evaluated: ``binned`` (counts in PostgreSQL, checks on
    every ``every``-th row) or ``rows`` (the whole frame, every row checked)."""

    mode: str  # 'binned' | 'rows'
    every: int

    @property
    def binned(self) -> bool:
        return self.mode == "binned"


def window_mode(n: int, config: DriftConfig, sample_rows: int = DQ_SAMPLE_ROWS) -> WindowMode:
    """``binned`` when the window has at least ``config.sql_counts_min_rows`` rows; then the
    data-quality checks read a sample of about ``sample_rows`` rows (every ``n // sample_rows``-th)."""
    if n < 0:
        raise ValueError(f"n: the window's row count must be >= 0, got {n}")
    if n >= config.sql_counts_min_rows:
        return WindowMode("binned", max(1, n // sample_rows))
    return WindowMode("rows", 1)


def result_kind(feature: str) -> str:
    """``drift_results.kind`` of a result row: 'prediction' for the model's output columns
    (predicted label, confidence, class probabilities), else 'feature'."""
    return "prediction" if feature in PREDICTION_COLUMNS or feature.startswith(PROB_PREFIX) else "feature"


@dataclass(frozen=True)
class Verdict:
    """The window's verdict: ``drifted`` when the features or any concept test drifted;
    ``n_drifted`` counts drifted features and drifted concept tests; ``top``: the most
    severe drifted features (at most :data:`TOP_FEATURES`)."""

    drifted: bool
    n_drifted: int
    top: tuple[FeatureResult, ...]


def window_verdict(result: WindowResult, concept: Sequence[Mapping[str, Any]]) -> Verdict:
    """Feature drift and concept drift merged into one verdict (what the hysteresis reads)."""
    top = [f for f in sorted(result.features, key=lambda f: -f.severity) if f.drifted][:TOP_FEATURES]
    return Verdict(
        drifted=bool(result.drifted or any(r["drifted"] for r in concept)),
        n_drifted=result.n_drifted + sum(bool(r["drifted"]) for r in concept),
        top=tuple(top),
    )


@dataclass(frozen=True)
class AlertPlan:
    """What to do with the model's ``drift`` alert after a window.

    ``action``: 'raise' (open or update it), 'resolve' or 'none'. ``severity``, ``title``,
    ``message``, ``score`` and ``evidence`` are set for 'raise'; ``resolution`` for 'resolve'.
    ``drifted`` / ``n_drifted`` are the window's verdict (see :func:`window_verdict`).
    """

    action: str  # 'raise' | 'resolve' | 'none'
    drifted: bool
    n_drifted: int
    severity: str | None = None
    title: str | None = None
    message: str | None = None
    score: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    resolution: str | None = None


def alert_message(top: Sequence[FeatureResult]) -> str:
    """One clause per top feature with a PSI: normalized Wasserstein, PSI, BH-adjusted p."""
    return (
        "; ".join(
            f"{f.feature} W/sd={fmt_number(f.wasserstein_norm, '.2f')} psi={f.psi:.3f} p_adj={f.p_adjusted:.2g}"
            for f in top
            if f.psi is not None
        )
        or "drift persists"
    )


def alert_plan(
    result: WindowResult,
    concept: Sequence[Mapping[str, Any]],
    hysteresis: HysteresisResult,
    config: DriftConfig,
    label: str,
    window_start: datetime,
) -> AlertPlan:
    """The ``drift`` alert of a window from its result, concept rows and hysteresis step.

    * state 'firing' (newly fired or still firing) -> 'raise', severity 'critical' when the
      window's level is critical, else 'warning'; the score is the drift score;
    * transition 'resolve' -> 'resolve' after ``config.resolve_k`` clean windows;
    * otherwise -> 'none'.
    """
    verdict = window_verdict(result, concept)
    if hysteresis.state == "firing":
        return AlertPlan(
            "raise",
            verdict.drifted,
            verdict.n_drifted,
            severity="critical" if result.level == "critical" else "warning",
            title=f"{label}: drift score {result.drift_score:.2f} ({result.level})",
            message=alert_message(verdict.top),
            score=result.drift_score,
            evidence={"drift_windows": [str(window_start)], "top_features": [f.feature for f in verdict.top]},
        )
    if hysteresis.transition == "resolve":
        return AlertPlan(
            "resolve",
            verdict.drifted,
            verdict.n_drifted,
            resolution=f"{config.resolve_k} consecutive clean windows",
        )
    return AlertPlan("none", verdict.drifted, verdict.n_drifted)
