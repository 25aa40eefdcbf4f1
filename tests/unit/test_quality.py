"""Great Expectations checks of a window: each failure names expectation, column and observation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.modelwatch.data.quality import ColumnSpec, FrameSpec, validate_frame

SPEC = FrameSpec(
    columns=(
        ColumnSpec("rsi_14", min_value=0, max_value=100),
        ColumnSpec("ret_5d"),
        ColumnSpec("predicted_label", kind="categorical", allowed=("SELL", "HOLD", "BUY")),
    ),
    min_rows=5,
)


def _frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "rsi_14": rng.uniform(10, 90, n),
            "ret_5d": rng.normal(0, 0.02, n),
            "predicted_label": rng.choice(["SELL", "HOLD", "BUY"], n),
        }
    )


def test_clean_frame_passes():
    rep = validate_frame(_frame(), SPEC)
    assert rep.success and rep.failures == [] and rep.n_rows == 50


def test_failures_name_expectation_column_and_observation():
    df = _frame()
    df.loc[:9, "rsi_14"] = 150.0  # out of range: 10 of 50 rows
    df.loc[:4, "ret_5d"] = np.nan  # 10% null > 5% allowed
    df.loc[0, "predicted_label"] = "STRONG_BUY"
    rep = validate_frame(df, SPEC)
    assert not rep.success
    got = {(f.expectation, f.column): f.observed for f in rep.failures}
    assert got[("expect_column_values_to_be_between", "rsi_14")]["unexpected_count"] == 10
    assert got[("expect_column_values_to_not_be_null", "ret_5d")]["unexpected_count"] == 5
    assert got[("expect_column_values_to_be_in_set", "predicted_label")]["partial_unexpected_list"] == ["STRONG_BUY"]
    assert len(rep.failures) == 3


def test_missing_column_and_too_few_rows():
    df = _frame(3).drop(columns=["ret_5d"])
    rep = validate_frame(df, SPEC)
    failed = {(f.expectation, f.column) for f in rep.failures}
    assert failed == {("expect_column_to_exist", "ret_5d"), ("expect_table_row_count_to_be_between", "")}


def test_inf_values_fail_the_range_check():
    df = _frame()
    df.loc[0, "ret_5d"] = np.inf
    rep = validate_frame(df, SPEC)
    assert [(f.expectation, f.column) for f in rep.failures] == [("expect_column_values_to_be_between", "ret_5d")]
