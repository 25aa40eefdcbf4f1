"""bench/regime_skill.py at a tiny size: the panel carries the target's features, the frozen model's rows are the
bootstrap champion's, the scores are what they claim (the full bench: ``python -m bench.regime_skill``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench import regime_skill as R
from include.modelwatch.data import features
from include.modelwatch.training import dataset, targets


@pytest.fixture(scope="module")
def spx():
    bars = R.load_bars(("SPX",))
    bars = bars[bars["date"] < pd.Timestamp("2008-01-01")].reset_index(drop=True)
    return bars, R.build_panel(bars)


def test_the_bench_uses_the_targets_feature_set():
    assert R.TARGET_FEATURES == [*features.FEATURE_COLUMNS, *features.REGIME_FEATURES]
    assert R.TARGET_FEATURES == list(targets.TARGETS["vol_regime"].feature_columns)
    assert R.STANDARD_FEATURES == features.FEATURE_COLUMNS
    assert R.CLASSES == ("LOW", "HIGH") and R.SYMBOLS == ("SPX", "IXIC")


def test_panel_relative_vols_are_against_the_label_threshold(spx):
    _, panel = spx
    assert panel[R.TARGET_FEATURES].notna().all().all()
    assert set(panel["label"]) == {"LOW", "HIGH"}
    # the first label needs 257 bars (252 medians of the 5-session vol), SPX bars start on 1999-01-04
    assert panel["date"].min() == pd.Timestamp("2000-01-07")
    # vol_5d_rel is the persistence score rv_trailing / threshold; the others share its denominator
    np.testing.assert_allclose(panel["vol_5d_rel"], panel["rv_trailing"] / panel["threshold"], rtol=1e-12)
    np.testing.assert_allclose(panel["vol_63d_rel"], panel["vol_63d"] / panel["threshold"], rtol=1e-12)
    assert (panel["persistence"] == np.where(panel["vol_5d_rel"] > 1, "HIGH", "LOW")).all()


def test_frozen_rows_are_the_bootstrap_champions(spx):
    bars, panel = spx
    train = R.bootstrap_rows(bars)
    known = panel[(panel["date"] < R.FROZEN_END) & (panel["matured_at"] < R.FROZEN_END)].reset_index(drop=True)
    assert len(train) == len(known) == 1750
    assert train["date"].max() == pd.Timestamp("2006-12-21")  # its label closes on 2006-12-29
    assert dataset.fingerprint(train) == dataset.fingerprint(known)


def test_walk_forward_predicts_from_2003_on(spx, monkeypatch):
    _, panel = spx
    monkeypatch.setattr(R, "N_SPLITS", 2)
    oof = R.walk_forward(panel[panel["date"] < "2005-01-01"], R.STANDARD_FEATURES)
    assert oof["date"].min() == pd.Timestamp("2003-01-02") and oof["date"].max().year == 2004
    s = R.scores(oof)
    assert s["n"] == len(oof) == 504
    assert 0.5 < s["auc"] < 1 and s["predicted_high_share"] == pytest.approx((oof["y_pred"] == "HIGH").mean())


def _frame(y, pred, p_high, pers, score):
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2007-01-03", "2007-02-01", "2007-03-01", "2007-04-02"]),
            "y_true": y,
            "y_pred": pred,
            "p_LOW": 1 - np.asarray(p_high),
            "p_HIGH": p_high,
            "persistence": pers,
            "rv_trailing": score,
            "threshold": 1.0,
        }
    )


def test_scores_and_one_class_quarters_are_null_in_json():
    f = _frame(
        ["LOW", "HIGH", "HIGH", "LOW"],
        ["LOW", "HIGH", "LOW", "LOW"],
        [0.1, 0.9, 0.4, 0.2],
        ["HIGH", "HIGH", "HIGH", "LOW"],
        [0.5, 2.0, 1.5, 0.7],
    )
    s = R.scores(f)
    assert s["auc"] == 1.0 and s["accuracy"] == 0.75 and s["balanced_accuracy"] == 0.75
    assert s["majority_share"] == 0.5 and s["persistence_accuracy"] == 0.75 and s["persistence_auc"] == 1.0
    assert s["high_share"] == 0.5 and s["predicted_high_share"] == 0.25
    q = R.per_quarter(f)
    assert list(q) == ["2007Q1", "2007Q2"] and np.isnan(q["2007Q2"]["auc"]) and q["2007Q2"]["accuracy"] == 1.0
    text = json.dumps(R._json_ready(q), allow_nan=False)
    assert json.loads(text)["2007Q2"]["auc"] is None
