"""A/B test assignment and statistics (include/modelwatch/ab/assignment.py, stats.py) against hand computations
and scipy."""

from __future__ import annotations

import hashlib
import math
from datetime import date, datetime

import numpy as np
import pytest
from scipy import integrate, special
from scipy import stats as sp_stats

from include.modelwatch.ab import stats as ab
from include.modelwatch.ab.assignment import CHALLENGER, CHAMPION, arm_for, unit_hash, unit_key


# ------------------------------------------------------------------------------------------------ assignment
def test_unit_key_names_symbol_and_session():
    assert unit_key("SPX", date(2008, 10, 6)) == "SPX@2008-10-06"
    with pytest.raises(TypeError, match="datetime.date"):
        unit_key("SPX", datetime(2008, 10, 6, 15, 30))
    with pytest.raises(ValueError, match="symbol"):
        unit_key(" ", date(2008, 10, 6))


def test_unit_hash_is_the_documented_sha256_prefix():
    digest = hashlib.sha256(b"7:SPX@2008-10-06").digest()
    assert unit_hash(7, "SPX@2008-10-06") == int.from_bytes(digest[:8], "big") / 2**64
    assert unit_hash(7, "SPX@2008-10-06") == pytest.approx(0.9409632935743906, abs=1e-15)  # pinned: never changes
    assert arm_for(7, "SPX@2008-10-06", 0.5) == CHAMPION
    assert arm_for(7, "SPX@2008-10-06", 0.95) == CHALLENGER
    assert unit_hash(8, "SPX@2008-10-06") != unit_hash(7, "SPX@2008-10-06")


def test_assignment_is_stable_and_matches_the_split_on_100k_units():
    units = [f"SYM{i % 500}@{date.fromordinal(733000 + i // 500).isoformat()}" for i in range(100_000)]
    split = 0.3
    arms = [arm_for(42, u, split) for u in units]
    assert arms == [arm_for(42, u, split) for u in units]  # deterministic
    share = arms.count(CHALLENGER) / len(units)
    assert abs(share - split) < 3 * math.sqrt(split * (1 - split) / len(units))
    # raising the split only moves champion units to the challenger
    wider = [arm_for(42, u, 0.5) for u in units]
    assert all(w == CHALLENGER for a, w in zip(arms, wider, strict=True) if a == CHALLENGER)
    # another test splits the same units independently: agreement ~ 0.3*0.3 + 0.7*0.7 = 0.58
    other = [arm_for(43, u, split) for u in units]
    agree = sum(a == o for a, o in zip(arms, other, strict=True)) / len(units)
    assert abs(agree - 0.58) < 3 * math.sqrt(0.58 * 0.42 / len(units))


def test_split_bounds():
    assert arm_for(1, "X@2020-01-02", 0.0) == CHAMPION
    assert arm_for(1, "X@2020-01-02", 1.0) == CHALLENGER
    with pytest.raises(ValueError, match="split"):
        arm_for(1, "X@2020-01-02", 1.5)


# ------------------------------------------------------------------------------------------------ counts
def test_paired_and_arm_counts():
    champ = [1, 1, 0, 0, 1, 0, 1]
    chal = [1, 0, 1, 0, 0, 1, 1]
    arm = [0, 1, 1, 0, 0, 1, 0]
    pc = ab.paired_counts(champ, chal)
    assert (pc.both_right, pc.champion_only, pc.challenger_only, pc.both_wrong) == (2, 2, 2, 1)
    assert (pc.n, pc.b, pc.c, pc.discordant, pc.hits_champion, pc.hits_challenger) == (7, 2, 2, 4, 4, 4)
    assert pc.rate_difference == 0.0
    ac = ab.arm_counts(champ, chal, arm)
    # champion arm: rows 0, 3, 4, 6 -> champion hits 1, 0, 1, 1; challenger arm: rows 1, 2, 5 -> 0, 1, 1
    assert ac == ab.ArmCounts(n_champion=4, hits_champion=3, n_challenger=3, hits_challenger=2)
    assert ac.rate_champion == 0.75 and ac.rate_challenger == pytest.approx(2 / 3)
    assert ab.PairedCounts(10, 3, 7, 80).rate_difference == pytest.approx(0.04)
    with pytest.raises(ValueError, match="0/1"):
        ab.paired_counts([0, 2], [1, 1])
    with pytest.raises(ValueError, match="length"):
        ab.paired_counts([0, 1], [1])
    with pytest.raises(ValueError, match="non-negative"):
        ab.PairedCounts(1, -1, 0, 0)
    with pytest.raises(ValueError, match="more hits than rows"):
        ab.ArmCounts(3, 4, 1, 1)


