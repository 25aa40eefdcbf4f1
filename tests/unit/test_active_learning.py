"""Active learning, pure parts: the decision confidence and its band, per-model settings, how human labels enter a
training frame, and what a labelling request shows (probabilities, closes, SHAP of the predicted class)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.modelwatch.active_learning import review
from include.modelwatch.active_learning.band import (
    BandSettings,
    SettingsError,
    capture_share,
    decision_confidence,
    priority,
)
from include.modelwatch.active_learning.labels import apply_human_labels
from include.modelwatch.active_learning.store import Item
from include.modelwatch.training import training
from include.modelwatch.vocabulary import CLASSES

DEFAULT = BandSettings()

# --------------------------------------------------------------------------- decision confidence


def test_decision_confidence_is_the_top_share_of_the_two_largest():
    assert decision_confidence({"SELL": 0.2, "HOLD": 0.35, "BUY": 0.45}) == pytest.approx(0.45 / 0.80)
    assert decision_confidence([0.45, 0.2, 0.35]) == pytest.approx(0.5625)  # any order, any iterable
    assert decision_confidence(x for x in (0.3, 0.33, 0.37)) == pytest.approx(0.37 / 0.70)
    assert decision_confidence({"SELL": 1 / 3, "HOLD": 1 / 3, "BUY": 1 / 3}) == 0.5  # a tie: 0.5, the minimum
    assert decision_confidence([0.0, 0.0, 1.0]) == 1.0  # a sure answer: 1, the maximum
    assert decision_confidence([0.1, 0.1, 0.8]) == pytest.approx(0.8 / 0.9)  # the third class does not count
    # unnormalised scores give the same share
    assert decision_confidence([2.0, 7.0, 1.0]) == pytest.approx(7 / 9)


@pytest.mark.parametrize("p", [i / 100 for i in range(0, 101)])
def test_binary_confidence_is_max_p_one_minus_p(p):
    assert decision_confidence([p, 1 - p]) == pytest.approx(max(p, 1 - p), abs=1e-15)
    assert decision_confidence({"BUY": p, "SELL": 1 - p}) == decision_confidence([1 - p, p])


@pytest.mark.parametrize("i", range(40, 61))
def test_binary_bands_map_onto_the_seeds_bands_on_p(i):
    """The predecessor's bands on the BUY probability p (0.45-0.55 / 0.46-0.54 / 0.48-0.52, inclusive) give the
    same priority as the default bands on max(p, 1 - p) at every hundredth."""
    p = i / 100
    seed = 3 if 48 <= i <= 52 else 2 if 46 <= i <= 54 else 1 if 45 <= i <= 55 else 0
    assert priority(decision_confidence([p, 1 - p]), DEFAULT) == seed


@pytest.mark.parametrize(
    "probs,message",
    [
        ([0.9], r"class probabilities must be >= 2 finite non-negative numbers, got \[0.9\]"),
        ([], r"got \[\]"),
        ({"BUY": 1.0}, r"got \[1.0\]"),
        ([0.6, -0.1, 0.5], r"got \[0.6, -0.1, 0.5\]"),
        ([0.5, float("nan"), 0.5], "non-negative numbers, got"),
        ([float("inf"), 0.1, 0.2], "non-negative numbers, got"),
        ([0.0, 0.0, 0.0], r"the two largest class probabilities are both 0: \[0.0, 0.0, 0.0\]"),
        ([0.0, 0.0], "both 0"),
    ],
)
def test_decision_confidence_errors(probs, message):
    with pytest.raises(ValueError, match=message):
        decision_confidence(probs)


# --------------------------------------------------------------------------- priority


@pytest.mark.parametrize(
    "confidence,expected",
    [
        (0.5, 3),
        (0.51, 3),
        (0.52, 3),
        (math.nextafter(0.52, 1), 2),
        (0.53, 2),
        (0.54, 2),
        (math.nextafter(0.54, 1), 1),
        (0.545, 1),
        (0.55, 1),
        (math.nextafter(0.55, 1), 0),
        (0.56, 0),
        (1.0, 0),
    ],
)
def test_priority_band_edges(confidence, expected):
    assert priority(confidence, DEFAULT) == expected


def test_priority_follows_the_settings():
    s = BandSettings(band_max=0.7, priority2_max=0.6, priority3_max=0.6)  # no priority-2 band: p2 == p3 bound
    assert [priority(c, s) for c in (0.6, 0.61, 0.7, 0.71)] == [3, 1, 1, 0]


# --------------------------------------------------------------------------- settings


def test_defaults_are_the_seeds_bands():
    assert DEFAULT.as_dict() == {
        "enabled": True,
        "band_max": 0.55,
        "priority2_max": 0.54,
        "priority3_max": 0.52,
        "label_weight": 2.0,
        "on_disagreement": "human",
        "expire_after_days": 90,
        "batch_size": 10,
    }
    assert DEFAULT.validated("m") is DEFAULT


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"priority3_max": 0.5}, "priority3_max=0.5, priority2_max=0.54, band_max=0.55"),
        ({"priority3_max": 0.545}, "priority3_max=0.545, priority2_max=0.54"),
        ({"priority2_max": 0.56}, "priority2_max=0.56, band_max=0.55"),
        ({"band_max": 1.01}, "band_max=1.01"),
        ({"band_max": float("nan")}, "band_max=nan"),
        ({"label_weight": 0.0}, r"label_weight must be in \(0, 100\], got 0.0"),
        ({"label_weight": 100.5}, r"label_weight must be in \(0, 100\], got 100.5"),
        ({"label_weight": float("nan")}, "label_weight must be in"),
        (
            {"on_disagreement": "average"},
            r"on_disagreement must be one of \['human', 'outcome', 'drop'\], got 'average'",
        ),
        ({"expire_after_days": 0}, "expire_after_days must be >= 1, got 0"),
        ({"batch_size": 0}, r"batch_size must be in 1..200, got 0"),
        ({"batch_size": 201}, r"batch_size must be in 1..200, got 201"),
    ],
)
def test_validated_names_the_model_and_the_invalid_field(kwargs, message):
    with pytest.raises(SettingsError, match=message) as err:
        BandSettings(**kwargs).validated("spx_signal")
    assert str(err.value).startswith("spx_signal: ")


def test_validated_accepts_the_closed_edges():
    edge = BandSettings(band_max=1.0, priority2_max=0.51, priority3_max=0.51, label_weight=100, batch_size=200)
    assert edge.validated() is edge
    assert BandSettings(expire_after_days=1, batch_size=1, label_weight=1e-9).validated().batch_size == 1


def test_changed_converts_cli_strings_to_the_declared_types():
    new = DEFAULT.changed(
        "m",
        {
            "enabled": "off",
            "band_max": "0.6",
            "priority2_max": "0.58",
            "priority3_max": "0.56",
            "label_weight": "3.5",
            "on_disagreement": "drop",
            "expire_after_days": "30",
            "batch_size": "25",
        },
    )
    assert new == BandSettings(False, 0.6, 0.58, 0.56, 3.5, "drop", 30, 25)
    assert [type(v) for v in new.as_dict().values()] == [bool, float, float, float, float, str, int, int]
    assert DEFAULT.band_max == 0.55  # frozen: a copy changed
    # every spelling of a boolean, and a real bool
    for word, value in (("1", True), ("YES", True), (" on ", True), ("true", True), ("0", False), ("no", False)):
        assert DEFAULT.changed("m", {"enabled": word}).enabled is value
    assert DEFAULT.changed("m", {"enabled": False}).enabled is False
    # a field stored as an int still takes a fraction (the declared type decides, not the current value)
    assert BandSettings(label_weight=2).changed("m", {"label_weight": "2.5"}).label_weight == 2.5
    assert DEFAULT.changed("m", {}) == DEFAULT


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"band": "0.6"}, r"m: unknown setting\(s\) \['band'\]; expected some of \['band_max', 'batch_size',"),
        ({"zeta": "1", "alpha": "2", "band_max": "0.6"}, r"unknown setting\(s\) \['alpha', 'zeta'\]"),
        ({"band_max": "wide"}, "m: band_max='wide' is not a valid float"),
        ({"batch_size": "2.5"}, "m: batch_size='2.5' is not a valid int"),
        ({"expire_after_days": ""}, "m: expire_after_days='' is not a valid int"),
        ({"enabled": "ture"}, "m: enabled='ture' is not a valid bool"),  # a typo does not disable the model
        ({"band_max": "0.53"}, "priority2_max=0.54, band_max=0.53"),  # converted, then validated as a whole
        ({"batch_size": "500"}, "batch_size must be in 1..200, got 500"),
        ({"on_disagreement": "HUMAN"}, "got 'HUMAN'"),
    ],
)
def test_changed_refuses_unknown_and_invalid_fields(changes, message):
    with pytest.raises(SettingsError, match=message):
        DEFAULT.changed("m", changes)


def test_capture_share_counts_each_priority():
    got = capture_share([0.5, 0.52, 0.53, 0.54, 0.55, 0.56, 0.9, 1.0], DEFAULT)
    assert got == {
        "predictions": 8,
        "captured": 5,
        "share": 5 / 8,
        "by_priority": {
            "3": {"items": 2, "share": 2 / 8},
            "2": {"items": 2, "share": 2 / 8},
            "1": {"items": 1, "share": 1 / 8},
        },
    }
    assert list(got["by_priority"]) == ["3", "2", "1"]
    none = capture_share([], DEFAULT)
    assert (none["predictions"], none["captured"], none["share"]) == (0, 0, 0.0)
    assert none["by_priority"]["1"] == {"items": 0, "share": 0.0}
    narrow = capture_share(
        iter([0.5, 0.515, 0.53]), BandSettings(band_max=0.52, priority2_max=0.51, priority3_max=0.505)
    )
    assert (narrow["captured"], narrow["by_priority"]["3"]["items"], narrow["by_priority"]["1"]["items"]) == (2, 1, 1)


# --------------------------------------------------------------------------- human labels in a training frame


def _train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": ["SPX", "SPX", "SPX", "NDX", "NDX"],
            "date": pd.to_datetime(["2008-10-01", "2008-10-02", "2008-10-03", "2008-10-01", "2008-10-02"]),
            "label": ["BUY", "SELL", "HOLD", "BUY", "HOLD"],
            "x": [1.0, 2.0, 3.0, 4.0, 5.0],
        },
        index=[10, 11, 12, 13, 14],
    )


ITEMS = [
    {"item_id": 1, "symbol": "SPX", "date": date(2008, 10, 1), "manual_label": "BUY"},  # agrees
    {"item_id": 2, "symbol": "SPX", "date": date(2008, 10, 2), "manual_label": "BUY"},  # disagrees (SELL)
    {"item_id": 3, "symbol": "NDX", "date": date(2008, 10, 6), "manual_label": "SELL"},  # not in the frame
    {"item_id": 4, "symbol": "QQQ", "date": date(2008, 10, 1), "manual_label": "SELL"},  # symbol not in the frame
]


def test_agreement_gets_the_weight_and_disagreement_follows_human():
    out = apply_human_labels(_train(), ITEMS, label_weight=2.5, on_disagreement="human")
    f = out.frame
    assert f["label"].tolist() == ["BUY", "BUY", "HOLD", "BUY", "HOLD"]  # row 2 relabelled BUY
    assert f["weight"].tolist() == [2.5, 2.5, 1.0, 1.0, 1.0]
    assert f["x"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and f.index.tolist() == [10, 11, 12, 13, 14]
    assert out.used_items == [1, 2]  # 3 and 4 are outside the frame: not used (they stay labelled)
    assert out.summary == {
        "items": 4,
        "human_labels": 2,
        "agreed": 1,
        "disagreed": 1,
        "relabelled": 1,
        "dropped": 0,
        "superseded": 0,
    }


def test_disagreement_under_outcome_keeps_the_realized_label_at_weight_one():
    out = apply_human_labels(_train(), ITEMS, label_weight=3.0, on_disagreement="outcome")
    assert out.frame["label"].tolist() == ["BUY", "SELL", "HOLD", "BUY", "HOLD"]
    assert out.frame["weight"].tolist() == [3.0, 1.0, 1.0, 1.0, 1.0]
    assert out.used_items == [1, 2]  # the disagreeing label is counted (used up), not applied
    assert (out.summary["agreed"], out.summary["disagreed"], out.summary["relabelled"]) == (1, 1, 0)


def test_disagreement_under_drop_removes_the_row():
    train = _train()
    out = apply_human_labels(train, ITEMS, label_weight=2.0, on_disagreement="drop")
    f = out.frame
    assert f["x"].tolist() == [1.0, 3.0, 4.0, 5.0] and f.index.tolist() == [0, 1, 2, 3]  # SPX 10-02 gone
    assert f["weight"].tolist() == [2.0, 1.0, 1.0, 1.0]
    assert out.used_items == [1, 2] and out.summary["dropped"] == 1 and out.summary["relabelled"] == 0
    assert len(train) == 5 and "weight" not in train.columns  # the input frame is untouched


def test_last_item_wins_per_symbol_and_date_and_the_replaced_ones_are_used_up():
    items = [
        {"item_id": 7, "symbol": "SPX", "date": "2008-10-03", "manual_label": "SELL"},
        {"item_id": 5, "symbol": "SPX", "date": datetime(2008, 10, 3, 21, tzinfo=UTC), "manual_label": "BUY"},
        {"item_id": 9, "symbol": "SPX", "date": pd.Timestamp("2008-10-03 21:00"), "manual_label": "HOLD"},  # last
    ]
    out = apply_human_labels(_train(), items, label_weight=2.0, on_disagreement="human")
    assert out.frame["label"].tolist()[2] == "HOLD" and out.frame["weight"].tolist()[2] == 2.0  # 9 agrees
    assert out.used_items == [5, 7, 9]  # 5 and 7 were replaced by 9: no later retrain applies them alone
    s = out.summary
    assert (s["items"], s["human_labels"], s["agreed"], s["disagreed"], s["superseded"]) == (3, 1, 1, 0, 2)
    # the other order: the last one (SELL) now disagrees and relabels
    out = apply_human_labels(_train(), items[::-1], label_weight=2.0, on_disagreement="human")
    assert out.frame["label"].tolist()[2] == "SELL" and out.summary["relabelled"] == 1


def test_only_training_rows_take_labels_and_the_usable_age_is_the_split_s():
    """A label on an out-of-sample or unmatured session is not used (moving it would leak that period into the
    candidate); the rule counts a label once a default split's training rows can hold its session."""
    from include.modelwatch.active_learning import store
    from include.modelwatch.training.dataset import SplitSettings

    items = [{"item_id": 3, "symbol": "SPX", "date": date(2030, 1, 2), "manual_label": "HOLD"}]
    out = apply_human_labels(_train(), items, label_weight=2.0, on_disagreement="human")
    assert out.used_items == [] and out.summary["human_labels"] == 0 and out.frame["weight"].tolist() == [1.0] * 5
    s = SplitSettings()
    assert store.USABLE_AFTER_SESSIONS == s.eval_sessions + s.embargo + s.horizon


