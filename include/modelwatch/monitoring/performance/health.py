"""Model health: the worst of drift, performance, data quality and age."""

from __future__ import annotations

import math
from dataclasses import dataclass

# --------------------------------------------------------------------------- model health


@dataclass(frozen=True)
class HealthThresholds:
    """Limits for ``health_status`` (a value equal to a limit triggers it for drift;
    the others trigger strictly above the limit).

    drift_warning=0.10, drift_critical=0.25 (drift score, e.g. max PSI);
    perf_drop_warning=0.05 (relative drop below baseline, 0.05 = 5 %);
    perf_drop_critical=None (disabled: a significant drop is signalled by
    ``perf_degraded``); dq_failures_warning=0 (any failure warns),
    dq_failures_critical=None (disabled); age_warning_days=30,
    age_critical_days=90.
    """

    drift_warning: float = 0.10
    drift_critical: float = 0.25
    perf_drop_warning: float = 0.05
    perf_drop_critical: float | None = None
    dq_failures_warning: int = 0
    dq_failures_critical: int | None = None
    age_warning_days: int = 30
    age_critical_days: int = 90


_SEVERITY = {"healthy": 0, "warning": 1, "critical": 2}


def health_status(
    drift_score: float | None,
    perf_degraded: bool | None,
    perf_rel_drop: float | None,
    dq_failures: int,
    model_age_days: int,
    thresholds: HealthThresholds = HealthThresholds(),
) -> tuple[str, list[str]]:
    """Overall model health: the worst of the individual signals.

    * drift_score >= drift_critical -> critical; >= drift_warning -> warning
    * perf_degraded True (bootstrap CI wholly below tolerated baseline) -> critical
    * perf_rel_drop (positive = live below baseline, relative) > perf_drop_critical
      -> critical (if set); > perf_drop_warning -> warning
    * dq_failures > dq_failures_critical -> critical (if set); > dq_failures_warning -> warning
    * model_age_days > age_critical_days -> critical; > age_warning_days -> warning

    ``None`` inputs are not evaluated. Returns ``(status, reasons)`` with status
    in healthy | warning | critical and one human-readable reason per
    triggered signal (empty for healthy).
    """
    t = thresholds
    found: list[tuple[str, str]] = []
    if drift_score is not None and math.isfinite(drift_score):
        if drift_score >= t.drift_critical:
            found.append(("critical", f"drift score {drift_score:.3f} >= {t.drift_critical:g}"))
        elif drift_score >= t.drift_warning:
            found.append(("warning", f"drift score {drift_score:.3f} >= {t.drift_warning:g}"))
    if perf_degraded:
        found.append(("critical", "performance degraded: CI below tolerated baseline"))
    if perf_rel_drop is not None and math.isfinite(perf_rel_drop):
        if t.perf_drop_critical is not None and perf_rel_drop > t.perf_drop_critical:
            found.append(("critical", f"performance {perf_rel_drop:.1%} below baseline (> {t.perf_drop_critical:.0%})"))
        elif perf_rel_drop > t.perf_drop_warning:
            found.append(("warning", f"performance {perf_rel_drop:.1%} below baseline (> {t.perf_drop_warning:.0%})"))
    if t.dq_failures_critical is not None and dq_failures > t.dq_failures_critical:
        found.append(("critical", f"{dq_failures} data-quality failures (> {t.dq_failures_critical})"))
    elif dq_failures > t.dq_failures_warning:
        found.append(("warning", f"{dq_failures} data-quality failure(s)"))
    if model_age_days > t.age_critical_days:
        found.append(("critical", f"model is {model_age_days} days old (> {t.age_critical_days})"))
    elif model_age_days > t.age_warning_days:
        found.append(("warning", f"model is {model_age_days} days old (> {t.age_warning_days})"))
    status = max((s for s, _ in found), key=_SEVERITY.__getitem__, default="healthy")
    return status, [f"{s}: {msg}" for s, msg in found]


HEALTH_CODES: dict[str, int] = dict(_SEVERITY)