# ------------------------------------------------------------------------------------------------ z-test
def test_two_proportion_z_against_a_hand_computation():
    # 45/100 vs 60/100: pooled 0.525, se = sqrt(0.525 * 0.475 * (1/100 + 1/100)) = 0.0706222
    z, p = ab.two_proportion_z(45, 100, 60, 100)
    se = math.sqrt(0.525 * 0.475 * 0.02)
    assert z == pytest.approx(0.15 / se, rel=1e-12)
    assert z == pytest.approx(2.1239769762, abs=1e-9)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert p == pytest.approx(0.0336720689, abs=1e-9)
    z2, p2 = ab.two_proportion_z(60, 100, 45, 100)  # the sign follows the challenger (b)
    assert z2 == pytest.approx(-z) and p2 == pytest.approx(p)


def test_two_proportion_z_degenerate_inputs():
    assert ab.two_proportion_z(0, 0, 5, 10) == (0.0, 1.0)
    assert ab.two_proportion_z(10, 10, 20, 20) == (0.0, 1.0)  # pooled rate 1: no variance
    with pytest.raises(ValueError, match="successes exceed"):
        ab.two_proportion_z(11, 10, 1, 10)
    z, p = ab.two_proportion_z_arrays(np.array([45, 0]), np.array([100, 0]), np.array([60, 3]), np.array([100, 5]))
    assert z[0] == pytest.approx(2.1239769762) and z[1] == 0.0 and p[1] == 1.0


# ------------------------------------------------------------------------------------------------ McNemar
@pytest.mark.parametrize("b,c", [(0, 1), (1, 0), (3, 3), (2, 9), (10, 3), (50, 70), (200, 260), (0, 25)])
def test_mcnemar_matches_scipy_binomtest(b, c):
    r = ab.mcnemar(b, c)
    assert r.p_value == pytest.approx(sp_stats.binomtest(c, b + c, 0.5).pvalue, rel=1e-10)
    assert r.effect == pytest.approx((c - b) / (b + c))


def test_mcnemar_effects_and_empty_table():
    r = ab.mcnemar(2, 9, n_pairs=100)
    assert r.p_value == pytest.approx(0.0654296875, abs=1e-12)  # 2 * (1 + 11 + 55) / 2**11
    assert r.effect == pytest.approx(7 / 11) and r.rate_difference == pytest.approx(0.07)
    assert ab.mcnemar(0, 0) == ab.McNemarResult(0, 0, 1.0, 0.0, None)
    with pytest.raises(ValueError, match="n_pairs"):
        ab.mcnemar(5, 5, n_pairs=9)


# ------------------------------------------------------------------------------------------------ sequential
def test_mixture_on_hand_computed_cases():
    # a = 1 (uniform prior), b = 1, c = 3, n = 4:
    # L+ = 2**4 * 2 * int_{1/2}^1 p^3 (1 - p) dp = 32 * 0.040625 = 1.3
    # L- = 32 * int_0^{1/2} q^3 (1 - q) dq = 32 * 0.009375 = 0.3
    # their mean is the symmetric mixture 2**4 * B(4, 2) / B(1, 1) = 16 / 20 = 0.8
    up, down = ab.mixture_log_lr(1, 3, prior_a=1.0)
    assert math.exp(up) == pytest.approx(1.3, rel=1e-12)
    assert math.exp(down) == pytest.approx(0.3, rel=1e-12)
    # b = 0, c = 10: L+ = 2**11 * int_{1/2}^1 p^10 dp = (2**11 - 1) / 11 = 186.09 >= 2 / 0.05 = 40
    r = ab.sequential_paired(0, 10, alpha=0.05, prior_a=1.0)
    assert math.exp(r.log_lr_challenger) == pytest.approx(2047 / 11, rel=1e-12)
    assert r.threshold == pytest.approx(40.0) and r.decision == ab.CHALLENGER_BETTER
    assert r.log_lr == r.log_lr_challenger
    assert ab.sequential_paired(0, 10, alpha=0.001, prior_a=1.0).decision == ab.SEQ_CONTINUE  # 186 < 2000
    assert ab.sequential_paired(10, 0, alpha=0.05, prior_a=1.0).decision == ab.CHAMPION_BETTER