def test_no_items_and_bad_arguments():
    out = apply_human_labels(_train(), [], label_weight=2.0, on_disagreement="human")
    assert out.used_items == [] and out.frame["weight"].tolist() == [1.0] * 5
    assert out.summary["items"] == 0 and out.summary["human_labels"] == 0
    with pytest.raises(ValueError, match=r"on_disagreement must be one of \['human', 'outcome', 'drop'\], got 'x'"):
        apply_human_labels(_train(), ITEMS, label_weight=2.0, on_disagreement="x")
    for w in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="label_weight must be > 0"):
            apply_human_labels(_train(), ITEMS, label_weight=w, on_disagreement="human")


# --------------------------------------------------------------------------- the labelling request


def _item(**kw) -> Item:
    base = dict(
        item_id=12,
        model_name="spx_signal",
        model_version=3,
        symbol="^GSPC",
        ts=datetime(2008, 10, 14, 21, tzinfo=UTC),
        features={"x0": 0.2, "x1": -1.0, "x2": 0.5, "x3": None},
        probabilities={"SELL": 0.22, "HOLD": 0.4, "BUY": 0.38},
        predicted_label="HOLD",
        confidence=0.4 / 0.78,
        priority=3,
        status="pending",
        manual_label=None,
        labelled_by=None,
        labelled_at=None,
        notes=None,
        realized_label=None,
        realized_return=None,
        training_dataset_id=None,
    )
    base.update(kw)
    return Item(**base)  # type: ignore[arg-type]


