"""The train / out-of-sample split of a retrain (include/modelwatch/training/dataset.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.training.dataset import (
    SplitSettings,
    matured,
    rows_per_class,
    split_train_eval,
    trigger_end,
)


def _panel(n_sessions: int = 60, symbols=("SPX", "IXIC"), start: str = "2020-01-01") -> pd.DataFrame:
    """Two symbols per session; labels cycle SELL/HOLD/BUY; one unlabelled row in the middle."""
    dates = pd.bdate_range(start, periods=n_sessions)
    rows = [
        {"date": d, "symbol": s, "label": ("SELL", "HOLD", "BUY")[(i + j) % 3], "x": float(i)}
        for i, d in enumerate(dates)
        for j, s in enumerate(symbols)
    ]
    panel = pd.DataFrame(rows)
    if len(panel) > 10:
        panel.loc[10, "label"] = None
    return panel


def test_matured_drops_the_last_horizon_sessions_and_unlabelled_rows():
    panel = _panel(20)
    out = matured(panel, horizon=5)
    sessions = sorted(panel["date"].unique())
    assert out["date"].max() == sessions[-6]  # the label of the 6th-last session closed on the last one
    assert len(out) == 15 * 2 - 1 and out["label"].notna().all()


def test_matured_refuses_too_few_sessions_naming_what():
    with pytest.raises(ValueError, match="spx_signal trigger 3: 5 sessions, not more than the label horizon"):
        matured(_panel(5), horizon=5, what="spx_signal trigger 3")


def test_split_embargo_between_training_and_out_of_sample():
    panel = _panel(60)
    s = SplitSettings(eval_sessions=10, embargo=3, train_years=8, horizon=5)
    f = split_train_eval(panel, s)
    labelled = sorted(matured(panel, horizon=5)["date"].unique())  # 55 sessions
    assert sorted(f.evaluation["date"].unique()) == labelled[-10:]
    train_dates = sorted(f.train["date"].unique())
    # training ends embargo + horizon (= 8) whole sessions before the out-of-sample start
    assert train_dates[-1] == labelled[55 - 10 - 8 - 1]
    assert labelled.index(labelled[-10]) - labelled.index(train_dates[-1]) - 1 == 8
    assert train_dates[0] == labelled[0] and len(train_dates) == 55 - 10 - 8
    assert f.info == {
        "train_start": str(labelled[0].date()),
        "train_end": str(train_dates[-1].date()),
        "eval_start": str(labelled[-10].date()),
        "eval_end": str(labelled[-1].date()),
        "embargo_sessions": 8,
    }
    assert set(f.train.index) == set(range(len(f.train)))  # fresh index, rows in time order
    assert f.train["date"].is_monotonic_increasing


def test_split_train_years_and_incremental_start():
    panel = _panel(800, start="2015-01-01")
    f = split_train_eval(panel, SplitSettings(eval_sessions=20, embargo=0, train_years=1, horizon=5))
    last = pd.Timestamp(f.info["train_end"])
    assert f.train["date"].min() >= last - pd.DateOffset(years=1)
    assert f.train["date"].min() - (last - pd.DateOffset(years=1)) < pd.Timedelta(days=4)
    inc = split_train_eval(
        panel, SplitSettings(eval_sessions=20, embargo=0, train_years=1, horizon=5), incremental_from=date(2017, 6, 30)
    )
    assert inc.train["date"].min() == pd.Timestamp("2017-07-03")  # the first session after the champion's data
    assert inc.info["train_end"] == f.info["train_end"]


def test_split_shuffle_keeps_the_class_counts_and_is_deterministic():
    panel = _panel(60)
    plain = split_train_eval(panel, SplitSettings(eval_sessions=10, embargo=3, horizon=5))
    a = split_train_eval(panel, SplitSettings(eval_sessions=10, embargo=3, horizon=5, shuffle_labels=True))
    b = split_train_eval(panel, SplitSettings(eval_sessions=10, embargo=3, horizon=5, shuffle_labels=True))
    assert rows_per_class(a.train) == rows_per_class(plain.train)
    assert (a.train["label"] != plain.train["label"]).any()
    assert a.train["label"].tolist() == b.train["label"].tolist()
    assert a.evaluation["label"].tolist() == plain.evaluation["label"].tolist()  # never the out-of-sample rows


def test_split_refuses_too_little_data_naming_the_window():
    with pytest.raises(ValueError, match="m trigger 1: 15 labelled sessions are too few for eval_sessions=10"):
        split_train_eval(_panel(20), SplitSettings(eval_sessions=10, embargo=3, horizon=5), what="m trigger 1")


def test_split_never_judges_the_champion_on_its_training_sessions():
    panel = _panel(100)
    s = SplitSettings(eval_sessions=40, embargo=3, horizon=5, min_eval_sessions=10)
    labelled = sorted(matured(panel, horizon=5)["date"].unique())  # 95 sessions: the last 40 start at 55
    old = split_train_eval(panel, s, champion_train_end=labelled[40].date())  # trained long before: unchanged
    assert old.info == split_train_eval(panel, s).info and "eval_sessions" not in old.info
    recent = split_train_eval(panel, s, champion_train_end=labelled[50].date())
    # out of the champion's sample: sessions 59.. (embargo 3 + horizon 5 after its last one), 36 of them; the
    # later half less the embargo, (36 - 8) // 2 = 14, is out of sample, the rest trains the candidate
    assert sorted(recent.evaluation["date"].unique()) == labelled[81:]
    assert recent.info["eval_start"] == str(labelled[81].date()) and recent.info["eval_sessions"] == 14
    assert pd.Timestamp(recent.info["train_end"]) == labelled[72] == recent.train["date"].max()
    assert (recent.train["date"] > labelled[50]).sum() == 2 * 22  # 22 sessions the champion never saw, 2 symbols
    # a champion trained on a non-session day counts from the last session before it
    friday = next(i for i in range(45, 60) if labelled[i + 1] - labelled[i] > pd.Timedelta(days=1))
    saturday = (labelled[friday] + pd.Timedelta(days=1)).date()
    assert (
        split_train_eval(panel, s, champion_train_end=saturday).info
        == split_train_eval(panel, s, champion_train_end=labelled[friday].date()).info
    )
    # incremental from the champion's end: exactly the sessions it never saw, up to the embargo
    inc = split_train_eval(panel, s, champion_train_end=labelled[50].date(), incremental_from=labelled[50].date())
    assert sorted(inc.train["date"].unique()) == labelled[51:73]


def test_split_refuses_a_champion_too_recent_to_judge():
    panel = _panel(100)
    s = SplitSettings(eval_sessions=40, embargo=3, horizon=5, min_eval_sessions=10)
    labelled = sorted(matured(panel, horizon=5)["date"].unique())
    assert len(split_train_eval(panel, s, champion_train_end=labelled[58].date()).evaluation["date"].unique()) == 10
    with pytest.raises(ValueError, match=r"m trigger 4: the champion trained until .*only 27 labelled sessions") as e:
        split_train_eval(panel, s, champion_train_end=labelled[59].date(), what="m trigger 4")
    assert "leaving 9 for the out-of-sample period" in str(e.value) and "min_eval_sessions=10" in str(e.value)
    with pytest.raises(ValueError, match="only 0 labelled sessions"):
        split_train_eval(panel, s, champion_train_end=labelled[-1].date())


def test_split_settings_validate_and_read_conf():
    assert SplitSettings.from_mapping(
        {"eval_sessions": "120", "embargo": 2, "num_boost_round": 9, "shuffle_labels": 1, "min_eval_sessions": "21"}
    ) == SplitSettings(eval_sessions=120, embargo=2, shuffle_labels=True, min_eval_sessions=21)
    with pytest.raises(ValueError, match="min_eval_sessions must be >= 1"):
        SplitSettings(min_eval_sessions=0)
    with pytest.raises(ValueError, match="eval_sessions must be >= 1"):
        SplitSettings(eval_sessions=0)
    with pytest.raises(ValueError, match="embargo and horizon must be >= 0"):
        SplitSettings(embargo=-1)


def test_trigger_end_prefers_window_end_and_is_utc():
    naive = {"trigger_id": 1, "window_end": "2008-10-01T00:00:00", "triggered_at": "2008-10-05T00:00:00"}
    assert trigger_end(naive) == datetime(2008, 10, 1, tzinfo=UTC)
    assert trigger_end(
        {"trigger_id": 2, "window_end": None, "triggered_at": datetime(2008, 10, 5, 3, tzinfo=UTC)}
    ) == datetime(2008, 10, 5, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="trigger 9: neither window_end nor triggered_at"):
        trigger_end({"trigger_id": 9})


def test_rows_per_class_in_label_order():
    assert rows_per_class(pd.DataFrame({"label": ["SELL", "BUY", "BUY", "HOLD"]})) == {"BUY": 2, "HOLD": 1, "SELL": 1}
    assert np.isclose(sum(rows_per_class(_panel(10).dropna()).values()), 19)
