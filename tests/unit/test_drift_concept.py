"""Concept drift (matured outcomes against the backtest baseline) and the window's data-quality allowance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from include.modelwatch.monitoring import drift
from include.modelwatch.monitoring.drift import checks
from include.modelwatch.monitoring.drift.concept import CONCEPT_MIN_ROWS, concept_rows, summary_line
from include.modelwatch.vocabulary import CLASSES


def _frame(
    n: int, n_wrong: int, *, informative: bool = True, seed: int = 0, matured: int | None = None
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.array(CLASSES)[rng.integers(0, 3, size=n)]
    proba = rng.dirichlet([1, 1, 1], size=n)
    if informative:  # the realized class gets the largest probability
        for i, c in enumerate(y):
            k = CLASSES.index(c)
            proba[i, k] += 2.0
        proba /= proba.sum(axis=1, keepdims=True)
    df = pd.DataFrame(proba, columns=[f"p_{c}" for c in CLASSES])
    df["realized_label"] = list(y)
    correct = np.array([True] * (n - n_wrong) + [False] * n_wrong)
    df["correct"] = pd.Series(correct, dtype=object)
    if matured is not None:
        df.loc[matured:, "correct"] = None
        df.loc[matured:, "realized_label"] = None
    return df


def test_no_matured_rows_gives_no_concept_rows():
    df = _frame(40, 5, matured=0)
    assert concept_rows(df, 0.6, 0.7, CLASSES) == []


def test_error_rate_drifts_only_with_a_significant_and_practical_increase():
    df = _frame(100, 70)  # live error 0.70 against baseline 0.40
    rows = {r["test"]: r for r in concept_rows(df, 0.6, None, CLASSES)}
    err = rows["error_rate_delta"]
    assert err["statistic"] == pytest.approx(0.30)
    assert err["p_value"] == pytest.approx(binomtest(70, 100, 0.4, alternative="greater").pvalue, abs=1e-12)
    assert err["drifted"] is True and err["severity"] == 100.0 and err["n_current"] == 100
    assert err["details"] == {"baseline": pytest.approx(0.4), "live": 0.7, "label": "error rate"}
    small = concept_rows(_frame(100, 45), 0.6, None, CLASSES)[0]  # +0.05: below CONCEPT_ERROR_DELTA
    assert small["drifted"] is False and small["severity"] == 0.0
    # a large increase on few rows is not significant
    few = concept_rows(_frame(5, 3), 0.6, None, CLASSES)[0]
    assert few["statistic"] == pytest.approx(0.2) and few["p_value"] > 0.05 and few["drifted"] is False


def test_auc_delta_needs_enough_rows_and_flags_a_real_drop():
    assert [r["test"] for r in concept_rows(_frame(CONCEPT_MIN_ROWS - 1, 5), 0.6, 0.7, CLASSES)] == ["error_rate_delta"]
    good = {r["test"]: r for r in concept_rows(_frame(200, 20, informative=True), None, 0.7, CLASSES)}["auc_delta"]
    assert good["statistic"] > 0 and good["drifted"] is False and good["severity"] == 0.0
    lo, hi = good["details"]["ci95"]
    assert lo <= good["details"]["live"] <= hi
    bad = concept_rows(_frame(200, 120, informative=False), None, 0.9, CLASSES)[0]
    assert bad["test"] == "auc_delta" and bad["statistic"] < -0.3
    assert bad["p_value"] < 0.05 and bad["drifted"] is True and bad["severity"] == 100.0
    # deterministic (fixed bootstrap seed)
    again = concept_rows(_frame(200, 120, informative=False), None, 0.9, CLASSES)[0]
    assert again["p_value"] == bad["p_value"] and again["details"]["ci95"] == bad["details"]["ci95"]
    assert "DRIFT" in summary_line(bad) and "macro AUC" in summary_line(bad)


def test_concept_rows_name_the_missing_column():
    with pytest.raises(ValueError, match="'correct'"):
        concept_rows(pd.DataFrame({"p_BUY": [0.5]}), 0.6, 0.7, CLASSES)


def test_package_reexports_concept_rows():
    assert drift.concept_rows is concept_rows


def test_one_missing_feature_row_does_not_fail_a_small_window_but_many_do():
    assert checks.feature_null_allowance(46, 0.05) == pytest.approx(0.05)  # 2 of 46 rows may miss a feature
    assert checks.feature_null_allowance(5, 0.05) == pytest.approx(0.2)  # one row of five
    assert checks.feature_null_allowance(0, 0.05) == 0.05
    spec = checks.window_spec(["vol_21d"], CLASSES, 10, 0.05)
    cols = {c.name: c for c in spec.columns}
    assert cols["vol_21d"].max_null_share == pytest.approx(0.1)
    assert cols["p_BUY"].max_null_share == 0.0 and cols["predicted_label"].allowed == CLASSES


def test_max_null_share_is_validated():
    assert drift.DriftConfig().max_null_share == 0.05
    assert drift.DriftConfig.from_dict({"max_null_share": 0.2}).max_null_share == 0.2
    with pytest.raises(ValueError, match="max_null_share: must be in \\[0, 1\\]"):
        drift.DriftConfig(max_null_share=1.5)