def test_request_shows_the_bar_probabilities_closes_and_shap():
    it = _item()
    closes = [(date(2008, 10, 10), 900.0), (date(2008, 10, 13), 1000.0), (pd.Timestamp("2008-10-14"), 990.0)]
    contrib: list[dict[str, Any]] = [
        {"feature": "ret_5", "value": 0.0123, "contribution": 0.0456},
        {"feature": "vol_20", "value": float("nan"), "contribution": -0.02},
        {"feature": "rsi_14", "value": None, "contribution": 0.001},
    ]
    subject, body = review.request(it, closes, contrib, horizon=5)
    assert subject == "Label ^GSPC 2008-10-14: spx_signal said HOLD (confidence 0.513)"
    assert (
        "**^GSPC** on **2008-10-14** (item 12, priority 3). Model **spx_signal v3** answered **HOLD** but could "
        "hardly choose between its two best classes: confidence p1/(p1+p2) = **0.513**." in body
    )
    assert "Probabilities: HOLD 0.400 | BUY 0.380 | SELL 0.220" in body  # most likely first
    assert "over the next 5 sessions? BUY, SELL, HOLD, or Skip" in body
    lines = body.splitlines()
    table = lines[lines.index("| session | close | change |") + 2 :][:3]
    assert table == [
        "| 2008-10-10 | 900.00 |  |",
        "| 2008-10-13 | 1,000.00 | +11.11% |",
        "| 2008-10-14 | 990.00 | -1.00% |",
    ]
    shap = lines[lines.index("| feature | value | SHAP |") + 2 :]
    assert shap == ["| ret_5 | 0.0123 | +0.0456 |", "| vol_20 | n/a | -0.0200 |", "| rsi_14 | n/a | +0.0010 |"]
    assert "Features that pushed toward HOLD (SHAP):" in body
    # no closes, no contributions: the tables are empty, the rest is there
    _, bare = review.request(it, [], [], horizon=10)
    assert bare.splitlines()[-1] == "|---|---:|---:|" and "next 10 sessions" in bare
    assert review.OPTIONS == ("BUY", "SELL", "HOLD", "Skip")


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(600, 4)), columns=["x0", "x1", "x2", "x3"])
    y = np.where(X["x0"] + 0.5 * X["x1"] < -0.5, "SELL", np.where(X["x0"] + 0.5 * X["x1"] > 0.5, "BUY", "HOLD"))
    return training.train_model("lightgbm", X, y, num_boost_round=25, seed=0)