def test_mixture_matches_numerical_integration_at_the_default_prior():
    b, c, a = 40, 62, ab.DEFAULT_PRIOR_A
    dens = sp_stats.beta(a, a).pdf
    plus = integrate.quad(lambda p: 2 * p**c * (1 - p) ** b * dens(p), 0.5, 1, epsabs=0, epsrel=1e-12)[0]
    minus = integrate.quad(lambda p: 2 * p**c * (1 - p) ** b * dens(p), 0, 0.5, epsabs=0, epsrel=1e-12)[0]
    up, down = ab.mixture_log_lr(b, c, a)
    assert float(up) == pytest.approx((b + c) * math.log(2) + math.log(plus), abs=1e-8)
    assert float(down) == pytest.approx((b + c) * math.log(2) + math.log(minus), abs=1e-8)
    # the two sides average to the symmetric beta-binomial mixture 2**n B(c + a, b + a) / B(a, a)
    sym = (b + c) * math.log(2) + special.betaln(c + a, b + a) - special.betaln(a, a)
    assert np.logaddexp(up, down) - math.log(2) == pytest.approx(sym, abs=1e-10)


@pytest.mark.parametrize("a", [1.0, 50.0])
def test_mixture_is_a_martingale_with_mean_one_under_the_null(a):
    # E[L+_n] over Binomial(n, 1/2) discordant outcomes is exactly 1 (what Ville's inequality needs) ...
    n = 30
    k = np.arange(n + 1)
    up, down = ab.mixture_log_lr(n - k, k, a)
    w = sp_stats.binom.pmf(k, n, 0.5)
    assert float(np.sum(w * np.exp(up))) == pytest.approx(1.0, rel=1e-10)
    assert float(np.sum(w * np.exp(down))) == pytest.approx(1.0, rel=1e-10)
    # ... and below 1 when the challenger is in truth worse (a supermartingale: its claim stays controlled)
    assert float(np.sum(sp_stats.binom.pmf(k, n, 0.4) * np.exp(up))) < 1.0


def test_sequential_test_controls_false_decisions_at_every_look():
    # 4,000 null sequences of 400 discordant pairs, looked at after every pair
    rng = np.random.default_rng(5)
    c = np.cumsum(rng.integers(0, 2, size=(4000, 400)), axis=1)
    b = np.arange(1, 401) - c
    up, down = ab.sequential_crossings(b, c, alpha=0.05)
    rate_up, rate_any = up.any(axis=1).mean(), (up | down).any(axis=1).mean()
    assert rate_up <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / 4000)
    assert rate_any <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 4000)
    # while a real 0.6 win share among discordant pairs is found in most sequences
    c1 = np.cumsum(rng.random((2000, 400)) < 0.6, axis=1)
    up1, _ = ab.sequential_crossings(np.arange(1, 401) - c1, c1, alpha=0.05)
    assert up1.any(axis=1).mean() > 0.8


def test_sequential_extremes_and_inputs():
    r = ab.sequential_paired(3000, 10)
    assert r.decision == ab.CHAMPION_BETTER and r.log_lr_challenger == -math.inf and math.isfinite(r.log_lr)
    tie = ab.sequential_paired(500, 500)
    assert tie.decision == ab.SEQ_CONTINUE and tie.log_lr_challenger == tie.log_lr_champion <= 0.0
    assert ab.sequential_paired(0, 0).log_lr_challenger == pytest.approx(0.0, abs=1e-12)  # no data: L = 1
    with pytest.raises(ValueError, match="alpha"):
        ab.sequential_paired(1, 2, alpha=1.0)
    with pytest.raises(ValueError, match="prior_a"):
        ab.sequential_paired(1, 2, prior_a=0.0)
    with pytest.raises(ValueError, match="unit"):
        ab.sequential_paired(1, 2, unit="day")


