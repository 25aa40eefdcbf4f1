"""Statistics of the drift engine: binning, PSI/KL/JS, KS, Wasserstein, chi-square, BH."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from include.modelwatch.monitoring.drift.config import KS_MAX_EXACT_N, PSI_EPSILON, DriftConfig


def as_float_array(values: Any) -> np.ndarray:
    """1-D float64 array; non-numeric values and missing values become NaN."""
    if isinstance(values, pd.Series):
        if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            values = pd.to_numeric(values, errors="coerce")
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(values)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64, copy=False).ravel()
    return pd.to_numeric(pd.Series(arr.ravel()), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def split_finite(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(finite values, number of NaN/NULL, number of +/-inf)."""
    nan = np.isnan(x)
    finite_mask = np.isfinite(x)
    n_null = int(nan.sum())
    n_inf = int(x.size - n_null - finite_mask.sum())
    return x[finite_mask], n_null, n_inf


def sorted_finite(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``(sorted finite values, number of NaN/NULL, number of +/-inf)`` of a
    float array: :func:`split_finite` followed by ``np.sort``, with one sort
    and no mask. numpy sorts NaN after ``+inf``, so the sorted array is
    ``[-inf..., finite..., +inf..., NaN...]`` and three binary searches find
    the finite slice (a view of the sorted copy)."""
    s = np.sort(x)
    lo = int(np.searchsorted(s, -np.inf, side="right"))  # after the -inf
    hi = int(np.searchsorted(s, np.inf, side="left"))  # first +inf (or NaN)
    first_nan = int(np.searchsorted(s, np.nan, side="left"))
    return s[lo:hi], s.size - first_nan, lo + (first_nan - hi)


def fmt_number(value: float | None, spec: str = ".3g") -> str:
    """Format a number for log lines; '-' for None."""
    return "-" if value is None else format(value, spec)


def level_key(value: Any) -> str:
    """Categorical levels are compared by ``str(value)`` (JSON keys are strings)."""
    return value if isinstance(value, str) else str(value)


def _is_null_level(value: Any) -> bool:
    """What ``Series.isna()`` says of this value (a tuple level is not null)."""
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def categorical_counts(values: Any) -> tuple[dict[str, int], int]:
    """(level -> count sorted by count desc then level, number of nulls)."""
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    n_null = 0
    pairs: list[tuple[Any, Any]] = []
    if isinstance(s.dtype, pd.CategoricalDtype):
        # value_counts of a categorical lists every category (zero counts too)
        null = s.isna()
        n_null = int(null.sum())
        pairs.extend(s[~null].value_counts(sort=False).items())
    else:
        # one hash pass that keeps the nulls as keys: several times faster than
        # isna() + a masked copy + value_counts() (which masks the nulls again)
        for k, v in s.value_counts(sort=False, dropna=False).items():
            if _is_null_level(k):
                n_null += int(v)
            else:
                pairs.append((k, v))
    # count the raw values first, then key the few distinct ones (1 and "1" merge)
    counts: dict[str, int] = {}
    for k, v in pairs:
        key = level_key(k)
        counts[key] = counts.get(key, 0) + int(v)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(items), n_null


# --------------------------------------------------------------------------- #
# Binning and count-based metrics
# --------------------------------------------------------------------------- #
def bin_index(x: Any, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bin of each value: ``searchsorted(edges, x, side='right')``.

    0 for ``x < edges[0]``, i for ``edges[i-1] <= x < edges[i]``, ``len(edges)``
    for ``x >= edges[-1]`` - the PostgreSQL ``width_bucket(x, edges)`` rule.
    """
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(x, dtype=np.float64), side="right")


def bin_counts(x: Any, edges: Sequence[float] | np.ndarray, assume_sorted: bool = False) -> np.ndarray:
    """Counts per bin (length ``len(edges) + 1``) under the :func:`bin_index` rule.

    Values must be finite (filter first). With ``assume_sorted`` the counts are
    obtained in O(k log n) by locating the edges in the sorted values.
    """
    e = np.asarray(edges, dtype=np.float64)
    v = np.asarray(x, dtype=np.float64)
    if not assume_sorted:
        return np.bincount(np.searchsorted(e, v, side="right"), minlength=e.size + 1).astype(np.int64)
    # number of values < e[i]  ==  number of values in bins 0..i
    below = np.searchsorted(v, e, side="left")
    return np.diff(np.concatenate(([0], below, [v.size]))).astype(np.int64)


def counts_from_buckets(buckets: Mapping[int, int] | Iterable[tuple[int, int]], n_edges: int) -> list[int]:
    """Dense count list of length ``n_edges + 1`` from ``(width_bucket, count)``
    pairs (e.g. a ``GROUP BY width_bucket(x, edges)`` result)."""
    out = [0] * (n_edges + 1)
    items = buckets.items() if isinstance(buckets, Mapping) else buckets
    for b, c in items:
        b = int(b)
        if not 0 <= b <= n_edges:
            raise ValueError(f"bucket {b} outside 0..{n_edges}")
        out[b] += int(c)
    return out


