"""Statistics of champion/challenger A/B tests on per-row hits (0/1: the realised return has the predicted sign).

Conventions, everywhere in this module: ``a`` is the champion, ``b`` the challenger; a positive
effect or z favours the challenger. In paired counts ``b`` (McNemar's b) is the number of rows the
champion got right and the challenger wrong, ``c`` the reverse.

* :func:`two_proportion_z`: pooled two-proportion z-test on the *assigned* arms (a fixed-horizon test:
  its p-value is valid for one look only, not for a daily look at accumulating data).
* :func:`mcnemar`: exact McNemar test on the *paired* rows (both models score every row; the
  challenger's scores on champion-assigned rows are shadow predictions). Also fixed-horizon.
* :func:`sequential_paired`: the test the daily evaluation acts on; anytime-valid, see below.
* :func:`srm_check`: sample-ratio mismatch of the assignment.
* :func:`thompson_split`: the challenger's share for the next day in bandit mode.

Sequential paired test (always valid)
-------------------------------------
Only the *discordant* rows carry information on which model is better. Take the null hypothesis of
McNemar's test: for every row, given everything observed before it, "challenger right, champion
wrong" is as likely as the reverse. Then, among discordant rows, the challenger wins each one with
probability exactly 1/2, independently of the past, whatever the hit rates, their correlation or
their drift over time. With ``n = b + c`` discordant rows and a Beta(a, a) prior on the challenger's
winning probability ``p`` restricted to one side of 1/2, the mixture likelihood ratios against p = 1/2

    L+ = 2**n * 2 * integral_{1/2}^{1} p**c (1-p)**b  Beta(a, a)(dp)
       = 2**n * 2 * B(c + a, b + a) / B(a, a) * P(X > 1/2),  X ~ Beta(c + a, b + a)   (challenger better)
    L- = the same with b and c swapped                                                (champion better)

are non-negative martingales with mean 1 under the null (supermartingales when the challenger is in
truth worse, for L+, or better, for L-). By Ville's inequality P(sup_n L+ >= 2/alpha) <= alpha/2, so
the test may look after every row, every day, or at any data-dependent time, and stop at the first
crossing: "challenger_better" when L+ >= 2/alpha, "champion_better" when L- >= 2/alpha. The chance of
ever declaring a difference when there is none is <= alpha (each direction <= alpha/2), and the chance
of declaring the challenger better when it is in truth worse is <= alpha/2 as well. The two one-sided
mixtures average to the symmetric mixture (L+ + L-) / 2 = 2**n B(c + a, b + a) / B(a, a); when c >= b,
L- <= 1, so at most one side can cross. The result is exact (no normal approximation) for any number
of rows, including the first few days.

The prior's ``a`` only moves power between effect sizes (validity holds for any a > 0): Beta(a, a)
has standard deviation 1 / (2 sqrt(2a + 1)) around 1/2. :data:`DEFAULT_PRIOR_A` is tuned to a +2..+5
point hit-rate gain at a hit rate of 0.52 with the two models' hits correlated 0.6 (discordant
win probability 0.55..0.62); see bench/ab.py for its power and the sensitivity to ``a``.

Assumption: rows are the units of randomness. Rows of the same session (different symbols) that share a
market move are not independent: when a session-level shock moves the challenger's share of a day's
discordant rows, the row-level test is no longer valid (bench/ab.py, stress table: with a shock of sd 0.05
on that share and 200 rows a day, 7% of no-difference tests end with a decision instead of <= 5%, 3.3%
with a false promotion instead of <= 2.5%; with sd 0.10, 27% and 13%).
The remedy is to make the session the unit: :func:`session_wins` turns per-session b and c into sessions
won by each model (ties dropped), and the same test on those counts (``unit="session"``, with the flatter
prior :data:`DEFAULT_SESSION_PRIOR_A`, as a session's win probability under a real difference is far from
1/2) is exactly valid whenever, with no difference, each session (given the past) is as likely to be won by
either model, however its rows depend on each other. It needs
more days: see the bench's power table.

Vectorised forms (``*_arrays``, :func:`mixture_log_lr`, :func:`sequential_crossings`) take numpy arrays of
counts and are what the scalar functions use;
the benchmark (bench/ab.py) calls them on thousands of simulated tests at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sp_stats

#: Units of the sequential test: rows (default) or sessions (:func:`session_wins`).
UNIT_ROW, UNIT_SESSION = "row", "session"
#: Type-I error of the sequential test (both directions together).
DEFAULT_ALPHA = 0.05
#: Concentration of the Beta(a, a) mixing prior on the discordant win probability (standard deviation
#: 1 / (2 sqrt(2a + 1)) = 0.05 at a = 50).
DEFAULT_PRIOR_A = 50.0
#: The prior for session-level counts (standard deviation 0.22: a session's win probability moves far from 1/2).
DEFAULT_SESSION_PRIOR_A = 2.0
#: A sample-ratio mismatch is declared when the chi-square goodness-of-fit p-value is below this.
SRM_P_THRESHOLD = 0.001
#: Bandit mode: the challenger's split is kept within [SPLIT_MIN, SPLIT_MAX] (both arms keep being measured).
SPLIT_MIN, SPLIT_MAX = 0.05, 0.95
#: Monte Carlo draws of :func:`thompson_split` (standard error <= 0.0036 on the probability).
DEFAULT_DRAWS = 20_000

#: Decisions of the sequential test.
CHALLENGER_BETTER = "challenger_better"
CHAMPION_BETTER = "champion_better"
SEQ_CONTINUE = "continue"

_LOG2 = math.log(2.0)


# --------------------------------------------------------------------------------------------- containers
@dataclass(frozen=True)
class PairedCounts:
    """Outcomes of the rows both models scored (the 2x2 table of hits)."""

    both_right: int
    champion_only: int  # McNemar's b: champion right, challenger wrong
    challenger_only: int  # McNemar's c: challenger right, champion wrong
    both_wrong: int

    def __post_init__(self) -> None:
        for name in ("both_right", "champion_only", "challenger_only", "both_wrong"):
            _check_count(name, getattr(self, name))

    @property
    def b(self) -> int:
        return self.champion_only

    @property
    def c(self) -> int:
        return self.challenger_only

    @property
    def n(self) -> int:
        """Paired rows."""
        return self.both_right + self.champion_only + self.challenger_only + self.both_wrong

    @property
    def discordant(self) -> int:
        return self.champion_only + self.challenger_only

    @property
    def hits_champion(self) -> int:
        return self.both_right + self.champion_only

    @property
    def hits_challenger(self) -> int:
        return self.both_right + self.challenger_only

    @property
    def rate_difference(self) -> float:
        """Challenger's hit rate minus the champion's on the same rows, (c - b) / n (0.0 with no rows)."""
        return (self.challenger_only - self.champion_only) / self.n if self.n else 0.0


@dataclass(frozen=True)
class ArmCounts:
    """Outcomes on the *assigned* arms: each row counted once, under the model its unit was assigned to."""

    n_champion: int
    hits_champion: int
    n_challenger: int
    hits_challenger: int

    def __post_init__(self) -> None:
        for name in ("n_champion", "hits_champion", "n_challenger", "hits_challenger"):
            _check_count(name, getattr(self, name))
        if self.hits_champion > self.n_champion or self.hits_challenger > self.n_challenger:
            raise ValueError(f"more hits than rows in an arm: {self}")

    @property
    def rate_champion(self) -> float | None:
        return self.hits_champion / self.n_champion if self.n_champion else None

    @property
    def rate_challenger(self) -> float | None:
        return self.hits_challenger / self.n_challenger if self.n_challenger else None


@dataclass(frozen=True)
class McNemarResult:
    b: int
    c: int
    p_value: float  # exact two-sided binomial test of c out of b + c against 1/2 (1.0 when b + c == 0)
    effect: float  # (c - b) / (b + c): the challenger's net win share among discordant rows (0.0 when none)
    rate_difference: float | None  # (c - b) / n_pairs: hit-rate difference over all paired rows, if n_pairs given


@dataclass(frozen=True)
class SequentialResult:
    """State of the always-valid paired test after ``b + c`` discordant rows (see the module docstring)."""

    b: int
    c: int
    alpha: float
    prior_a: float
    log_lr_challenger: float  # log L+ (evidence that the challenger is better); may be -inf when it underflows
    log_lr_champion: float  # log L- (evidence that the champion is better); may be -inf when it underflows
    log_threshold: float  # log(2 / alpha): each side is tested at alpha / 2
    decision: str  # CHALLENGER_BETTER | CHAMPION_BETTER | SEQ_CONTINUE
    unit: str = UNIT_ROW  # UNIT_ROW: b, c are rows; UNIT_SESSION: sessions won by the champion (b) / challenger (c)

    @property
    def log_lr(self) -> float:
        """The larger of the two one-sided statistics (always finite)."""
        return max(self.log_lr_challenger, self.log_lr_champion)

    @property
    def threshold(self) -> float:
        """2 / alpha, the e-value either side must reach."""
        return math.exp(self.log_threshold)


@dataclass(frozen=True)
class SRMResult:
    n_a: int  # units assigned to the champion
    n_b: int  # units assigned to the challenger
    split: float  # expected challenger share
    chi2: float
    p_value: float  # 1.0 when no unit was assigned
    mismatch: bool  # p_value < SRM_P_THRESHOLD

    @property
    def observed_split(self) -> float | None:
        total = self.n_a + self.n_b
        return self.n_b / total if total else None


# --------------------------------------------------------------------------------------------- helpers
def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _hits(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 (or booleans)")
    return arr.astype(bool)


def paired_counts(hit_champion: Any, hit_challenger: Any) -> PairedCounts:
    """The 2x2 table of two 0/1 (or boolean) arrays of the same rows."""
    a, b = _hits("hit_champion", hit_champion), _hits("hit_challenger", hit_challenger)
    if a.shape != b.shape:
        raise ValueError(f"hit arrays differ in length: {a.size} vs {b.size}")
    return PairedCounts(
        both_right=int(np.count_nonzero(a & b)),
        champion_only=int(np.count_nonzero(a & ~b)),
        challenger_only=int(np.count_nonzero(~a & b)),
        both_wrong=int(np.count_nonzero(~a & ~b)),
    )


def arm_counts(hit_champion: Any, hit_challenger: Any, assigned_challenger: Any) -> ArmCounts:
    """Assigned-arm counts: rows with ``assigned_challenger`` true count the challenger's hit, the others the
    champion's (the other model's hit on a row is its shadow prediction and is not counted here)."""
    a, b = _hits("hit_champion", hit_champion), _hits("hit_challenger", hit_challenger)
    arm = _hits("assigned_challenger", assigned_challenger)
    if not a.shape == b.shape == arm.shape:
        raise ValueError("hit_champion, hit_challenger and assigned_challenger differ in length")
    return ArmCounts(
        n_champion=int(np.count_nonzero(~arm)),
        hits_champion=int(np.count_nonzero(a & ~arm)),
        n_challenger=int(np.count_nonzero(arm)),
        hits_challenger=int(np.count_nonzero(b & arm)),
    )


# --------------------------------------------------------------------------------------------- two-proportion z
def two_proportion_z_arrays(successes_a: Any, n_a: Any, successes_b: Any, n_b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`two_proportion_z`: (z, two-sided p) arrays; z = 0, p = 1 where an arm is empty or the
    pooled rate is 0 or 1."""
    sa, na, sb, nb = (np.asarray(x, dtype=np.float64) for x in (successes_a, n_a, successes_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (sa + sb) / (na + nb)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb))
        z = (sb / nb - sa / na) / se
    z = np.where((na > 0) & (nb > 0) & (se > 0), z, 0.0)
    return z, 2.0 * sp_stats.norm.sf(np.abs(z))