def test_top_contributions_are_the_predicted_classs_sorted_by_magnitude(booster):
    feats = {"x0": 0.3, "x1": -0.8, "x2": 0.1, "x3": 1.2}
    row = pd.DataFrame([feats], columns=["x0", "x1", "x2", "x3"])
    proba = training.predict_proba(booster, row)[0]
    predicted = CLASSES[int(np.argmax(proba))]
    it = _item(features=feats, predicted_label=predicted)
    top = review.top_contributions(booster, it, k=3)
    expected = training.row_contributions(booster, row)[0, CLASSES.index(predicted)]
    order = np.argsort(-np.abs(expected), kind="stable")[:3]
    assert [t["feature"] for t in top] == [["x0", "x1", "x2", "x3"][j] for j in order]
    assert [t["contribution"] for t in top] == pytest.approx([expected[j] for j in order], abs=0)
    assert [t["value"] for t in top] == [feats[t["feature"]] for t in top]
    assert [abs(t["contribution"]) for t in top] == sorted((abs(t["contribution"]) for t in top), reverse=True)
    assert top[0]["feature"] in ("x0", "x1")  # the features the labels depend on lead
    # the contributions are the predicted class's: another class gives other numbers
    other = CLASSES[(CLASSES.index(predicted) + 1) % 3]
    theirs = review.top_contributions(booster, _item(features=feats, predicted_label=other), k=4)
    mine = {t["feature"]: t["contribution"] for t in review.top_contributions(booster, it, k=4)}
    assert {t["feature"]: t["contribution"] for t in theirs} != mine
    raw = booster.predict(row, raw_score=True)[0]  # contributions + bias of the class add up to its raw score
    bias = np.asarray(booster.predict(row, pred_contrib=True)).reshape(3, 5)[CLASSES.index(predicted), 4]
    assert sum(mine.values()) + bias == pytest.approx(raw[CLASSES.index(predicted)])


def test_top_contributions_of_a_missing_feature(booster):
    it = _item(features={"x0": -2.0, "x1": 0.0, "x2": 0.0}, predicted_label="SELL")  # x3 missing, x2 present
    top = review.top_contributions(booster, it, k=10)
    assert sorted(t["feature"] for t in top) == ["x0", "x1", "x2", "x3"]  # k larger than the features: all
    x3 = next(t for t in top if t["feature"] == "x3")
    assert math.isnan(x3["value"])
    row = pd.DataFrame([{"x0": -2.0, "x1": 0.0, "x2": 0.0, "x3": float("nan")}])
    expected = training.row_contributions(booster, row)[0, CLASSES.index("SELL")]
    assert {t["feature"]: t["contribution"] for t in top} == pytest.approx(
        dict(zip(["x0", "x1", "x2", "x3"], expected, strict=True))
    )