def proportions(ref_counts: Any, cur_counts: Any) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.shape != c.shape or r.ndim != 1:
        raise ValueError(f"count vectors must be 1-D of equal length, got {r.shape} and {c.shape}")
    if np.any(r < 0) or np.any(c < 0):
        raise ValueError("counts must be >= 0")
    rs, cs = r.sum(), c.sum()
    if rs <= 0 or cs <= 0:
        raise ValueError("counts must not be all zero")
    return r / rs, c / cs


def psi_from_proportions(p_ref: np.ndarray, p_cur: np.ndarray, eps: float) -> float:
    a, b = p_cur + eps, p_ref + eps
    return float(np.sum((a - b) * np.log(a / b)))


def kl_from_proportions(p_ref: np.ndarray, p_cur: np.ndarray, eps: float) -> float:
    a, b = p_cur + eps, p_ref + eps
    return float(np.sum(a * np.log(a / b)))


def js_from_proportions(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    js = (left.sum() + right.sum()) / (2.0 * math.log(2.0))
    return float(math.sqrt(max(js, 0.0)))


def psi_from_counts(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bins, with
    ``c``/``r`` the current/reference proportions plus ``eps``."""
    r, c = proportions(ref_counts, cur_counts)
    return psi_from_proportions(r, c, eps)


def kl_from_counts(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPSILON) -> float:
    """KL(current || reference) in nats, proportions plus ``eps``."""
    r, c = proportions(ref_counts, cur_counts)
    return kl_from_proportions(r, c, eps)


def js_from_counts(ref_counts: Any, cur_counts: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of the raw proportions;
    equals ``scipy.spatial.distance.jensenshannon(ref, cur, base=2)``."""
    r, c = proportions(ref_counts, cur_counts)
    return js_from_proportions(r, c)


# --------------------------------------------------------------------------- #
# Kolmogorov-Smirnov and Wasserstein
# --------------------------------------------------------------------------- #
def ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """Smirnov's asymptotic two-sided p-value of the two-sample KS statistic
    ``d``: ``scipy.stats.kstwo.sf(d, round(n1*n2/(n1+n2)))``, what
    ``scipy.stats.ks_2samp(method='asymp')`` computes. Returns ``(d, p)``.
    (The exact p-value needs the samples: :func:`ks_2samp_sorted`.)"""
    if n1 < 1 or n2 < 1:
        raise ValueError("KS needs two non-empty samples")
    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = m * n / (m + n)
    p = float(stats.kstwo.sf(d, np.round(en)))
    return float(d), min(1.0, max(0.0, p))


def _ks_from_cdfs(d: float, ref_sorted: np.ndarray, cur_sorted: np.ndarray, max_exact_n: int) -> tuple[float, float]:
    """``(statistic, p_value)`` as ``scipy.stats.ks_2samp(method='auto')``
    returns them: the exact p-value (scipy's ``method='exact'``, statistic
    snapped to the ``h/lcm`` lattice as scipy does) when both samples have
    at most ``max_exact_n`` values, else the asymptotic one from ``d``."""
    n1, n2 = ref_sorted.size, cur_sorted.size
    if n1 < 1 or n2 < 1:
        raise ValueError("KS needs two non-empty samples")
    if max(n1, n2) <= max_exact_n:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = int(np.round(d * lcm))
        if h == 0:
            return 0.0, 1.0
        p = float(stats.ks_2samp(ref_sorted, cur_sorted, method="exact").pvalue)
        return h / lcm, min(1.0, max(0.0, p))
    return ks_pvalue(d, n1, n2)


def _cdf_gap(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``F_ref - F_cur`` at every distinct value of the pooled sample.

    Returns ``(distinct sorted values v, gap, spare)``: ``gap[i] = F_ref(v[i])
    - F_cur(v[i])`` where ``F(v)`` = share of the sample ``<= v`` (the
    ``searchsorted(..., side='right')`` ECDF), each share computed as ``count
    / n`` (so bit-for-bit the same floats however the counts are found), and
    ``spare`` a float work array of the pooled size the caller may overwrite.

    Method: a stable argsort of the two concatenated sorted runs is a single
    timsort merge (linear, and faster than locating either sample in the
    other with ``searchsorted``, whose binary searches cost ~30 ns per value).
    The number of reference values up to each pooled position is the running
    count of positions that came from the reference; the number of current
    values is the position + 1 minus that. Where values tie, the counts are
    read at the last position of each group of equal values; without ties
    (continuous data) every position ends a group and nothing is gathered.
    """
    n1, n2 = ref_sorted.size, cur_sorted.size
    pooled = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    count_type = np.int32 if pooled.size < 2**31 else np.int64
    n_ref: np.ndarray = np.cumsum(order < n1, dtype=count_type)
    new_value = values[1:] != values[:-1]
    n_le: np.ndarray  # pooled values <= v
    if new_value.all():
        n_le = np.arange(1, values.size + 1, dtype=count_type)
    else:
        ends = np.flatnonzero(np.append(new_value, True))
        values, n_ref, n_le = values[ends], n_ref[ends], ends + 1
    n_cur = np.subtract(n_le, n_ref, out=n_le)
    gap: np.ndarray = n_ref / n1
    gap -= np.divide(n_cur, n2, out=pooled[: gap.size])
    return values, gap, pooled


def ks_2samp_sorted(ref_sorted: Any, cur_sorted: Any) -> tuple[float, float]:
    """Two-sided two-sample KS ``(statistic, p_value)`` of two *sorted* finite
    samples; equal to ``scipy.stats.ks_2samp(ref, cur)`` (ties allowed)."""
    r = np.asarray(ref_sorted, dtype=np.float64)
    c = np.asarray(cur_sorted, dtype=np.float64)
    _, gap, _ = _cdf_gap(r, c)
    return _ks_from_cdfs(float(np.abs(gap).max()), r, c, KS_MAX_EXACT_N)


def wasserstein_sorted(ref_sorted: Any, cur_sorted: Any) -> float:
    """Wasserstein-1 distance ``integral |F_ref - F_cur|`` of two sorted finite
    samples; equals ``scipy.stats.wasserstein_distance(ref, cur)``."""
    r = np.asarray(ref_sorted, dtype=np.float64)
    c = np.asarray(cur_sorted, dtype=np.float64)
    values, gap, _ = _cdf_gap(r, c)
    return float(np.sum(np.abs(gap[:-1]) * np.diff(values)))


def ks_and_wasserstein(
    ref_sorted: np.ndarray, cur_sorted: np.ndarray, max_exact_n: int = KS_MAX_EXACT_N
) -> tuple[float, float, float]:
    """(KS statistic, KS p-value, W1) of two sorted finite samples, sharing
    one merge (:func:`_cdf_gap`): D is the largest ``|F_ref - F_cur|`` (the
    gap is 0 at the last value, so D >= 0) and W1 = ``sum |gap[i]| * (v[i+1]
    - v[i])``, the integral of the step functions (``np.sum`` of exactly the
    terms ``scipy.stats.wasserstein_distance`` sums)."""
    values, gap, spare = _cdf_gap(ref_sorted, cur_sorted)
    np.abs(gap, out=gap)
    d = float(gap.max())
    terms = np.subtract(values[1:], values[:-1], out=spare[: values.size - 1])
    terms *= gap[:-1]
    w = float(np.sum(terms))
    d, p = _ks_from_cdfs(d, ref_sorted, cur_sorted, max_exact_n)
    return d, p, w


def chi_square(ref_counts: Any, cur_counts: Any) -> tuple[float, float, int]:
    """Pearson chi-square test of homogeneity of two count vectors over the
    same levels: ``(statistic, p_value, dof)``, equal to
    ``scipy.stats.chi2_contingency([ref_counts, cur_counts], correction=False)``.

    A two-sample test: the reference is a sample too, so its own sampling
    noise is part of the null. (A goodness-of-fit test against the reference
    shares treats them as exact and, with a reference as small as the window,
    rejects a true null about 10x too often.) Levels absent from both samples
    are dropped; a level seen in only one sample is fine. With fewer than 2
    levels left the result is ``(0.0, 1.0, 0)``.
    """
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.shape != c.shape or r.ndim != 1:
        raise ValueError(f"count vectors must be 1-D of equal length, got {r.shape} and {c.shape}")
    seen = (r + c) > 0
    r, c = r[seen], c[seen]
    k = r.size
    if k < 2 or r.sum() <= 0 or c.sum() <= 0:
        return 0.0, 1.0, 0
    col = r + c
    total = col.sum()
    e_r, e_c = col * (r.sum() / total), col * (c.sum() / total)
    stat = float(np.sum((r - e_r) ** 2 / e_r) + np.sum((c - e_c) ** 2 / e_c))
    return stat, float(stats.chi2.sf(stat, k - 1)), k - 1


# --------------------------------------------------------------------------- #
# Decisions
# --------------------------------------------------------------------------- #
def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> tuple[list[float], list[bool]]:
    """Benjamini-Hochberg step-up (``scipy.stats.false_discovery_control``): ``(adjusted p-values, rejected)``.

    Adjusted ``p_(i) = min_{j >= i} min(1, m * p_(j) / j)`` (sorted ascending,
    1-based ranks); ``rejected = adjusted <= q``, which is the same set as the
    classic "largest k with p_(k) <= k q / m" rule.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return [], []
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("p-values must be finite and in [0, 1]")
    adj = stats.false_discovery_control(p, method="bh")
    return [float(v) for v in adj], [bool(v <= q) for v in adj]


def severity_score(psi: float, wasserstein_norm: float | None, drifted: bool, config: DriftConfig) -> float:
    """Severity 0-100 with the configured thresholds (no reference null):
    ``100 * min(1, max(psi / psi_critical, W_norm / wasserstein_critical))``
    if drifted, else 0. :func:`evaluate_window` applies the same formula with
    the null-adjusted critical thresholds."""
    if not drifted:
        return 0.0
    e = psi / config.psi_critical
    if wasserstein_norm is not None:
        e = max(e, wasserstein_norm / config.wasserstein_critical)
    return float(100.0 * min(1.0, max(0.0, e)))