def two_proportion_z(successes_a: int, n_a: int, successes_b: int, n_b: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of b's (challenger's) rate against a's (champion's).

    z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b)), p = (s_a + s_b) / (n_a + n_b); two-sided p-value
    2 (1 - Phi(|z|)). Returns (0.0, 1.0) when an arm has no rows or the pooled rate is 0 or 1. Valid for
    one look at a fixed sample size only."""
    for name, v in (("successes_a", successes_a), ("n_a", n_a), ("successes_b", successes_b), ("n_b", n_b)):
        _check_count(name, v)
    if successes_a > n_a or successes_b > n_b:
        raise ValueError("successes exceed the number of trials")
    z, p = two_proportion_z_arrays(successes_a, n_a, successes_b, n_b)
    return float(z), float(p)


# --------------------------------------------------------------------------------------------- McNemar
def mcnemar_p_arrays(b: Any, c: Any) -> np.ndarray:
    """Exact two-sided McNemar p-values: min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2); equal to
    scipy.stats.binomtest(c, b + c, 0.5).pvalue (the binomial is symmetric at 1/2). 1.0 where b + c == 0."""
    b_ = np.asarray(b, dtype=np.int64)
    c_ = np.asarray(c, dtype=np.int64)
    n = b_ + c_
    p = np.minimum(1.0, 2.0 * sp_stats.binom.cdf(np.minimum(b_, c_), n, 0.5))
    return np.where(n > 0, p, 1.0)


def mcnemar(b: int, c: int, n_pairs: int | None = None) -> McNemarResult:
    """Exact McNemar test for paired 0/1 outcomes. ``b``: champion right and challenger wrong; ``c``: the
    reverse; ``n_pairs`` (optional): all paired rows, for the hit-rate difference (c - b) / n_pairs.
    Fixed-horizon: the p-value is valid for one look only."""
    _check_count("b", b)
    _check_count("c", c)
    rate_difference = None
    if n_pairs is not None:
        _check_count("n_pairs", n_pairs)
        if n_pairs < b + c:
            raise ValueError(f"n_pairs ({n_pairs}) is less than b + c ({b + c})")
        rate_difference = (c - b) / n_pairs if n_pairs else 0.0
    n = b + c
    return McNemarResult(
        b=int(b),
        c=int(c),
        p_value=float(mcnemar_p_arrays(b, c)),
        effect=(c - b) / n if n else 0.0,
        rate_difference=rate_difference,
    )


# --------------------------------------------------------------------------------------------- sequential paired
def mixture_log_lr(b: Any, c: Any, prior_a: float = DEFAULT_PRIOR_A) -> tuple[np.ndarray, np.ndarray]:
    """(log L+, log L-) of the one-sided Beta(a, a) mixtures (module docstring), vectorised over b and c.

    log L+ = (n + 1) log 2 + ln B(c + a, b + a) - ln B(a, a) + ln I_{1/2}(b + a, c + a), n = b + c, where
    I_{1/2}(b + a, c + a) = P(Beta(c + a, b + a) > 1/2); L- swaps b and c. A side whose tail probability
    underflows a double is -inf (its e-value is 0 to double precision; it is then far below 1)."""
    if not prior_a > 0:
        raise ValueError(f"prior_a must be > 0, got {prior_a}")
    b_ = np.asarray(b, dtype=np.float64)
    c_ = np.asarray(c, dtype=np.float64)
    a = float(prior_a)
    base = (b_ + c_ + 1.0) * _LOG2 + special.betaln(c_ + a, b_ + a) - special.betaln(a, a)
    with np.errstate(divide="ignore"):
        up = base + np.log(special.betainc(b_ + a, c_ + a, 0.5))
        down = base + np.log(special.betainc(c_ + a, b_ + a, 0.5))
    return up, down


def sequential_crossings(
    b: Any, c: Any, alpha: float = DEFAULT_ALPHA, prior_a: float = DEFAULT_PRIOR_A
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised decision of :func:`sequential_paired`: (challenger_better, champion_better) boolean arrays.
    At most one is true for any (b, c) (the trailing side's L is <= 1 < 2 / alpha)."""
    _check_alpha(alpha)
    up, down = mixture_log_lr(b, c, prior_a)
    log_threshold = math.log(2.0 / alpha)
    return up >= log_threshold, down >= log_threshold


