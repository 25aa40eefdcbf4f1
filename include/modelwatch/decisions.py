"""Pure branch decisions for ``@task.branch`` callables; each returns a task-id constant.

Light at import (numpy / scipy load inside the functions that need them), so
DAG files may import the constants at parse time.

The DAG files keep only the Airflow wiring; the choice itself lives here so it
can be unit-tested without Airflow. The constants are the task ids the DAGs
must use for the branch targets.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # DAG files import the task-id constants at parse time: keep this module light
    from numpy.typing import ArrayLike

    from include.modelwatch.training.gates import GateSummary

# Retrain DAG
TASK_NO_TRIGGER = "end_no_trigger"
TASK_TRAIN = "assemble_training_data"
TASK_DEPLOY = "deploy_candidate"
TASK_REJECT = "reject_candidate"
TASK_HUMAN = "request_human_approval"

# Drift / performance DAG
TASK_RECORD_EMPTY = "record_empty_window"
TASK_DQ_ALERT = "raise_data_quality_alert"
TASK_COMPUTE_DRIFT = "compute_drift"

ROLLBACK_METHODS: tuple[str, ...] = ("mannwhitney", "welch")


def choose_after_claim(claimed_trigger: Mapping[str, Any] | None) -> str:
    """TASK_NO_TRIGGER if no trigger was claimed (None or empty), else TASK_TRAIN."""
    return TASK_TRAIN if claimed_trigger else TASK_NO_TRIGGER


def choose_after_gates(summary: GateSummary, policy_requires_human: bool) -> str:
    """Any failing gate -> TASK_REJECT (even if policy wants a human); otherwise
    any borderline gate, a 'review' summary or ``policy_requires_human`` ->
    TASK_HUMAN; else TASK_DEPLOY."""
    if summary.failing or summary.status == "reject":
        return TASK_REJECT
    if summary.borderline or summary.status != "deploy" or policy_requires_human:
        return TASK_HUMAN
    return TASK_DEPLOY


def choose_drift_path(window_rows: int, dq_passed: bool, check_failed: bool = False) -> str:
    """No rows in the window -> TASK_RECORD_EMPTY; data quality failed ->
    TASK_DQ_ALERT; else TASK_COMPUTE_DRIFT. (Emptiness wins over data quality.)

    ``check_failed``: the version's window check raised (its row count and data
    quality are unknown) -> TASK_COMPUTE_DRIFT, which checks it again and
    evaluates it, or names its error among its chunk's failures; the chunk's
    other versions go on either way."""
    if check_failed:
        return TASK_COMPUTE_DRIFT
    if window_rows < 0:
        raise ValueError(f"window_rows must be >= 0, got {window_rows}")
    if window_rows == 0:
        return TASK_RECORD_EMPTY
    if not dq_passed:
        return TASK_DQ_ALERT
    return TASK_COMPUTE_DRIFT


def should_rollback(
    live_new: ArrayLike,
    live_prev: ArrayLike,
    alpha: float = 0.05,
    min_days: int = 10,
    method: str = "mannwhitney",
    higher_is_better: bool = True,
) -> tuple[bool, dict[str, Any]]:
    """Roll back if the new model's daily live metric is significantly worse than the previous one's.

    One-sided test of H1 "new is worse" (lower when ``higher_is_better``):
    ``method="mannwhitney"`` (default; ``scipy.stats.mannwhitneyu`` with its
    "auto" method: exact for small tie-free samples, else normal approximation
    with continuity correction) or
    ``'welch'`` (``scipy.stats.ttest_ind(equal_var=False)``). NaNs are dropped.
    Rollback iff ``p < alpha``. With fewer than ``min_days`` values in either
    series the answer is False with ``evidence['reason']`` saying so; an
    undefined p-value (e.g. Welch on two constant series) is also False.
    """
    import numpy as np
    from scipy import stats

    if method not in ROLLBACK_METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {ROLLBACK_METHODS}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if min_days < 2:
        raise ValueError(f"min_days must be >= 2, got {min_days}")
    new = np.asarray(live_new, dtype=float).ravel()
    prev = np.asarray(live_prev, dtype=float).ravel()
    new = new[~np.isnan(new)]
    prev = prev[~np.isnan(prev)]
    evidence: dict[str, Any] = {
        "method": method,
        "alpha": alpha,
        "min_days": min_days,
        "higher_is_better": higher_is_better,
        "n_new": int(new.size),
        "n_prev": int(prev.size),
        "p_value": None,
        "statistic": None,
    }
    if new.size < min_days or prev.size < min_days:
        evidence["reason"] = f"not enough days to decide: {new.size} new / {prev.size} previous, need {min_days} each"
        return False, evidence
    evidence.update(
        mean_new=float(new.mean()),
        mean_prev=float(prev.mean()),
        median_new=float(np.median(new)),
        median_prev=float(np.median(prev)),
    )
    alternative: Literal["less", "greater"] = "less" if higher_is_better else "greater"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if method == "mannwhitney":
            mw = stats.mannwhitneyu(new, prev, alternative=alternative)
            p, stat = float(mw.pvalue), float(mw.statistic)
        else:
            tt = stats.ttest_ind(new, prev, equal_var=False, alternative=alternative)
            p, stat = float(tt.pvalue), float(tt.statistic)
    evidence["statistic"] = None if math.isnan(stat) else stat
    if math.isnan(p):
        evidence["reason"] = "test undefined (no variance in either series); keeping the new model"
        return False, evidence
    evidence["p_value"] = p
    direction = "lower" if higher_is_better else "higher"
    if p < alpha:
        evidence["reason"] = f"new model's metric significantly {direction} (p={p:.4g} < alpha {alpha:g}): roll back"
        return True, evidence
    evidence["reason"] = f"no significant degradation (p={p:.4g} >= alpha {alpha:g})"
    return False, evidence


# Rollback DAG
TASK_ROLLBACK = "rollback_champion"
TASK_KEEP = "keep_champion"


def choose_rollback(manual_target: int | None, automatic: bool) -> str:
    """A manual target version (conf) or an automatic 'significantly worse' verdict
    -> TASK_ROLLBACK; else TASK_KEEP."""
    return TASK_ROLLBACK if manual_target is not None or automatic else TASK_KEEP


def plan_rolls_back(plan: Mapping[str, Any]) -> bool:
    """One model's rollback plan restores a version (:func:`choose_rollback` of its manual target or verdict)."""
    manual = plan.get("target_version") if plan.get("manual") else None
    return choose_rollback(manual, bool(plan.get("rollback"))) == TASK_ROLLBACK


def choose_rollbacks(plans: Sequence[Mapping[str, Any]]) -> list[str]:
    """The branches of a run that checked several models (one plan each, :func:`plan_rolls_back`):
    TASK_ROLLBACK when some model is rolled back, TASK_KEEP when some keeps its champion (both when both;
    TASK_KEEP alone when there is no model to check)."""
    chosen = {TASK_ROLLBACK if plan_rolls_back(p) else TASK_KEEP for p in plans}
    return [t for t in (TASK_ROLLBACK, TASK_KEEP) if t in chosen] or [TASK_KEEP]
