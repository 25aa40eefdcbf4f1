"""What ``performance_daily`` does with a model's ``performance`` alert: a pure plan.

Only the champion's evidence moves the alert (a challenger that is worse than
its backtest must not open or resolve the champion's alert), and an open alert
is resolved only by evidence about the version it is about. No database, no
Airflow: the task reads the open alert, calls :func:`alert_plan`, writes, logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from include.modelwatch.monitoring.performance.compare import AlertDecision

#: The alias whose evidence counts for the model's ``performance`` alert.
CHAMPION = "champion"


@dataclass(frozen=True)
class PerformanceAlertPlan:
    """``action``: 'raise' | 'resolve' | 'none'. For 'raise': ``severity``, ``title``,
    ``message``, ``score``, ``evidence``; for 'resolve': ``resolution``. ``outcome``: what the
    task reports when nothing is written ('none', 'unchanged (undecidable)', ...)."""

    action: str  # 'raise' | 'resolve' | 'none'
    outcome: str
    severity: str | None = None
    title: str | None = None
    message: str | None = None
    score: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    resolution: str | None = None


def counts_for_alert(aliases: Sequence[str] | None) -> bool:
    """Whether a version's evidence moves the alert: it is the champion (a version listed
    without aliases is taken as the champion)."""
    return CHAMPION in (aliases or [CHAMPION])


def alert_plan(
    decision: AlertDecision,
    primary: Mapping[str, Any],
    aliases: Sequence[str] | None,
    open_alert: tuple[bool, int | None],
    version: int,
    label: str,
    comparison_ids: Sequence[int] = (),
) -> PerformanceAlertPlan:
    """The ``performance`` alert of one version after a window.

    ``decision`` is :func:`degradation_decision` of the ``primary`` comparison; ``open_alert``
    is (is a performance alert of the model open, the version it is about).

    * not the champion -> 'none';
    * decision 'raise' -> 'raise' with the decision's severity and score;
    * decision 'resolve' -> 'resolve' when an alert is open about this version (or about no
      version), else 'none';
    * decision 'keep' (undecidable) -> 'none', reported as unchanged.
    """
    if not counts_for_alert(aliases):
        return PerformanceAlertPlan("none", f"none ({label} is not the champion)")
    if decision.action == "raise":
        score = decision.score
        return PerformanceAlertPlan(
            "raise",
            f"({decision.severity}, performance_drop {_fmt(score)})",
            severity=decision.severity,
            title=f"{label}: live {primary['metric']} below backtest",
            message=decision.reason,
            score=score,
            evidence={
                "comparison_ids": list(comparison_ids),
                "metric": primary["metric"],
                "ci": [primary["ci_low"], primary["ci_high"]],
                "live": primary["live"],
                "baseline": primary["baseline"],
                "tolerance_rel": primary["tolerance_rel"],
                "n_days": primary["n_days"],
                "block": primary["block"],
            },
        )
    if decision.action == "resolve":
        is_open, about = open_alert
        if is_open and about in (None, version):
            return PerformanceAlertPlan("resolve", "resolved", resolution=decision.reason)
        return PerformanceAlertPlan("none", "none")
    return PerformanceAlertPlan("none", "unchanged (undecidable)")


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.3f}"
