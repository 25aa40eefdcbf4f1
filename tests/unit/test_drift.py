"""Drift engine: exactness against scipy, edge cases, decisions, hysteresis, config."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from include.modelwatch.monitoring.drift import (
    PSI_EPSILON,
    DriftConfig,
    Hysteresis,
    benjamini_hochberg,
    bin_counts,
    bin_index,
    build_reference_profile,
    chi_square,
    counts_from_buckets,
    evaluate_window,
    js_from_counts,
    kl_from_counts,
    ks_2samp_sorted,
    null_pvalue,
    null_threshold,
    profile_from_json,
    profile_to_json,
    psi_from_counts,
    update_alert_state,
    wasserstein_sorted,
)
from include.modelwatch.monitoring.drift.stats import (
    categorical_counts,
    ks_and_wasserstein,
    sorted_finite,
    split_finite,
)

TOL = 1e-9


def _close(a: float, b: float, tol: float = TOL) -> bool:
    return abs(a - b) <= tol


# --------------------------------------------------------------------------- #
# Exactness against scipy
# --------------------------------------------------------------------------- #
KS_CASES = [
    (1, 1, 0.0, False),
    (1, 5, 1.0, False),
    (5, 7, 0.5, False),
    (10, 10, 1.0, False),
    (10, 10, 0.0, True),
    (30, 45, 0.3, True),
    (100, 37, 1.0, False),
    (500, 1000, 0.1, False),
    (2000, 300, 0.0, True),
    (3000, 3000, 0.05, False),
    (7, 10000, 0.5, False),
    (10000, 1000, 0.1, True),
    (10001, 50, 0.2, False),
    (20000, 100000, 0.02, False),
    (20000, 5000, 0.0, True),
]


@pytest.mark.parametrize(("n1", "n2", "shift", "ties"), KS_CASES)
def test_ks_and_wasserstein_equal_scipy(n1: int, n2: int, shift: float, ties: bool) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    x = rng.normal(size=n1)
    y = rng.normal(shift, 1.0, size=n2)
    if ties:
        x, y = np.round(x, 1), np.round(y, 1)
    ref = stats.ks_2samp(x, y)
    d, p = ks_2samp_sorted(np.sort(x), np.sort(y))
    assert _close(d, float(ref.statistic))
    assert _close(p, float(ref.pvalue))
    if ref.pvalue > 1e-30:
        assert p == pytest.approx(float(ref.pvalue), rel=1e-8)
    assert _close(wasserstein_sorted(np.sort(x), np.sort(y)), stats.wasserstein_distance(x, y))


def test_ks_exact_mode_sizes_small_grid() -> None:
    rng = np.random.default_rng(3)
    for n1 in (1, 2, 3, 8, 13):
        for n2 in (1, 2, 5, 8, 21):
            x, y = rng.integers(0, 4, n1).astype(float), rng.integers(0, 5, n2).astype(float)
            ref = stats.ks_2samp(x, y)
            d, p = ks_2samp_sorted(np.sort(x), np.sort(y))
            assert _close(d, float(ref.statistic)), (n1, n2)
            assert _close(p, float(ref.pvalue)), (n1, n2)


def test_ks_and_wasserstein_equal_scipy_on_ties_and_tiny_samples() -> None:
    """The shared merge gives scipy's D, p-value (exact and asymptotic) and W1,
    the same floats as the one-statistic functions, and leaves its inputs alone."""
    rng = np.random.default_rng(21)
    cases = [(20000, 100000, None), (5, 7, 0), (1, 1, None), (1, 3, 0), (3000, 3000, 1), (20000, 5000, 1), (400, 90, 2)]
    for n1, n2, decimals in cases:
        x, y = np.sort(rng.normal(size=n1)), np.sort(rng.normal(0.05, 1.0, size=n2))
        if decimals is not None:
            x, y = np.round(x, decimals), np.round(y, decimals)  # ties within and across the samples
        x0, y0 = x.copy(), y.copy()
        d, p, w = ks_and_wasserstein(x, y)
        assert np.array_equal(x, x0) and np.array_equal(y, y0)
        assert (d, p) == ks_2samp_sorted(x, y) and w == wasserstein_sorted(x, y), (n1, n2)
        ref = stats.ks_2samp(x, y)
        assert _close(d, float(ref.statistic)) and _close(p, float(ref.pvalue)), (n1, n2)
        assert _close(w, stats.wasserstein_distance(x, y)), (n1, n2)
    assert ks_and_wasserstein(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == (0.0, 1.0, 0.0)
    assert ks_and_wasserstein(np.array([0.0]), np.array([2.0]))[::2] == (1.0, 2.0)


def test_sorted_finite_equals_split_then_sort() -> None:
    rng = np.random.default_rng(5)
    big = rng.normal(size=1000)
    big[rng.choice(1000, 60, replace=False)] = [np.nan] * 30 + [np.inf] * 20 + [-np.inf] * 10
    for x in (
        big,
        np.array([np.inf, -np.inf, np.nan, 0.0, 0.5, -0.5, -0.0]),
        np.array([np.nan, np.nan]),
        np.array([np.inf, -np.inf, np.inf]),
        np.array([3.0]),
        np.array([], dtype=np.float64),
    ):
        finite, n_null, n_inf = split_finite(x)
        got, n_null_got, n_inf_got = sorted_finite(x)
        assert np.array_equal(got, np.sort(finite)) and (n_null_got, n_inf_got) == (n_null, n_inf)
    assert sorted_finite(big)[1:] == (30, 30)


def test_categorical_counts_nulls_mixed_keys_and_category_dtype() -> None:
    # None and NaN are nulls; 1 and "1" are the same level; ordered by count desc, then level
    mixed = pd.Series([1, "1", None, np.nan, "a", "a", "a", 2.5, "b"], dtype=object)
    assert categorical_counts(mixed) == ({"a": 3, "1": 2, "2.5": 1, "b": 1}, 2)
    assert categorical_counts(np.array(["x", None, "y", "x"], dtype=object)) == ({"x": 2, "y": 1}, 1)
    strings = pd.Series(["u", "v", None, "v"], dtype="string")
    assert categorical_counts(strings) == ({"v": 2, "u": 1}, 1)
    # a categorical dtype lists its unused categories with a zero count
    cat = pd.Series(pd.Categorical(["p", None, "p", "q"], categories=["p", "q", "r"]))
    assert categorical_counts(cat) == ({"p": 2, "q": 1, "r": 0}, 1)


def test_js_kl_psi_from_counts() -> None:
    ref = [10, 0, 30, 60]
    cur = [5, 5, 40, 50]
    p = np.array(ref) / 100
    q = np.array(cur) / 100
    assert _close(js_from_counts(ref, cur), float(jensenshannon(p, q, base=2)))
    a, b = q + PSI_EPSILON, p + PSI_EPSILON
    assert _close(kl_from_counts(ref, cur), float(np.sum(a * np.log(a / b))))
    assert js_from_counts(ref, ref) == 0.0
    assert psi_from_counts(ref, ref) == 0.0


def test_psi_hand_computed() -> None:
    # ref proportions (0.5, 0.5), current (0.25, 0.75); eps 1e-4 added to each
    r1 = r2 = 0.5 + 1e-4
    c1, c2 = 0.25 + 1e-4, 0.75 + 1e-4
    expected = (c1 - r1) * math.log(c1 / r1) + (c2 - r2) * math.log(c2 / r2)
    assert _close(psi_from_counts([50, 50], [1, 3]), expected, 1e-15)
    # (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.17329 + 0.10137 (before epsilon)
    assert psi_from_counts([50, 50], [1, 3]) == pytest.approx(0.274586, abs=1e-6)
    # an empty current bin is finite thanks to the epsilon
    assert psi_from_counts([50, 50], [0, 4]) == pytest.approx(
        (1e-4 - r1) * math.log(1e-4 / r1) + (1 + 1e-4 - r2) * math.log((1 + 1e-4) / r2), abs=1e-12
    )
    with pytest.raises(ValueError):
        psi_from_counts([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        psi_from_counts([0, 0], [1, 2])


def test_chi_square_equals_scipy_and_unseen_level() -> None:
    ref = pd.DataFrame({"c": ["a"] * 60 + ["b"] * 30 + ["c"] * 10})
    prof = build_reference_profile(ref, [], ["c"], None, reference_null=False)
    cur = pd.DataFrame({"c": ["a"] * 40 + ["b"] * 40 + ["c"] * 15 + ["z"] * 5})
    res = evaluate_window(prof, cur, DriftConfig()).feature("c")
    # two-sample test of homogeneity: the reference counts are a sample too
    sc = stats.chi2_contingency([[60, 30, 10, 0], [40, 40, 15, 5]], correction=False)
    assert _close(res.chi2, float(sc.statistic))
    assert _close(res.p_value, float(sc.pvalue))
    assert res.chi2_dof == 3 == sc.dof
    assert res.unseen_levels == ("z",)
    # PSI on level proportions, unseen level has reference proportion 0 (+eps)
    assert _close(res.psi, psi_from_counts([60, 30, 10, 0], [40, 40, 15, 5]))
    assert _close(res.js, float(jensenshannon([0.6, 0.3, 0.1, 0], [0.4, 0.4, 0.15, 0.05], base=2)))
    assert res.drifted and res.level == "critical"  # psi ~0.54
    assert chi_square([7], [7]) == (0.0, 1.0, 0)
    # a level absent from both samples is dropped (dof counts seen levels only)
    assert chi_square([5, 0, 5], [3, 0, 7]) == chi_square([5, 5], [3, 7])


def test_chi_square_keeps_its_level_when_reference_is_as_small_as_the_window() -> None:
    """Under no change, with reference and window of 1,000 rows each, the
    two-sample test rejects at its nominal rate (a goodness-of-fit test
    against the reference shares would reject ~10x too often)."""
    rng = np.random.default_rng(3)
    p = np.full(5, 0.2)
    rejections = sum(chi_square(rng.multinomial(1000, p), rng.multinomial(1000, p))[1] < 0.05 for _ in range(2000))
    assert 0.035 <= rejections / 2000 <= 0.065


def test_numeric_feature_bin_metrics_equal_scipy() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=3000)})
    prof = build_reference_profile(ref, ["x"], [], None)
    cur_x = rng.normal(0.3, 1.2, size=800)
    res = evaluate_window(prof, pd.DataFrame({"x": cur_x}), DriftConfig()).feature("x")
    edges = prof["numeric"]["x"]["edges"]
    rc = np.array(prof["numeric"]["x"]["counts"])
    cc = np.bincount(np.searchsorted(edges, cur_x, side="right"), minlength=len(edges) + 1)
    assert _close(res.js, float(jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2)))
    assert _close(res.psi, psi_from_counts(rc, cc))
    assert _close(res.kl, kl_from_counts(rc, cc))
    ks = stats.ks_2samp(ref["x"].to_numpy(), cur_x)
    assert _close(res.ks, float(ks.statistic)) and _close(res.p_value, float(ks.pvalue))
    w = stats.wasserstein_distance(ref["x"].to_numpy(), cur_x)
    assert _close(res.wasserstein, w)
    q25, q75 = np.quantile(ref["x"].to_numpy(), [0.25, 0.75])
    assert _close(res.wasserstein_norm, w / ((q75 - q25) / stats.norm.ppf(0.75) / 2))  # robust sigma


# --------------------------------------------------------------------------- #
# Binning convention (PostgreSQL width_bucket)
# --------------------------------------------------------------------------- #
def _width_bucket(x: float, edges: list[float]) -> int:
    """PostgreSQL width_bucket(x, thresholds) for sorted thresholds."""
    if x < edges[0]:
        return 0
    for i in range(1, len(edges)):
        if edges[i - 1] <= x < edges[i]:
            return i
    return len(edges)


def test_binning_matches_width_bucket_rule() -> None:
    edges = [-1.0, 0.0, 0.5, 2.0]
    xs = [-5.0, -1.0, -0.9999, 0.0, 0.25, 0.5, 1.999, 2.0, 7.0]
    assert list(bin_index(xs, edges)) == [_width_bucket(x, edges) for x in xs] == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    rng = np.random.default_rng(9)
    v = np.round(rng.normal(size=2000), 1)
    expected = np.bincount([_width_bucket(x, edges) for x in v], minlength=5)
    assert list(bin_counts(v, edges)) == list(expected)
    assert list(bin_counts(np.sort(v), edges, assume_sorted=True)) == list(expected)
    assert counts_from_buckets([(0, 3), (4, 2), (2, 1)], 4) == [3, 0, 1, 0, 2]
    assert counts_from_buckets({1: 5}, 2) == [0, 5, 0]
    with pytest.raises(ValueError):
        counts_from_buckets([(5, 1)], 4)


# --------------------------------------------------------------------------- #
# Profile
# --------------------------------------------------------------------------- #
def _reference(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.exponential(size=n),
            "k": np.where(rng.random(n) < 0.5, 7.0, 3.0),
            "const": np.full(n, 2.5),
            "cat": rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2]),
        }
    )


def test_profile_contents_and_json_round_trip() -> None:
    df = _reference()
    df.loc[:9, "a"] = np.nan
    df.loc[10:12, "a"] = np.inf
    prof = build_reference_profile(df, ["a", "b", "k", "const"], ["cat"], {"a": 3, "b": 1, "cat": 0})
    a = prof["numeric"]["a"]
    assert a["n"] == 4987 and a["n_null"] == 10 and a["n_nonfinite"] == 3
    assert len(a["edges"]) == 9 and sum(a["counts"]) == 4987 and len(a["counts"]) == 10
    assert a["sample"] == sorted(a["sample"]) and len(a["sample"]) == 4987
    assert prof["numeric"]["k"]["edges"] == [3.0, 7.0]  # duplicate quantile edges collapsed
    assert prof["numeric"]["k"]["counts"][0] == 0
    c = prof["numeric"]["const"]
    assert c["edges"][0] == 2.5 and len(c["edges"]) == 2 and c["counts"] == [0, 5000, 0]
    assert prof["importance"] == {"a": 0.75, "b": 0.25, "k": 0.0, "const": 0.0, "cat": 0.0}
    assert sum(prof["categorical"]["cat"]["levels"].values()) == 5000
    text = profile_to_json(prof)
    back = profile_from_json(text)
    assert back == prof
    assert profile_to_json(back) == text
    cur = _reference(800, seed=1)
    r1, r2 = evaluate_window(prof, cur, DriftConfig()), evaluate_window(back, cur, DriftConfig())
    assert r1.to_rows() == r2.to_rows()


def test_profile_subsample_is_deterministic_and_uniform_importance() -> None:
    df = pd.DataFrame({"a": np.arange(100_000, dtype=float)[::-1]})
    p1 = build_reference_profile(df, ["a"], [], None, max_sample=1000)
    p2 = build_reference_profile(df, ["a"], [], None, max_sample=1000, seed=5)
    s = p1["numeric"]["a"]["sample"]
    assert s == p2["numeric"]["a"]["sample"] and len(s) == 1000
    assert s[0] == 50.0 and s[-1] == 99950.0 and s == sorted(s)
    assert p1["importance"] == {"a": 1.0}
    with pytest.raises(ValueError, match="n_bins"):
        build_reference_profile(df, ["a"], [], None, n_bins=1)
    with pytest.raises(ValueError, match="importance"):
        build_reference_profile(df, ["a"], [], {"a": -1.0})
    with pytest.raises(ValueError, match="missing"):
        build_reference_profile(df, ["nope"], [], None)


def test_profile_json_rejects_version() -> None:
    with pytest.raises(ValueError, match="schema_version"):
        profile_from_json('{"schema_version": 99}')


# --------------------------------------------------------------------------- #
# Edge cases
# --------------------------------------------------------------------------- #
def test_constant_column() -> None:
    prof = build_reference_profile(_reference(), ["const"], [], None)
    same = evaluate_window(prof, pd.DataFrame({"const": np.full(300, 2.5)}), DriftConfig()).feature("const")
    assert same.psi == 0.0 and same.ks == 0.0 and same.p_value == 1.0 and not same.drifted
    assert same.wasserstein_norm == 0.0
    moved = evaluate_window(prof, pd.DataFrame({"const": np.full(300, 2.6)}), DriftConfig()).feature("const")
    assert moved.drifted and moved.level == "critical" and moved.ks == 1.0
    # std == 0 and IQR == 0: the Wasserstein normalizer falls back to 1.0 (raw units)
    assert moved.wasserstein_norm == pytest.approx(0.1, abs=1e-12)


def test_all_nan_and_missing_column_are_no_data() -> None:
    prof = build_reference_profile(_reference(), ["a", "b"], ["cat"], None)
    cur = pd.DataFrame({"a": [np.nan] * 50, "b": np.linspace(0, 3, 50), "cat": [None] * 50})
    res = evaluate_window(prof, cur, DriftConfig())
    a = res.feature("a")
    assert a.status == "no_data" and a.statistic is None and a.p_value is None and a.n_null == 50
    assert res.feature("cat").status == "no_data"
    assert res.feature("b").status == "ok"
    rows = [r for r in res.to_rows() if r["feature"] == "a"]
    assert rows == [
        {
            "feature": "a",
            "test": "ks",
            "statistic": None,
            "p_value": None,
            "severity": 0.0,
            "drifted": False,
            "n_current": 0,
            "details": rows[0]["details"],
        }
    ]
    assert rows[0]["details"]["status"] == "no_data"
    missing = evaluate_window(prof, cur.drop(columns=["b"]), DriftConfig()).feature("b")
    assert missing.status == "no_data" and missing.note == "column missing"
    assert any("not evaluated" in line for line in res.summary_lines())


def test_one_row_window_and_infinities() -> None:
    prof = build_reference_profile(_reference(), ["a", "b"], ["cat"], None)
    res = evaluate_window(prof, pd.DataFrame({"a": [0.1], "b": [1.0], "cat": ["q"]}), DriftConfig())
    assert all(f.status == "ok" for f in res.features)
    assert not res.drifted and res.level == "none" and res.drift_score == 0.0
    a = res.feature("a")
    assert a.n_current == 1 and 0 < a.p_value <= 1 and a.psi > 0 and a.p_adjusted is None
    assert "too few values" in a.note and not a.significant and a.severity == 0.0
    cat = res.feature("cat")
    assert cat.unseen_levels == ("q",) and cat.p_value < 1e-10 and not cat.drifted  # 1 row: not tested
    # with min_rows=1 the single unseen category is (correctly, formally) significant
    assert (
        evaluate_window(prof, pd.DataFrame({"a": [0.1], "b": [1.0], "cat": ["q"]}), DriftConfig(min_rows=1))
        .feature("cat")
        .drifted
    )
    cur = pd.DataFrame({"a": [np.inf, -np.inf, np.nan, 0.0, 0.5, -0.5], "b": [1.0] * 6, "cat": ["x"] * 6})
    a = evaluate_window(prof, cur, DriftConfig()).feature("a")
    assert a.n_nonfinite == 2 and a.n_null == 1 and a.n_current == 3
    ks = stats.ks_2samp(np.array(prof["numeric"]["a"]["sample"]), [0.0, 0.5, -0.5])
    assert _close(a.ks, float(ks.statistic)) and _close(a.p_value, float(ks.pvalue))


# --------------------------------------------------------------------------- #
# Decisions
# --------------------------------------------------------------------------- #
def test_benjamini_hochberg_hand_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.20]
    # sorted: 0.005, 0.01, 0.03, 0.04, 0.20 ; m/rank * p = 0.025, 0.025, 0.05, 0.05, 0.20
    adj, rej = benjamini_hochberg(p, 0.05)
    assert adj == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.20], abs=1e-15)
    assert rej == [True, True, True, True, False]
    adj, rej = benjamini_hochberg(p, 0.04)
    assert rej == [True, False, False, True, False]
    assert benjamini_hochberg([], 0.05) == ([], [])
    # step-up: 0.04 at rank 4 of 4 passes (0.04 <= 4/4*0.05) and carries every smaller p
    assert benjamini_hochberg([0.04, 0.04, 0.04, 0.04], 0.05)[1] == [True] * 4


def test_no_false_alarm_on_huge_window_with_negligible_shift() -> None:
    rng = np.random.default_rng(11)
    feats = [f"f{i}" for i in range(20)]
    ref = pd.DataFrame({f: rng.normal(size=50_000) for f in feats})
    prof = build_reference_profile(ref, feats, [], None)
    cur = pd.DataFrame({f: rng.normal(0.02, 1.0, size=1_000_000) for f in feats})
    res = evaluate_window(prof, cur, DriftConfig())
    assert res.n_drifted == 0 and not res.drifted and res.level == "none"
    assert res.drift_score < 0.02  # significant KS gives small severities, no drift
    assert max(f.psi for f in res.features) < 0.01
    assert max(f.wasserstein_norm for f in res.features) < 0.05


def test_detects_quarter_sigma_shift_in_one_feature() -> None:
    rng = np.random.default_rng(12)
    feats = [f"f{i}" for i in range(20)]
    ref = pd.DataFrame({f: rng.normal(size=20_000) for f in feats})
    prof = build_reference_profile(ref, feats, [], {f: (5.0 if f == "f3" else 1.0) for f in feats})
    cur = pd.DataFrame({f: rng.normal(0.25 if f == "f3" else 0.0, 1.0, size=10_000) for f in feats})
    res = evaluate_window(prof, cur, DriftConfig())
    assert [f.feature for f in res.drifted_features] == ["f3"]
    f3 = res.feature("f3")
    assert f3.level == "warning" and f3.p_adjusted < 1e-10
    assert 0.2 <= f3.wasserstein_norm < 0.3 and f3.psi < 0.1  # PSI alone would have missed it
    assert f3.severity == pytest.approx(100 * f3.wasserstein_norm / 0.5, abs=1e-9)  # W / critical
    assert res.level == "warning" and res.drifted
    assert res.drift_score == pytest.approx(5 / 24 * f3.severity / 100, abs=1e-12)
    assert res.drift_score_100 == pytest.approx(100 * res.drift_score)
    lines = res.summary_lines(top=5)
    assert lines[0].startswith("drift score") and "f3" in lines[1] and "DRIFTED warning" in lines[1]
    rows = res.to_rows()
    assert len(rows) == 20 * 6
    ks_row = next(r for r in rows if r["feature"] == "f3" and r["test"] == "ks")
    assert ks_row["statistic"] == f3.ks and ks_row["p_value"] == f3.p_value and ks_row["drifted"] is True
    psi_row = next(r for r in rows if r["feature"] == "f3" and r["test"] == "psi")
    assert psi_row["p_value"] is None and psi_row["statistic"] == f3.psi
    assert {r["test"] for r in rows} == {"ks", "psi", "kl", "js", "wasserstein", "wasserstein_norm"}
    assert set(rows[0]) == {"feature", "test", "statistic", "p_value", "severity", "drifted", "n_current", "details"}
    # a model-level floor can mute it
    muted = evaluate_window(prof, cur, DriftConfig(min_model_score=0.5))
    assert muted.level == "none" and not muted.drifted and muted.n_drifted == 1


# --------------------------------------------------------------------------- #
# Hysteresis
# --------------------------------------------------------------------------- #
def test_hysteresis_transitions() -> None:
    h = Hysteresis()  # 2 of 3 fire, 3 clean resolve
    r = h.step([True], "clear")
    assert (r.state, r.transition) == ("clear", None)  # one drifted window is not enough
    assert h.step([False, True], "clear").transition is None
    r = h.step([True, False, True], "clear")
    assert (r.state, r.transition) == ("firing", "fire")
    assert h.step([True, True, False], "clear").transition is None  # newest clean never fires
    assert h.step([True, True, False], "firing").state == "firing"
    assert h.step([True, False, False], "firing").transition is None
    r = h.step([True, False, False, False], "firing")
    assert (r.state, r.transition) == ("clear", "resolve")
    assert h.step([True, True, True], "firing") == h.step([True], "firing")  # stays, no transition
    h34 = Hysteresis(fire_n=3, fire_m=4, resolve_k=2)
    assert h34.step([True, True, False, True], "clear").transition == "fire"
    assert h34.step([True, False, False, True], "clear").transition is None
    assert h34.step([False, False], "firing").transition == "resolve"
    cfg = DriftConfig.from_dict({"fire_n": 1, "fire_m": 1, "resolve_k": 1})
    assert update_alert_state([True], "clear", cfg).transition == "fire"
    assert update_alert_state([False], "firing", cfg).transition == "resolve"
    with pytest.raises(ValueError, match="state"):
        h.step([True], "open")
    with pytest.raises(ValueError, match="fire_n"):
        Hysteresis(fire_n=4, fire_m=3)


# --------------------------------------------------------------------------- #
# Config
# --------------------------------------------------------------------------- #
def test_drift_config_defaults_and_validation() -> None:
    cfg = DriftConfig()
    assert (cfg.fdr_q, cfg.psi_warning, cfg.psi_critical) == (0.05, 0.1, 0.25)
    assert (cfg.wasserstein_warning, cfg.wasserstein_critical) == (0.2, 0.5)
    assert (cfg.fire_n, cfg.fire_m, cfg.resolve_k, cfg.min_rows, cfg.min_model_score) == (2, 3, 3, 20, 0.0)
    assert DriftConfig.from_dict(None) == cfg
    assert DriftConfig.from_dict({"psi_warning": 0.2, "psi_critical": 0.3}).psi_warning == 0.2
    bad = [
        ({"psi_warnin": 0.1}, "psi_warnin"),
        ({"fdr_q": 1.5}, "fdr_q"),
        ({"fdr_q": "0.05"}, "fdr_q"),
        ({"psi_critical": 0.05}, "psi_critical"),
        ({"psi_warning": float("nan")}, "psi_warning"),
        ({"wasserstein_warning": -1}, "wasserstein_warning"),
        ({"fire_n": 2.0}, "fire_n"),
        ({"fire_n": 5}, "fire_n"),
        ({"resolve_k": 0}, "resolve_k"),
        ({"min_rows": 0}, "min_rows"),
        ({"ks_exact_max_n": 0}, "ks_exact_max_n"),
        ({"min_model_score": 2}, "min_model_score"),
        ({"fire_m": True}, "fire_m"),
    ]
    for overrides, key in bad:
        with pytest.raises(ValueError, match=key):
            DriftConfig.from_dict(overrides)
    with pytest.raises(ValueError):
        DriftConfig.from_dict([("fdr_q", 0.1)])  # type: ignore[arg-type]


def _ar1(rng, n: int, rho: float) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.normal()
    e = rng.normal(size=n) * math.sqrt(1 - rho**2)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return x


def test_reference_null_keeps_autocorrelated_features_quiet_but_sees_a_real_shift() -> None:
    """A slow AR(1) feature (rho 0.99): any 40-row stretch looks 'different' from
    the long-run distribution (KS p tiny), but it is no more unusual than the
    reference's own stretches. The null stops those false alarms; a 5-sigma
    regime still drifts."""
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"slow": _ar1(rng, 8000, 0.99), "fast": rng.normal(size=8000)})
    with_null = build_reference_profile(ref, ["slow", "fast"], [], None)
    without = build_reference_profile(ref, ["slow", "fast"], [], None, reference_null=False)
    assert without["numeric"]["slow"]["null"] is None
    null = with_null["numeric"]["slow"]["null"]
    assert null["stat"] == "w_norm" and null["sizes"] == [10, 20, 40, 80, 160, 320, 640, 1280]
    # the slow feature's windows sit far from the reference; the fast one's do not
    assert null_threshold(null, "w_norm", 40) > 3 * null_threshold(with_null["numeric"]["fast"]["null"], "w_norm", 40)

    later = _ar1(np.random.default_rng(4), 4000, 0.99)
    windows = [later[i : i + 40] for i in range(0, 4000, 40)]
    fast = np.random.default_rng(5).normal(size=(len(windows), 40))
    naive = quiet = fires = 0
    history, state = [], "clear"
    for w, f in zip(windows, fast, strict=True):
        cur = pd.DataFrame({"slow": w, "fast": f})
        naive += evaluate_window(without, cur, DriftConfig()).drifted
        drifted = evaluate_window(with_null, cur, DriftConfig()).drifted
        quiet += drifted
        history.append(drifted)
        step = Hysteresis.from_config(DriftConfig()).step(history, state)
        state, fires = step.state, fires + (step.transition == "fire")
    assert naive >= 30  # the plain tests cry wolf on most stretches of the same process
    assert quiet <= 8  # BH at q=0.05 with one testable feature: ~5% of windows, by design
    assert fires <= 1  # and the 2-of-3 hysteresis turns that into at most one alert

    shifted = pd.DataFrame({"slow": windows[0] + 5.0, "fast": fast[0]})
    res = evaluate_window(with_null, shifted, DriftConfig())
    slow = res.feature("slow")
    assert slow.drifted and slow.p_null < 1e-3 and slow.thresholds["wasserstein_norm"] > 0.2
    assert not res.feature("fast").drifted


def test_null_threshold_and_pvalue_interpolate_and_extrapolate() -> None:
    null = {
        "sizes": [10, 100],
        "psi": [1.0, 0.1],
        "w_norm": [0.4, 0.1],
        "log_mu": [math.log(0.2), math.log(0.05)],
        "log_sigma": [0.5, 0.5],
        "stat": "w_norm",
    }
    assert null_threshold(null, "w_norm", 5) == pytest.approx(0.4)
    assert null_threshold(null, "w_norm", 10) == pytest.approx(0.4)
    assert null_threshold(null, "w_norm", math.sqrt(10 * 100)) == pytest.approx(0.2)  # log-log midpoint
    assert null_threshold(null, "w_norm", 400) == pytest.approx(0.05)  # 1/sqrt(n) beyond the last size
    assert null_threshold(null, "psi", 400) == pytest.approx(0.025)  # 1/n for PSI
    assert null_threshold(None, "psi", 400) == 0.0
    # the p-value is the log-normal upper tail; at the fitted median it is 0.5
    assert null_pvalue(null, 0.05, 100) == pytest.approx(0.5)
    assert null_pvalue(null, 0.05 * math.exp(0.5 * 2.0), 100) == pytest.approx(float(stats.norm.sf(2.0)))
    assert null_pvalue(null, 0.025, 400) == pytest.approx(0.5)  # median falls as 1/sqrt(n)
    assert null_pvalue(null, 0.0, 100) == 1.0 and null_pvalue(None, 1.0, 100) is None
    # a finite reference: its own windows overlap it (variance 1/L - 1/N), an
    # independent window does not (1/n + 1/N)
    k10, k100 = math.sqrt(1010 / 990), math.sqrt(1100 / 900)
    assert null_threshold(null, "w_norm", 10, n_ref=1000) == pytest.approx(0.4 * k10)
    assert null_threshold(null, "w_norm", 1000, n_ref=1000) == pytest.approx(
        0.1 * k100 * math.sqrt((1 / 1000 + 1 / 1000) / (1 / 100 + 1 / 1000))
    )
    assert null_threshold(null, "psi", 1000, n_ref=1000) == pytest.approx(
        0.1 * k100**2 * (1 / 1000 + 1 / 1000) / (1 / 100 + 1 / 1000)
    )
    assert null_pvalue(null, 0.05 * k100, 100, n_ref=1000) == pytest.approx(0.5)


def test_category_share_shift_is_detected_where_psi_is_not() -> None:
    rng = np.random.default_rng(8)
    levels = np.array(list("abcde"))
    ref = pd.DataFrame({"c": levels[rng.integers(0, 5, size=20_000)]})
    prof = build_reference_profile(ref, [], ["c"], None)
    cur = pd.DataFrame({"c": rng.choice(levels, size=10_000, p=[0.3, 0.175, 0.175, 0.175, 0.175])})
    f = evaluate_window(prof, cur, DriftConfig()).feature("c")
    assert f.psi < 0.1 and 0.08 < f.share_shift < 0.12
    assert f.drifted and f.level == ("critical" if f.share_shift >= 0.10 else "warning")
    same = pd.DataFrame({"c": levels[rng.integers(0, 5, size=10_000)]})
    assert not evaluate_window(prof, same, DriftConfig()).feature("c").drifted


def test_binned_mode_matches_raw_mode() -> None:
    """Counts per fine bucket (what PostgreSQL's width_bucket returns) give the same
    PSI/KL/JS/chi-square as the raw values, KS and W within a bin, the same verdicts."""
    from include.modelwatch.monitoring.drift import evaluate_binned

    rng = np.random.default_rng(21)
    levels = np.array(list("xyz"))
    ref = pd.DataFrame(
        {"a": rng.normal(size=30_000), "b": rng.exponential(size=30_000), "c": levels[rng.integers(0, 3, size=30_000)]}
    )
    prof = build_reference_profile(ref, ["a", "b"], ["c"], {"a": 2.0, "b": 1.0, "c": 1.0})
    cur = pd.DataFrame(
        {
            "a": rng.normal(0.3, 1.0, size=50_000),
            "b": rng.exponential(size=50_000),
            "c": rng.choice(levels, size=50_000, p=[0.5, 0.25, 0.25]),
        }
    )
    cur.loc[:9, "b"] = np.nan
    raw = evaluate_window(prof, cur, DriftConfig())
    num = {}
    for f in ("a", "b"):
        fine = prof["numeric"][f]["fine_edges"]
        x = cur[f].to_numpy()
        buckets = pd.Series(bin_index(x[np.isfinite(x)], fine)).value_counts()
        num[f] = {"counts": counts_from_buckets(buckets.items(), len(fine)), "n_null": int(np.isnan(x).sum())}
    cat = {"c": {"levels": cur["c"].value_counts().to_dict(), "n_null": 0}}
    binned = evaluate_binned(prof, num, cat, len(cur), DriftConfig())
    for f in ("a", "b", "c"):
        r, b = raw.feature(f), binned.feature(f)
        assert b.n_current == r.n_current and b.n_null == r.n_null
        for m in ("psi", "kl", "js", "chi2", "chi2_pvalue", "share_shift"):
            if getattr(r, m) is None:  # chi2 / share only for the categorical
                assert getattr(b, m) is None
            else:
                assert _close(getattr(b, m), getattr(r, m)), (f, m)
        assert b.drifted == r.drifted and b.level == r.level
    for f in ("a", "b"):
        r, b = raw.feature(f), binned.feature(f)
        assert 0 <= r.ks - b.ks <= 0.02  # binned D is a lower bound, off by at most ~one fine bin
        assert abs(b.wasserstein_norm - r.wasserstein_norm) < 0.02
    assert raw.feature("a").drifted and raw.feature("c").drifted and not raw.feature("b").drifted
    # the window's counts per reference bin, what the drift window page overlays on the reference
    for f in ("a", "b"):
        edges = np.asarray(prof["numeric"][f]["edges"])
        x = cur[f].to_numpy()
        expected = np.bincount(np.searchsorted(edges, x[np.isfinite(x)], side="right"), minlength=edges.size + 1)
        assert list(raw.feature(f).window_bins) == expected.tolist() == list(binned.feature(f).window_bins)
        assert sum(raw.feature(f).window_bins) == raw.feature(f).n_current
    shares = cur["c"].value_counts()
    ref_levels = list(prof["categorical"]["c"]["levels"])
    assert list(raw.feature("c").window_bins) == [int(shares[lv]) for lv in ref_levels]
    assert list(binned.feature("c").window_bins) == list(raw.feature("c").window_bins)
    rows = [r for r in raw.to_rows() if r["feature"] == "a"]
    assert [r["test"] for r in rows if "window_bins" in r["details"]] == ["psi"]
    assert binned.drift_score == pytest.approx(raw.drift_score, abs=0.02)
    with pytest.raises(ValueError, match="bucket counts"):
        evaluate_binned(prof, {"a": {"counts": [1, 2, 3], "n_null": 0}}, {}, 6, DriftConfig())


def test_threaded_evaluation_equals_one_thread() -> None:
    """Large windows evaluate numeric features on several threads; the
    results (every statistic, p-value and decision) are the same."""
    rng = np.random.default_rng(12)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=30_000) for i in range(6)})
    ref["c"] = rng.choice(list("abc"), size=30_000)
    prof = build_reference_profile(ref, [f"x{i}" for i in range(6)], ["c"], None)
    cur = pd.DataFrame({f"x{i}": rng.normal(0.05 * i, 1.0, size=25_000) for i in range(6)})
    cur["c"] = rng.choice(list("abc"), size=25_000)
    one = evaluate_window(prof, cur, DriftConfig(threads=1))
    many = evaluate_window(prof, cur, DriftConfig(threads=4))
    assert one.to_rows() == many.to_rows()
    assert [f.feature for f in many.features] == [*(f"x{i}" for i in range(6)), "c"]
    assert many.feature("x5").drifted and not many.feature("x0").drifted  # 0.25 sigma vs none