def test_session_wins_and_the_session_level_test():
    b = np.array([3, 5, 2, 4, 0])
    c = np.array([6, 5, 1, 9, 2])
    assert ab.session_wins(b, c) == (1, 3)  # session 2 is a tie and carries no information
    r = ab.sequential_paired(1, 3, unit=ab.UNIT_SESSION)
    assert r.unit == ab.UNIT_SESSION and r.prior_a == ab.DEFAULT_SESSION_PRIOR_A
    # 20 sessions won by the challenger, none by the champion, Beta(2, 2): 2**21 * int_{1/2}^1 6 p^21 (1 - p) dp
    r = ab.sequential_paired(0, 20, unit=ab.UNIT_SESSION)
    hand = 2**21 * 6 * ((1 - 0.5**22) / 22 - (1 - 0.5**23) / 23)
    assert math.exp(r.log_lr_challenger) == pytest.approx(hand, rel=1e-10)
    assert r.decision == ab.CHALLENGER_BETTER
    with pytest.raises(ValueError, match="same length"):
        ab.session_wins(np.array([1]), np.array([1, 2]))


# ------------------------------------------------------------------------------------------------ SRM
@pytest.mark.parametrize("n_a,n_b,split", [(5100, 4900, 0.5), (720, 280, 0.3), (4000, 4300, 0.5), (10, 0, 0.5)])
def test_srm_matches_scipy_chisquare(n_a, n_b, split):
    total = n_a + n_b
    ref = sp_stats.chisquare([n_a, n_b], f_exp=[total * (1 - split), total * split])
    r = ab.srm_check(n_a, n_b, split)
    assert r.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.mismatch == (ref.pvalue < 0.001)


def test_srm_flags_and_edges():
    assert not ab.srm_check(5100, 4900, 0.5).mismatch  # chi2 = 4, p = 0.0455
    assert ab.srm_check(5100, 4900, 0.5).p_value == pytest.approx(0.04550026, abs=1e-8)
    broken = ab.srm_check(4000, 4300, 0.5)  # chi2 = 2 * 150**2 / 4150 = 10.843, p = 0.00099
    assert broken.chi2 == pytest.approx(2 * 150**2 / 4150) and broken.p_value == pytest.approx(0.000992, abs=1e-6)
    assert broken.mismatch and broken.observed_split == pytest.approx(4300 / 8300)
    assert ab.srm_check(0, 0, 0.5).p_value == 1.0 and not ab.srm_check(0, 0, 0.5).mismatch
    with pytest.raises(ValueError, match="split"):
        ab.srm_check(5, 5, 1.0)


# ------------------------------------------------------------------------------------------------ Thompson
def _exact_prob_b_better(sa: int, na: int, sb: int, nb: int) -> float:
    fa = sp_stats.beta(1 + sa, 1 + na - sa)
    fb = sp_stats.beta(1 + sb, 1 + nb - sb)
    return integrate.quad(lambda x: fb.pdf(x) * fa.cdf(x), 0, 1, epsabs=1e-12, limit=200)[0]


@pytest.mark.parametrize("counts", [(40, 100, 55, 100), (520, 1000, 540, 1000), (3, 10, 2, 10)])
def test_thompson_split_matches_the_exact_probability(counts):
    sa, na, sb, nb = counts
    exact = _exact_prob_b_better(sa, na, sb, nb)
    got = ab.thompson_split(sa, na, sb, nb, draws=40_000, seed=3)
    se = math.sqrt(exact * (1 - exact) / 40_000)
    assert abs(got - min(max(exact, ab.SPLIT_MIN), ab.SPLIT_MAX)) < 4 * se + 1e-12
    assert got == ab.thompson_split(sa, na, sb, nb, draws=40_000, seed=3)  # seeded: reproducible


def test_thompson_split_is_clipped_and_neutral_without_data():
    assert ab.thompson_split(0, 100, 100, 100) == ab.SPLIT_MAX
    assert ab.thompson_split(100, 100, 0, 100) == ab.SPLIT_MIN
    assert abs(ab.thompson_split(0, 0, 0, 0) - 0.5) < 4 * math.sqrt(0.25 / ab.DEFAULT_DRAWS)
    probs = ab.thompson_split_arrays([40, 0], [100, 100], [55, 100], [100, 100], clip=False)
    assert probs[1] == 1.0 and 0.9 < probs[0] < 0.99
    with pytest.raises(ValueError, match="successes"):
        ab.thompson_split_arrays([5], [4], [1], [2])