def sequential_paired(
    b: int, c: int, alpha: float = DEFAULT_ALPHA, prior_a: float | None = None, unit: str = UNIT_ROW
) -> SequentialResult:
    """The always-valid paired test on the discordant counts so far (cumulative since the test started).

    ``decision``: CHALLENGER_BETTER when L+ >= 2 / alpha, CHAMPION_BETTER when L- >= 2 / alpha, else
    SEQ_CONTINUE. Valid at every look, however often and whenever the caller looks; act on the first
    crossing (a crossing followed by a later fall below the threshold is still a valid rejection).
    ``unit``: UNIT_ROW (b, c = discordant rows) or UNIT_SESSION (b, c = sessions won by the champion /
    the challenger, :func:`session_wins`); ``prior_a`` defaults to :data:`DEFAULT_PRIOR_A` for rows and
    :data:`DEFAULT_SESSION_PRIOR_A` for sessions."""
    _check_count("b", b)
    _check_count("c", c)
    _check_alpha(alpha)
    if unit not in (UNIT_ROW, UNIT_SESSION):
        raise ValueError(f"unit must be {UNIT_ROW!r} or {UNIT_SESSION!r}, got {unit!r}")
    if prior_a is None:
        prior_a = DEFAULT_PRIOR_A if unit == UNIT_ROW else DEFAULT_SESSION_PRIOR_A
    up, down = mixture_log_lr(b, c, prior_a)
    log_threshold = math.log(2.0 / alpha)
    if up >= log_threshold:
        decision = CHALLENGER_BETTER
    elif down >= log_threshold:
        decision = CHAMPION_BETTER
    else:
        decision = SEQ_CONTINUE
    return SequentialResult(
        b=int(b),
        c=int(c),
        alpha=float(alpha),
        prior_a=float(prior_a),
        log_lr_challenger=float(up),
        log_lr_champion=float(down),
        log_threshold=log_threshold,
        decision=decision,
        unit=unit,
    )


