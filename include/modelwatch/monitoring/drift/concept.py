"""Concept drift: matured outcomes of a window against the version's backtest baseline.

Feature drift asks whether the inputs moved; concept drift asks whether the
model got worse at what it predicts, which needs realized labels. Two tests:

* error rate: one-sided binomial test of the live error rate against the
  baseline's (``1 - accuracy``); drifted if p < 0.05 and the increase is at
  least :data:`CONCEPT_ERROR_DELTA`.
* AUC delta (the seed's "AUC delta, concept drift"): live macro one-vs-rest
  AUC minus the baseline's; p = share of :data:`CONCEPT_BOOTSTRAP` row
  resamples (fixed seed) whose AUC reaches the baseline; drifted if p < 0.05
  and the drop is at least :data:`CONCEPT_AUC_DELTA`. Needs
  :data:`CONCEPT_MIN_ROWS` matured rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from include.modelwatch.vocabulary import prob_columns

#: Smallest practical increase of the error rate (absolute) that counts as drift.
CONCEPT_ERROR_DELTA = 0.10
#: Smallest practical drop of the macro AUC (absolute) that counts as drift.
CONCEPT_AUC_DELTA = 0.05
#: Matured rows needed before the AUC test runs.
CONCEPT_MIN_ROWS = 30
#: Bootstrap resamples of the AUC test.
CONCEPT_BOOTSTRAP = 400
#: Significance level of both tests.
CONCEPT_ALPHA = 0.05


def concept_rows(
    df: pd.DataFrame, baseline_accuracy: float | None, baseline_auc: float | None, classes: Sequence[str]
) -> list[dict[str, Any]]:
    """Concept-drift rows (``drift_results`` layout: feature, test, statistic,
    p_value, severity, drifted, n_current, details) of a window frame.

    ``df`` needs ``correct`` (bool, None for rows not matured yet),
    ``realized_label`` and the probability columns of ``classes``. Only
    matured rows count; no matured row gives no rows. A missing baseline
    skips its test.
    """
    from include.modelwatch.training.training import macro_auc_ovr

    if "correct" not in df.columns:
        raise ValueError("concept drift: the window frame has no 'correct' column")
    m = df[df["correct"].notna()]
    n = int(len(m))
    out: list[dict[str, Any]] = []
    if n == 0:
        return out
    if baseline_accuracy is not None:
        errors = int((~m["correct"].astype(bool)).sum())
        base_err = 1.0 - float(baseline_accuracy)
        delta = errors / n - base_err
        p = float(binomtest(errors, n, base_err, alternative="greater").pvalue)
        drifted = bool(p < CONCEPT_ALPHA and delta >= CONCEPT_ERROR_DELTA)
        out.append(
            {
                "feature": "error_rate",
                "test": "error_rate_delta",
                "statistic": delta,
                "p_value": p,
                "severity": float(min(100.0, 100.0 * delta / (2 * CONCEPT_ERROR_DELTA))) if drifted else 0.0,
                "drifted": drifted,
                "n_current": n,
                "details": {"baseline": base_err, "live": errors / n, "label": "error rate"},
            }
        )
    if baseline_auc is not None and n >= CONCEPT_MIN_ROWS:
        baseline_auc = float(baseline_auc)
        proba = m[prob_columns(classes)].to_numpy(dtype=float)
        y = m["realized_label"].to_numpy(dtype=object)
        live = macro_auc_ovr(y, proba, classes=list(classes))
        if np.isfinite(live):
            rng = np.random.default_rng(0)
            resamples = rng.integers(0, n, size=(CONCEPT_BOOTSTRAP, n))
            boots = np.array([macro_auc_ovr(y[idx], proba[idx], classes=list(classes)) for idx in resamples])
            boots = boots[np.isfinite(boots)]
            p = float((1 + np.sum(boots >= baseline_auc)) / (1 + boots.size))
            delta = live - baseline_auc
            drifted = bool(p < CONCEPT_ALPHA and -delta >= CONCEPT_AUC_DELTA)
            out.append(
                {
                    "feature": "auc",
                    "test": "auc_delta",
                    "statistic": delta,
                    "p_value": p,
                    "severity": float(min(100.0, 100.0 * -delta / (2 * CONCEPT_AUC_DELTA))) if drifted else 0.0,
                    "drifted": drifted,
                    "n_current": n,
                    "details": {
                        "baseline": baseline_auc,
                        "live": live,
                        "label": "macro AUC (ovr)",
                        "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))],
                    },
                }
            )
    return out


def summary_line(row: dict[str, Any]) -> str:
    """One readable log line of a concept-drift row."""
    d = row["details"]
    return (
        f"concept: live {d['label']} {d['live']:.3f} vs baseline {d['baseline']:.3f} "
        f"(n={row['n_current']}, p={row['p_value']:.3g}){' DRIFT' if row['drifted'] else ''}"
    )