def session_wins(champion_only: Any, challenger_only: Any) -> tuple[int, int]:
    """(sessions the champion won, sessions the challenger won) from per-session discordant counts: a session
    is won by the model with more rows right that the other got wrong (b_s > c_s or c_s > b_s); ties carry no
    information and are dropped. Pass the result to :func:`sequential_paired` with ``unit=UNIT_SESSION``."""
    b = np.asarray(champion_only)
    c = np.asarray(challenger_only)
    if b.shape != c.shape or b.ndim != 1:
        raise ValueError("champion_only and challenger_only must be 1-D arrays of the same length")
    if b.size and (b.dtype.kind not in "iu" or c.dtype.kind not in "iu" or (b < 0).any() or (c < 0).any()):
        raise ValueError("per-session counts must be non-negative integers")
    return int(np.count_nonzero(b > c)), int(np.count_nonzero(c > b))


# --------------------------------------------------------------------------------------------- SRM
def srm_arrays(n_a: Any, n_b: Any, split: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`srm_check`: (chi2, p) with one degree of freedom; chi2 = 0, p = 1 where no unit."""
    na = np.asarray(n_a, dtype=np.float64)
    nb = np.asarray(n_b, dtype=np.float64)
    s = np.asarray(split, dtype=np.float64)
    total = na + nb
    ea, eb = total * (1.0 - s), total * s
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = (na - ea) ** 2 / ea + (nb - eb) ** 2 / eb
    chi2 = np.where(total > 0, chi2, 0.0)
    return chi2, sp_stats.chi2.sf(chi2, 1)


def srm_check(n_a: int, n_b: int, split: float) -> SRMResult:
    """Sample-ratio mismatch: chi-square goodness of fit of (champion units ``n_a``, challenger units ``n_b``)
    against the expected challenger share ``split`` (for a bandit whose split changed from day to day, the
    unit-weighted mean of the daily splits). ``mismatch`` when p < :data:`SRM_P_THRESHOLD`."""
    _check_count("n_a", n_a)
    _check_count("n_b", n_b)
    if not 0.0 < split < 1.0:
        raise ValueError(f"split must be in (0, 1), got {split}")
    chi2, p = srm_arrays(n_a, n_b, split)
    return SRMResult(
        n_a=int(n_a),
        n_b=int(n_b),
        split=float(split),
        chi2=float(chi2),
        p_value=float(p),
        mismatch=bool(p < SRM_P_THRESHOLD),
    )


# --------------------------------------------------------------------------------------------- Thompson sampling
def thompson_split_arrays(
    successes_a: Any,
    n_a: Any,
    successes_b: Any,
    n_b: Any,
    draws: int = DEFAULT_DRAWS,
    rng: np.random.Generator | None = None,
    clip: bool = True,
) -> np.ndarray:
    """Vectorised :func:`thompson_split` over 1-D arrays of counts (one element per test), ``draws`` posterior
    draws per element from ``rng`` (a fresh default_rng(0) if None). Unclipped with ``clip=False``."""
    sa, na, sb, nb = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (successes_a, n_a, successes_b, n_b))
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if (sa < 0).any() or (sb < 0).any() or (sa > na).any() or (sb > nb).any():
        raise ValueError("successes must be in [0, n]")
    gen = rng if rng is not None else np.random.default_rng(0)
    k = np.broadcast_shapes(sa.shape, na.shape, sb.shape, nb.shape)
    shape = (*k, draws)
    pa = gen.beta(np.broadcast_to((1.0 + sa)[..., None], shape), np.broadcast_to((1.0 + na - sa)[..., None], shape))
    pb = gen.beta(np.broadcast_to((1.0 + sb)[..., None], shape), np.broadcast_to((1.0 + nb - sb)[..., None], shape))
    prob = (pb > pa).mean(axis=-1)
    return np.clip(prob, SPLIT_MIN, SPLIT_MAX) if clip else prob


def thompson_split(
    successes_a: int, n_a: int, successes_b: int, n_b: int, draws: int = DEFAULT_DRAWS, seed: int = 0
) -> float:
    """Bandit mode: the probability that the challenger (b) has the higher hit rate under independent
    Beta(1 + hits, 1 + misses) posteriors (Monte Carlo, ``draws`` draws from a generator seeded with
    ``seed``: the same inputs always give the same split), clipped to [SPLIT_MIN, SPLIT_MAX]; the
    challenger's split for the next day (probability matching, i.e. Thompson sampling in daily batches).

    Feed it the assigned arms' counts (the classic bandit). The paired sequential test does not depend on
    the split (both models score every row), so changing the split does not bias the promotion decision;
    the SRM check then needs the unit-weighted mean of the daily splits."""
    for name, v in (("successes_a", successes_a), ("n_a", n_a), ("successes_b", successes_b), ("n_b", n_b)):
        _check_count(name, v)
    out = thompson_split_arrays(
        successes_a, n_a, successes_b, n_b, draws=draws, rng=np.random.default_rng(seed), clip=True
    )
    return float(out[0])
