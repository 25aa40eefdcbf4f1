"""Feature drift engine: reference profiles, exact per-feature tests, quiet decisions.

Pure numpy/scipy; no Airflow, no database. The pieces:

* :func:`build_reference_profile` - computed once per model version from its
  training/validation data; a JSON-serializable dict (stored in
  ``model_versions.reference_profile``). :func:`profile_to_json` /
  :func:`profile_from_json` round-trip it exactly (floats are written with
  ``repr``; NaN/inf never appear - they are stored as ``null``).
* Per-feature tests against a current window: PSI, KL(current||reference) and
  Jensen-Shannon distance on the reference-quantile bins, two-sample
  Kolmogorov-Smirnov (statistic and p-value identical to
  ``scipy.stats.ks_2samp(ref_sample, cur)`` in its default ``method='auto'``),
  Wasserstein-1 (identical to ``scipy.stats.wasserstein_distance``) and its
  normalized version, two-sample chi-square (homogeneity, equal to
  ``scipy.stats.chi2_contingency(correction=False)``) for categoricals.
* :func:`evaluate_window` - one entry point. A feature is ``drifted`` only when
  its primary p-value (KS for numeric, chi-square for categorical) survives
  Benjamini-Hochberg at ``fdr_q`` across all features of the window AND a
  practical effect size crosses its threshold (PSI, or for numerics the
  Wasserstein distance in reference standard deviations). Huge windows with
  negligible shifts are therefore not flagged; tiny windows rarely reach
  significance.
* :class:`Hysteresis` / :func:`update_alert_state` - N-of-M firing, K-clean
  resolving.
* :func:`psi_from_counts`, :func:`kl_from_counts`, :func:`js_from_counts` - the
  same metrics from bin counts computed elsewhere (e.g. PostgreSQL
  ``width_bucket``).

Binning convention (identical to PostgreSQL ``width_bucket(x, edges)``)
------------------------------------------------------------------------
A numeric feature stores ``edges`` = the sorted, de-duplicated *inner* bin
edges ``e[0] < e[1] < ... < e[k-1]``; there are ``k + 1`` bins and the outer
ones are open::

    bin 0      : x < e[0]                     (-inf, e[0])
    bin i      : e[i-1] <= x < e[i]           [e[i-1], e[i])   for 1 <= i <= k-1
    bin k      : x >= e[k-1]                  [e[k-1], +inf)

i.e. ``bin = numpy.searchsorted(edges, x, side='right')`` (see :func:`bin_index`),
which is exactly what ``width_bucket(x, edges_array)`` returns in PostgreSQL for
a sorted ``float8[]`` threshold array. Non-finite values (NULL, NaN, +/-inf) are
excluded from every distribution test; in SQL filter them out first, e.g.
``WHERE x IS NOT NULL AND x NOT IN ('NaN'::float8, 'Infinity', '-Infinity')``,
then ``SELECT width_bucket(x, :edges) AS b, count(*) ... GROUP BY b`` and pass
the result through :func:`counts_from_buckets`.

Reference null: thresholds that know the reference's own variation
----------------------------------------------------------------------
Trading features are autocorrelated (a 63-day volatility moves slowly), so a
window of a few dozen consecutive rows differs from an eight-year reference
far more than an i.i.d. sample would, and PSI on ~40 rows is inflated by
empty bins. A KS p-value cannot see either. So :func:`build_reference_profile`
also slides contiguous windows of ``NULL_WINDOW_SIZES`` rows over the
reference *in its given (time) order* and stores, per feature and size, the
``NULL_QUANTILE`` (99th percentile) of their PSI and normalized Wasserstein
distance to the whole reference (categoricals: PSI and the largest change of
a level's share). At evaluation the effect-size threshold of a feature is
``max(configured threshold, reference null at the window's size)`` (log-log
interpolation between sizes; above the largest measured size the null is
scaled down as ``1/sqrt(n)`` for W and ``1/n`` for PSI). A window therefore
drifts only if it is significant (BH), beyond the configured effect size and
more unusual than 99% of the reference's own windows of that size. Large
windows are governed by the configured thresholds, small windows by the null.

Smoothing
---------
PSI and KL use proportions with :data:`PSI_EPSILON` (1e-4) *added* to every
bin proportion of both distributions (no renormalization; both vectors get the
same total so PSI and KL stay >= 0). JS is computed on the raw proportions (it
is finite with empty bins) and equals ``scipy.spatial.distance.jensenshannon(p,
q, base=2)``. Natural logarithms (nats) are used for PSI and KL.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

__all__ = [
    "PSI_EPSILON",
    "PROFILE_SCHEMA_VERSION",
    "KS_MAX_EXACT_N",
    "QUANTILE_LEVELS",
    "DriftConfig",
    "FeatureResult",
    "WindowResult",
    "Hysteresis",
    "HysteresisResult",
    "build_reference_profile",
    "profile_to_json",
    "profile_from_json",
    "bin_index",
    "bin_counts",
    "counts_from_buckets",
    "psi_from_counts",
    "kl_from_counts",
    "js_from_counts",
    "ks_2samp_sorted",
    "ks_pvalue",
    "wasserstein_sorted",
    "chi_square",
    "benjamini_hochberg",
    "severity_score",
    "null_threshold",
    "null_pvalue",
    "evaluate_window",
    "evaluate_binned",
    "update_alert_state",
]

#: Added to every bin/level proportion (reference and current) before PSI and
#: KL, so empty bins give a large but finite contribution. (The chi-square
#: test needs no epsilon: it is a two-sample test on the raw counts.)
PSI_EPSILON: float = 1e-4

#: Version of the dict layout produced by :func:`build_reference_profile`
#: (2 added the per-feature ``null`` block; version-1 profiles still evaluate,
#: with the fixed thresholds only).
PROFILE_SCHEMA_VERSION: int = 2

#: Window sizes (rows) at which the reference's own window-to-reference
#: variation is measured when a profile is built (see "Reference null" above).
NULL_WINDOW_SIZES: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120)
#: Quantile of the reference's windows stored as the null threshold.
NULL_QUANTILE: float = 0.99
#: Contiguous reference windows measured per size (evenly spaced starts).
NULL_MAX_WINDOWS: int = 100
#: Reference-quantile bins stored for the in-database (binned) mode; they
#: include every PSI bin edge, so PSI is identical in both modes.
FINE_BINS: int = 100
#: Windows with at least this many rows evaluate their numeric features in
#: parallel (``DriftConfig.threads``); below it thread start-up costs more.
PARALLEL_MIN_ROWS: int = 20_000
#: Quantile levels used to approximate the Wasserstein distance of a window.
_NULL_GRID: int = 200

#: Same rule as scipy's ``ks_2samp(method='auto')``: the exact p-value is used
#: when both sample sizes are <= this, else the asymptotic ``kstwo`` one.
KS_MAX_EXACT_N: int = 10_000

#: Quantiles stored in each numeric feature's summary.
QUANTILE_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

ALERT_STATES: tuple[str, ...] = ("clear", "firing")
LEVELS: tuple[str, ...] = ("none", "warning", "critical")


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift decision. Defaults in brackets.

    * ``fdr_q`` [0.05] - Benjamini-Hochberg false discovery rate across the
      primary p-values of all features of one window.
    * ``psi_warning`` [0.10] / ``psi_critical`` [0.25] - PSI effect-size
      thresholds (predecessor system's defaults); also used for categoricals
      (PSI on level proportions).
    * ``wasserstein_warning`` [0.20] / ``wasserstein_critical`` [0.50] - for
      numerics, Wasserstein-1 distance in reference standard deviations
      (Cohen's "small" and "medium" effects). A 0.25-sigma mean shift has
      PSI ~0.06 < 0.1 on 10 quantile bins but W/sigma = 0.25, so it is caught.
    * ``share_warning`` [0.05] / ``share_critical`` [0.10] - for
      categoricals, the largest absolute change of one level's share (a +0.1
      shift of one of five equal levels has PSI ~0.05, below 0.1, so PSI alone
      would never see it).
    * ``min_rows`` [20] - a feature with fewer usable (finite / non-null)
      current values still gets all its statistics but is not tested: it is
      left out of BH, is never significant or drifted, severity 0, note
      "too few values". (One unseen category in a one-row window would
      otherwise give chi-square ~1e4.)
    * ``sql_counts_min_rows`` [200000] - windows with at least this many rows
      are binned inside PostgreSQL (``width_bucket`` against the stored fine
      edges; see :func:`evaluate_binned`) so only counts leave the database.
    * ``ks_exact_max_n`` [10000] - exact KS p-value when both sample sizes
      are <= this (scipy's ``method='auto'`` rule, so p-values equal scipy's);
      lower it to trade that equality for speed (the exact count costs
      ~25 us per row of the smaller sample).
    * ``threads`` [4] - numeric features of a window with at least
      ``PARALLEL_MIN_ROWS`` (20,000) rows are evaluated by up to this many
      threads (never more than the CPUs); numpy's sorts and merges release
      the GIL, so a large window finishes ~1.8x sooner on 2 cores. Results
      are identical; 1 = one thread.
    * ``min_model_score`` [0.0] - the window is reported as drifted only if
      the importance-weighted drift score is at least this (0 = any drifted
      feature counts).
    * ``fire_n`` [2] of ``fire_m`` [3] - hysteresis: an alert fires when at
      least ``fire_n`` of the last ``fire_m`` windows drifted and the newest
      one did; ``resolve_k`` [3] consecutive clean windows resolve it.

    When the profile has a reference null (module docstring), a warning
    threshold is raised to the 99th percentile ``q99`` of the reference's own
    windows of the current size, and a critical one to ``2 * q99``.
    Effect size ``e`` of a feature = ``max(psi / psi_crit, wasserstein_norm / w_crit)``
    (categoricals: ``psi`` and ``share_shift / share_crit``) with those
    effective thresholds; severity = ``100 * min(1, e)`` if the feature
    drifted, else 0: a warning threshold maps to severity 40, a critical one
    (and beyond) to 100. The model drift score (0-1) is the importance-
    weighted mean severity / 100, i.e. roughly the share of the model's
    importance that drifted critically: the seed's "drift score > 0.25"
    rule reads it.
    """

    fdr_q: float = 0.05
    psi_warning: float = 0.10
    psi_critical: float = 0.25
    wasserstein_warning: float = 0.20
    wasserstein_critical: float = 0.50
    share_warning: float = 0.05
    share_critical: float = 0.10
    min_rows: int = 20
    ks_exact_max_n: int = KS_MAX_EXACT_N
    threads: int = 4
    sql_counts_min_rows: int = 200_000
    min_model_score: float = 0.0
    fire_n: int = 2
    fire_m: int = 3
    resolve_k: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ValueError(f"{f.name}: expected an integer, got {value!r}")
                if value < 1:
                    raise ValueError(f"{f.name}: must be >= 1, got {value!r}")
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise ValueError(f"{f.name}: expected a number, got {value!r}")
                if not math.isfinite(float(value)) or value < 0:
                    raise ValueError(f"{f.name}: must be a finite number >= 0, got {value!r}")
        if not 0.0 < self.fdr_q < 1.0:
            raise ValueError(f"fdr_q: must be in (0, 1), got {self.fdr_q!r}")
        if self.min_model_score > 1.0:
            raise ValueError(f"min_model_score: must be in [0, 1], got {self.min_model_score!r}")
        for warn, crit in (("psi_warning", "psi_critical"), ("wasserstein_warning", "wasserstein_critical"),
                           ("share_warning", "share_critical")):
            if getattr(self, warn) <= 0:
                raise ValueError(f"{warn}: must be > 0, got {getattr(self, warn)!r}")
            if getattr(self, crit) < getattr(self, warn):
                raise ValueError(f"{crit}: must be >= {warn} ({getattr(self, crit)!r} < {getattr(self, warn)!r})")
        if self.fire_n > self.fire_m:
            raise ValueError(f"fire_n: must be <= fire_m ({self.fire_n} > {self.fire_m})")

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None) -> DriftConfig:
        """Defaults updated with ``overrides`` (e.g. per-model settings).

        Raises ValueError naming the key for unknown keys or invalid values.
        """
        if overrides is None:
            return cls()
        if not isinstance(overrides, Mapping):
            raise ValueError(f"drift config: expected a mapping, got {type(overrides).__name__}")
        known = {f.name for f in fields(cls)}
        for key in overrides:
            if key not in known:
                raise ValueError(f"{key}: unknown drift config key (known: {', '.join(sorted(known))})")
        return cls(**dict(overrides))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all thresholds (JSON-serializable)."""
        return asdict(self)


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #
def _as_float_array(values: Any) -> np.ndarray:
    """1-D float64 array; non-numeric values and missing values become NaN."""
    if isinstance(values, pd.Series):
        if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            values = pd.to_numeric(values, errors="coerce")
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(values)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64, copy=False).ravel()
    return pd.to_numeric(pd.Series(arr.ravel()), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


_ARRAY_CACHE: dict[int, tuple[list, np.ndarray]] = {}
_ARRAY_CACHE_MAX: int = 4096


def _profile_array(values: list | None) -> np.ndarray:
    """float64 array of a profile list (a reference sample, edges, counts),
    converted once per list object: an hourly task evaluates the same loaded
    profile again and again, and re-converting a 20,000-value sample per
    feature per window cost more than the window's own binning. Keyed on the
    list's identity (the list is kept alive beside its array, so an id is
    never reused while cached)."""
    if not values:
        return np.empty(0)
    hit = _ARRAY_CACHE.get(id(values))
    if hit is not None and hit[0] is values:
        return hit[1]
    arr = np.asarray(values, dtype=np.float64)
    arr.flags.writeable = False
    if len(_ARRAY_CACHE) >= _ARRAY_CACHE_MAX:
        _ARRAY_CACHE.clear()
    _ARRAY_CACHE[id(values)] = (values, arr)
    return arr


def _split_finite(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(finite values, number of NaN/NULL, number of +/-inf)."""
    nan = np.isnan(x)
    finite_mask = np.isfinite(x)
    n_null = int(nan.sum())
    n_inf = int(x.size - n_null - finite_mask.sum())
    return x[finite_mask], n_null, n_inf


def _f(value: Any) -> float | None:
    """Python float, or None for None/NaN/inf (JSON- and jsonb-safe)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _fmt(value: float | None, spec: str = ".3g") -> str:
    """Format a number for log lines; '-' for None."""
    return "-" if value is None else format(value, spec)


def _level_key(value: Any) -> str:
    """Categorical levels are compared by ``str(value)`` (JSON keys are strings)."""
    return value if isinstance(value, str) else str(value)


def _categorical_counts(values: Any) -> tuple[dict[str, int], int]:
    """(level -> count sorted by count desc then level, number of nulls)."""
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    null = s.isna()
    n_null = int(null.sum())
    # count the raw values first, then key the few distinct ones (1 and "1" merge)
    counts: dict[str, int] = {}
    for k, v in s[~null].value_counts(sort=False).items():
        key = _level_key(k)
        counts[key] = counts.get(key, 0) + int(v)
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(items), n_null


# --------------------------------------------------------------------------- #
# Reference profile
# --------------------------------------------------------------------------- #
def _quantile_edges(sorted_finite: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges at the i/n_bins reference quantiles, duplicates collapsed.

    A constant column gets ``[c, nextafter(c, +inf)]``: bins ``(-inf, c)``,
    ``{c}`` and ``(c, +inf)`` - the reference sits in the single middle bin
    and any departure from the constant lands in an outer bin.
    """
    if sorted_finite.size == 0:
        return np.empty(0)
    lo, hi = sorted_finite[0], sorted_finite[-1]
    if lo == hi:
        return np.array([lo, np.nextafter(lo, np.inf)])
    probs = np.arange(1, n_bins) / n_bins
    return np.unique(np.quantile(sorted_finite, probs))


def _even_subsample(sorted_values: np.ndarray, max_sample: int) -> np.ndarray:
    """All values if n <= max_sample, else the values at the centres of
    ``max_sample`` equal-count blocks of the sorted data (deterministic)."""
    n = sorted_values.size
    if n <= max_sample:
        return sorted_values
    idx = ((np.arange(max_sample) + 0.5) * n / max_sample).astype(np.int64)
    return sorted_values[np.minimum(idx, n - 1)]


def _normalize_importance(features: Sequence[str], importance: Mapping[str, float] | None) -> dict[str, float]:
    """Weights over ``features`` summing to 1; uniform when None or all zero.

    Features absent from ``importance`` get 0; keys that are not monitored
    features are ignored. Negative or non-finite weights raise ValueError.
    """
    if not features:
        return {}
    if importance is None:
        return {f: 1.0 / len(features) for f in features}
    raw: dict[str, float] = {}
    for f in features:
        w = importance.get(f, 0.0)
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise ValueError(f"importance[{f!r}]: not a number: {w!r}") from None
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"importance[{f!r}]: must be finite and >= 0, got {w!r}")
        raw[f] = w
    total = math.fsum(raw.values())
    if total <= 0:
        return {f: 1.0 / len(features) for f in features}
    return {f: w / total for f, w in raw.items()}


def _window_starts(n: int, size: int, max_windows: int = NULL_MAX_WINDOWS) -> np.ndarray:
    """Evenly spaced starts of at most ``max_windows`` contiguous windows."""
    last = n - size
    return np.unique(np.linspace(0, last, min(max_windows, last + 1)).round().astype(np.int64))


#: Floor of the fitted log-scale spread (a constant reference window set would give 0).
_MIN_LOG_SIGMA: float = 0.05


def _append_lognormal(out: dict[str, list[float]], values: np.ndarray) -> None:
    """Fit log(statistic) of the reference windows with a normal (mean, sd)."""
    logs = np.log(np.maximum(values, 1e-12))
    out.setdefault("log_mu", []).append(float(logs.mean()))
    out.setdefault("log_sigma", []).append(float(max(logs.std(), _MIN_LOG_SIGMA)))


def _null_scale(sizes: np.ndarray, n: float, n_ref: int | None, power: float) -> tuple[np.ndarray, float]:
    """Log-factors that turn the reference's *own* windows into independent ones.

    A window of ``L`` rows taken from the ``N``-row reference is part of it, so
    its distance to the whole is smaller than that of an independent window:
    for an i.i.d. ``1/sqrt(size)`` statistic the variances are ``1/L - 1/N``
    against ``1/L + 1/N``. Returns ``(log factor per measured size, log factor
    from the largest size to a window of n rows)``; the latter is
    ``(1/n + 1/N) / (1/L + 1/N)`` to the ``power`` (0.5 for W and share
    shifts, 1 for PSI). ``n_ref=None`` means an infinite reference (factors
    1 and ``L/n``)."""
    inv_ref = 0.0 if not n_ref else 1.0 / float(n_ref)
    inv = 1.0 / sizes
    at_sizes = power * np.log((inv + inv_ref) / np.maximum(inv - inv_ref, 1e-300))
    beyond = power * math.log((1.0 / n + inv_ref) / (inv[-1] + inv_ref))
    return at_sizes, beyond


def null_pvalue(null: Mapping[str, Any] | None, value: float | None, n: int,
                n_ref: int | None = None) -> float | None:
    """How unusual ``value`` (the null's own statistic: ``null['stat']``) is
    for an independent window of ``n`` rows, judged by the reference's
    contiguous windows: the upper tail of the log-normal fitted to those
    windows, so it extrapolates beyond the ~100 windows measured. None if
    there is no null. The log-mean is corrected for the overlap of a
    reference window with the ``n_ref``-row reference (:func:`_null_scale`);
    between measured sizes it is interpolated linearly in log n; beyond the
    largest it falls like a ``sqrt(1/n + 1/n_ref)`` statistic; below the
    smallest the smallest size is used."""
    if not null or not null.get("log_mu") or value is None or n <= 0:
        return None
    if value <= 0:
        return 1.0
    sizes = np.asarray(null["sizes"], dtype=np.float64)
    at_sizes, beyond = _null_scale(sizes, float(n), n_ref, 0.5)
    mu = np.asarray(null["log_mu"], dtype=np.float64) + at_sizes
    sigma = np.asarray(null["log_sigma"], dtype=np.float64)
    ln_n = math.log(n)
    ln_sizes = np.log(sizes)
    if ln_n >= ln_sizes[-1]:
        m, sd = mu[-1] + beyond, sigma[-1]
    else:
        m, sd = float(np.interp(ln_n, ln_sizes, mu)), float(np.interp(ln_n, ln_sizes, sigma))
    return float(stats.norm.sf((math.log(value) - m) / sd))


def _null_sizes(n: int) -> list[int]:
    """Sizes with at least five non-overlapping windows in ``n`` rows."""
    return [L for L in NULL_WINDOW_SIZES if 5 * L <= n]


def _window_counts(codes: np.ndarray, starts: np.ndarray, size: int, n_levels: int) -> np.ndarray:
    """(windows, levels) counts of integer ``codes`` in each window."""
    win = np.lib.stride_tricks.sliding_window_view(codes, size)[starts]
    offs = (np.arange(len(starts)) * n_levels)[:, None]
    return np.bincount((win + offs).ravel(), minlength=len(starts) * n_levels).reshape(len(starts), n_levels)


def _null_numeric(ordered: np.ndarray, sorted_finite: np.ndarray, edges: np.ndarray, counts: np.ndarray,
                  spread: float) -> dict[str, list[float]] | None:
    """Reference null of a numeric feature: per window size, the NULL_QUANTILE
    of contiguous windows' PSI and Wasserstein/spread against the whole
    reference. ``ordered`` = finite values in the reference's (time) order.
    W is computed on a grid of ``_NULL_GRID`` quantile levels (an
    approximation good to a few percent; the null only sets a threshold)."""
    sizes = _null_sizes(ordered.size)
    if not sizes:
        return None
    u = (np.arange(_NULL_GRID) + 0.5) / _NULL_GRID
    q_ref = np.quantile(sorted_finite, u)
    p_ref = counts / counts.sum()
    codes = np.searchsorted(edges, ordered, side="right")
    out: dict[str, list[float]] = {"sizes": [], "psi": [], "w_norm": []}
    for size in sizes:
        starts = _window_starts(ordered.size, size)
        win = np.sort(np.lib.stride_tricks.sliding_window_view(ordered, size)[starts], axis=1)
        w = np.abs(win[:, np.minimum((u * size).astype(np.int64), size - 1)] - q_ref).mean(axis=1) / spread
        p_cur = _window_counts(codes, starts, size, edges.size + 1) / size
        a, b = p_cur + PSI_EPSILON, p_ref + PSI_EPSILON
        psi = ((a - b) * np.log(a / b)).sum(axis=1)
        out["sizes"].append(int(size))
        out["psi"].append(float(np.quantile(psi, NULL_QUANTILE)))
        out["w_norm"].append(float(np.quantile(w, NULL_QUANTILE)))
        _append_lognormal(out, w)
    out["stat"] = "w_norm"
    return out


def _null_categorical(values: pd.Series, levels: Mapping[str, int]) -> dict[str, list[float]] | None:
    """Reference null of a categorical feature: per window size, the
    NULL_QUANTILE of contiguous windows' PSI and largest level-share change."""
    keys = list(levels)
    s = values[values.notna()].map(_level_key)
    codes = pd.Categorical(s, categories=keys).codes.astype(np.int64)
    sizes = _null_sizes(codes.size)
    if not sizes or not keys:
        return None
    ref_n = float(sum(levels.values()))
    p_ref = np.array([levels[k] for k in keys], dtype=np.float64) / ref_n
    out: dict[str, list[float]] = {"sizes": [], "psi": [], "share": []}
    for size in sizes:
        starts = _window_starts(codes.size, size)
        p_cur = _window_counts(codes, starts, size, len(keys)) / size
        a, b = p_cur + PSI_EPSILON, p_ref + PSI_EPSILON
        psi = ((a - b) * np.log(a / b)).sum(axis=1)
        share = np.abs(p_cur - p_ref).max(axis=1)
        out["sizes"].append(int(size))
        out["psi"].append(float(np.quantile(psi, NULL_QUANTILE)))
        out["share"].append(float(np.quantile(share, NULL_QUANTILE)))
        _append_lognormal(out, share)
    out["stat"] = "share"
    return out


_NULL_KEY = {"psi": "psi", "wasserstein_norm": "w_norm", "share_shift": "share"}


def null_threshold(null: Mapping[str, Any] | None, key: str, n: int, n_ref: int | None = None) -> float:
    """The reference null of statistic ``key`` for an independent window of
    ``n`` rows (0 if the profile has none): the measured quantiles corrected
    for the overlap with the ``n_ref``-row reference (:func:`_null_scale`),
    log-log interpolated between measured sizes; below the smallest size its
    value; above the largest, scaled like ``sqrt(1/n + 1/n_ref)`` ('w_norm',
    'share') or ``1/n + 1/n_ref`` ('psi', a chi-square-like bias)."""
    if not null or not null.get("sizes") or n <= 0:
        return 0.0
    sizes = np.asarray(null["sizes"], dtype=np.float64)
    at_sizes, beyond = _null_scale(sizes, float(n), n_ref, 1.0 if key == "psi" else 0.5)
    log_vals = np.log(np.maximum(np.asarray(null[key], dtype=np.float64), 1e-12)) + at_sizes
    if n <= sizes[0]:
        return float(np.exp(log_vals[0]))
    if n >= sizes[-1]:
        return float(np.exp(log_vals[-1] + beyond))
    return float(np.exp(np.interp(np.log(n), np.log(sizes), log_vals)))


def build_reference_profile(
    df: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    importance: dict[str, float] | None,
    n_bins: int = 10,
    max_sample: int = 20000,
    seed: int = 0,
    reference_null: bool = True,
) -> dict:
    """Reference profile of one model version (JSON-serializable dict).

    Pass ``df`` in time order: with ``reference_null`` (default) each feature
    also gets a ``null`` block measured on contiguous windows of that order
    (module docstring, "Reference null").

    Layout::

        {"schema_version": 1, "n_rows": int, "n_bins": int, "max_sample": int, "seed": int,
         "numeric": {feature: {"edges": [...inner edges...], "counts": [k+1 ints],
                               "n": finite count, "n_null": int, "n_nonfinite": int,
                               "null_share": float, "mean", "std" (ddof=0), "min", "max",
                               "iqr", "quantiles": {"0.01": v, ...}, "sample": [sorted floats]}},
         "categorical": {feature: {"levels": {level: count}, "n": int, "n_null": int,
                                   "null_share": float}},
         "importance": {feature: weight}}   # normalized to sum 1, uniform when None

    ``sample`` holds every finite value when there are at most ``max_sample``,
    else a deterministic evenly spaced subsample of the sorted values (block
    centres), so ``seed`` is only recorded (no randomness is involved). Stats of
    a feature without finite values are ``None``. Categorical levels are keyed
    by ``str(value)``; nulls are counted in ``n_null`` only.
    """
    if not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins: must be an integer >= 2, got {n_bins!r}")
    if not isinstance(max_sample, int) or max_sample < 1:
        raise ValueError(f"max_sample: must be an integer >= 1, got {max_sample!r}")
    overlap = set(numeric) & set(categorical)
    if overlap:
        raise ValueError(f"features both numeric and categorical: {sorted(overlap)}")
    missing = [c for c in [*numeric, *categorical] if c not in df.columns]
    if missing:
        raise ValueError(f"columns missing from the reference data: {missing}")
    n_rows = int(len(df))
    num_profiles: dict[str, dict] = {}
    for feat in numeric:
        x = _as_float_array(df[feat])
        finite, n_null, n_inf = _split_finite(x)
        finite = np.sort(finite)
        n = int(finite.size)
        edges = _quantile_edges(finite, n_bins)
        counts = bin_counts(finite, edges, assume_sorted=True) if n else np.zeros(edges.size + 1, dtype=np.int64)
        if n:
            q = np.quantile(finite, QUANTILE_LEVELS)
            stats_: dict[str, Any] = {
                "mean": _f(np.mean(finite)),
                "std": _f(np.std(finite)),
                "min": _f(finite[0]),
                "max": _f(finite[-1]),
                "iqr": _f(np.quantile(finite, 0.75) - np.quantile(finite, 0.25)),
                "quantiles": {repr(lv): _f(v) for lv, v in zip(QUANTILE_LEVELS, q)},
            }
        else:
            stats_ = {"mean": None, "std": None, "min": None, "max": None, "iqr": None,
                      "quantiles": {repr(lv): None for lv in QUANTILE_LEVELS}}
        fine = np.unique(np.concatenate([edges, _quantile_edges(finite, FINE_BINS)])) if n else edges
        fine_counts = bin_counts(finite, fine, assume_sorted=True) if n else np.zeros(fine.size + 1, dtype=np.int64)
        null = None
        if reference_null and n:
            spread = _spread(stats_)
            null = _null_numeric(x[np.isfinite(x)], finite, edges, counts, spread)
        num_profiles[feat] = {
            "null": null,
            "edges": [float(e) for e in edges],
            "fine_edges": [float(e) for e in fine],
            "fine_counts": [int(c) for c in fine_counts],
            "counts": [int(c) for c in counts],
            "n": n,
            "n_null": n_null,
            "n_nonfinite": n_inf,
            "null_share": (n_null / n_rows) if n_rows else 0.0,
            **stats_,
            "sample": [float(v) for v in _even_subsample(finite, max_sample)],
        }
    cat_profiles: dict[str, dict] = {}
    for feat in categorical:
        levels, n_null = _categorical_counts(df[feat])
        cat_profiles[feat] = {
            "null": _null_categorical(df[feat], levels) if reference_null else None,
            "levels": levels,
            "n": int(sum(levels.values())),
            "n_null": n_null,
            "null_share": (n_null / n_rows) if n_rows else 0.0,
        }
    return {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "n_rows": n_rows,
        "n_bins": n_bins,
        "max_sample": max_sample,
        "seed": int(seed),
        "numeric": num_profiles,
        "categorical": cat_profiles,
        "importance": _normalize_importance([*numeric, *categorical], importance),
    }


def profile_to_json(profile: Mapping[str, Any]) -> str:
    """Serialize a profile; floats use ``repr`` so the round trip is exact.

    Raises ValueError if the profile contains NaN/inf (PostgreSQL jsonb would
    reject them).
    """
    return json.dumps(profile, allow_nan=False, separators=(",", ":"))


def profile_from_json(text: str | bytes | Mapping[str, Any]) -> dict:
    """Inverse of :func:`profile_to_json` (a dict, e.g. from a jsonb column, is
    returned as a plain dict after a schema check)."""
    profile = dict(text) if isinstance(text, Mapping) else json.loads(text)
    version = profile.get("schema_version")
    if version != PROFILE_SCHEMA_VERSION:
        raise ValueError(f"schema_version: unsupported reference profile version {version!r}")
    for key in ("numeric", "categorical", "importance"):
        if not isinstance(profile.get(key), dict):
            raise ValueError(f"{key}: missing or not an object in the reference profile")
    return profile


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


def _proportions(ref_counts: Any, cur_counts: Any) -> tuple[np.ndarray, np.ndarray]:
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


def _psi(p_ref: np.ndarray, p_cur: np.ndarray, eps: float) -> float:
    a, b = p_cur + eps, p_ref + eps
    return float(np.sum((a - b) * np.log(a / b)))


def _kl(p_ref: np.ndarray, p_cur: np.ndarray, eps: float) -> float:
    a, b = p_cur + eps, p_ref + eps
    return float(np.sum(a * np.log(a / b)))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    js = (left.sum() + right.sum()) / (2.0 * math.log(2.0))
    return float(math.sqrt(max(js, 0.0)))


def psi_from_counts(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bins, with
    ``c``/``r`` the current/reference proportions plus ``eps``."""
    r, c = _proportions(ref_counts, cur_counts)
    return _psi(r, c, eps)


def kl_from_counts(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPSILON) -> float:
    """KL(current || reference) in nats, proportions plus ``eps``."""
    r, c = _proportions(ref_counts, cur_counts)
    return _kl(r, c, eps)


def js_from_counts(ref_counts: Any, cur_counts: Any) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of the raw proportions;
    equals ``scipy.spatial.distance.jensenshannon(ref, cur, base=2)``."""
    r, c = _proportions(ref_counts, cur_counts)
    return _js(r, c)


# --------------------------------------------------------------------------- #
# Kolmogorov-Smirnov and Wasserstein
# --------------------------------------------------------------------------- #
def _ks_exact_sf(n1: int, n2: int, h: int, g: int) -> float:
    """P(D >= h/lcm(n1, n2)) for two continuous samples of sizes n1, n2 (no ties).

    Counts monotone lattice paths from (0, 0) to (nA, nB) (nA = the smaller
    size on the x axis) that stay strictly inside the band
    ``|i/nA - j/nB| < h/lcm``; every path is equally likely. Column by column,
    the paths inside column i are a cumulative sum of column i-1 restricted to
    the band. The probability of leaving the band is summed directly over
    first exits (inside-path count x completions / all paths) in log space, so
    tiny p-values keep their relative precision. O(nA * band width) work in
    nA vectorized steps. Agrees with scipy to ~1e-11 absolute; below ~1e-60
    the tiny p-values lose relative precision (band cells far below the
    column maximum underflow), which never matters for a decision.
    """
    n_a, n_b = (n1, n2) if n1 <= n2 else (n2, n1)
    a, b = n_b // g, n_a // g  # |i/nA - j/nB| = |i*a - j*b| / lcm
    logfact = gammaln(np.arange(1, n_a + n_b + 2, dtype=np.float64))  # logfact[k] = log(k!)
    log_total = logfact[n_a + n_b] - logfact[n_a] - logfact[n_b]

    def log_completions(x: int | np.ndarray, y: int | np.ndarray) -> Any:
        return logfact[n_a - x + n_b - y] - logfact[n_a - x] - logfact[n_b - y]

    exit_logs: list[np.ndarray] = []
    lo, hi = 0, min(n_b, (h - 1) // b)
    col = np.zeros(n_b + 1)  # col[j] = scaled inside-path count of cell (i, j), valid on [lo, hi]
    col[lo:hi + 1] = 1.0
    log_scale = 0.0
    if hi < n_b:  # paths that go straight up out of column 0
        exit_logs.append(np.array([log_completions(0, hi + 1) - log_total]))
    for i in range(1, n_a + 1):
        new_lo = max(0, (i * a - h) // b + 1)
        new_hi = min(n_b, (i * a + h - 1) // b)
        if new_lo > lo:  # right steps from prev cells below the new band leave it
            ys = np.arange(lo, min(new_lo, hi + 1))
            with np.errstate(divide="ignore"):
                exit_logs.append(np.log(col[ys]) + log_scale + log_completions(i, ys) - log_total)
        if new_lo > hi or new_lo > new_hi:  # nothing left inside
            break
        np.cumsum(col[new_lo:hi + 1], out=col[new_lo:hi + 1])
        if new_hi > hi:
            col[hi + 1:new_hi + 1] = col[hi]
        lo, hi = new_lo, new_hi
        top = col[hi]  # a cumulative sum: the last cell is the column maximum
        if hi < n_b and top > 0:  # up step above the band from the top cell
            exit_logs.append(np.array([math.log(top) + log_scale + log_completions(i, hi + 1) - log_total]))
        if top <= 0:  # everything underflowed: nothing measurable left inside
            break
        if top > 1e150:
            col[lo:hi + 1] /= top
            log_scale += math.log(top)
    if not exit_logs:
        return 0.0
    p = float(np.exp(np.concatenate(exit_logs)).sum())
    return min(1.0, max(0.0, p))


def ks_pvalue(d: float, n1: int, n2: int, max_exact_n: int = KS_MAX_EXACT_N) -> tuple[float, float]:
    """Two-sided p-value of the two-sample KS statistic ``d`` as
    ``scipy.stats.ks_2samp(method='auto')`` computes it.

    Exact (lattice-path count, :func:`_ks_exact_sf`) when ``max(n1, n2) <=
    max_exact_n`` (default :data:`KS_MAX_EXACT_N`, scipy's rule); then ``d`` is snapped to the lattice ``h/lcm`` like
    scipy does and the snapped value is returned. Otherwise Smirnov's
    asymptotic ``scipy.stats.kstwo.sf(d, round(n1*n2/(n1+n2)))``.
    Returns ``(statistic, p_value)``.
    """
    if n1 < 1 or n2 < 1:
        raise ValueError("KS needs two non-empty samples")
    if max(n1, n2) <= max_exact_n:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = int(np.round(d * lcm))
        d = h / lcm
        if h == 0:
            return d, 1.0
        return d, _ks_exact_sf(n1, n2, h, g)
    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = m * n / (m + n)
    p = float(stats.kstwo.sf(d, np.round(en)))
    return float(d), min(1.0, max(0.0, p))


def _merged_cdfs(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both ECDFs at every distinct value of the pooled sample.

    Returns ``(distinct sorted values, F_ref, F_cur)`` where ``F(v)`` = share of
    the sample ``<= v`` (the ``searchsorted(..., side='right')`` ECDF). The
    pooled order comes from a stable argsort of the two concatenated sorted
    runs (a linear-time merge); the ECDFs are running counts read at the last
    position of each group of equal values.
    """
    n1, n2 = ref_sorted.size, cur_sorted.size
    pooled = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(pooled, kind="stable")
    values = pooled[order]
    ref_le = np.cumsum(order < n1, dtype=np.int32 if values.size < 2**31 else np.int64)
    last = np.empty(values.size, dtype=bool)
    np.not_equal(values[1:], values[:-1], out=last[:-1])
    last[-1] = True
    ends = np.flatnonzero(last)
    n_ref = ref_le[ends]
    cdf_r = n_ref / n1
    cdf_c = (ends + 1 - n_ref) / n2
    return values[ends], cdf_r, cdf_c


def ks_2samp_sorted(ref_sorted: Any, cur_sorted: Any) -> tuple[float, float]:
    """Two-sided two-sample KS ``(statistic, p_value)`` of two *sorted* finite
    samples; equal to ``scipy.stats.ks_2samp(ref, cur)`` (ties allowed)."""
    r = np.asarray(ref_sorted, dtype=np.float64)
    c = np.asarray(cur_sorted, dtype=np.float64)
    _, cdf_r, cdf_c = _merged_cdfs(r, c)
    diff = cdf_r - cdf_c
    d = max(float(diff.max()), float(np.clip(-diff.min(), 0, 1)))
    return ks_pvalue(d, r.size, c.size)


def wasserstein_sorted(ref_sorted: Any, cur_sorted: Any) -> float:
    """Wasserstein-1 distance ``integral |F_ref - F_cur|`` of two sorted finite
    samples; equals ``scipy.stats.wasserstein_distance(ref, cur)``."""
    r = np.asarray(ref_sorted, dtype=np.float64)
    c = np.asarray(cur_sorted, dtype=np.float64)
    allv, cdf_r, cdf_c = _merged_cdfs(r, c)
    return float(np.sum(np.abs(cdf_r[:-1] - cdf_c[:-1]) * np.diff(allv)))


def _ks_and_wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray,
                        max_exact_n: int = KS_MAX_EXACT_N) -> tuple[float, float, float]:
    """(KS statistic, KS p-value, W1) sharing one merge."""
    allv, cdf_r, cdf_c = _merged_cdfs(ref_sorted, cur_sorted)
    diff = cdf_r - cdf_c
    d = max(float(diff.max()), float(np.clip(-diff.min(), 0, 1)))
    w = float(np.sum(np.abs(diff[:-1]) * np.diff(allv)))
    d, p = ks_pvalue(d, ref_sorted.size, cur_sorted.size, max_exact_n)
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
    """Benjamini-Hochberg step-up: ``(adjusted p-values, rejected)``.

    Adjusted ``p_(i) = min_{j >= i} min(1, m * p_(j) / j)`` (sorted ascending,
    1-based ranks); ``rejected = adjusted <= q``, which is the same set as the
    classic "largest k with p_(k) <= k q / m" rule.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return [], []
    if np.any(~np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("p-values must be finite and in [0, 1]")
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adj_sorted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    adj = np.empty(m)
    adj[order] = adj_sorted
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


@dataclass(frozen=True)
class FeatureResult:
    """Outcome of one feature in one window.

    ``status``: 'ok'; 'no_data' (column missing or no finite/non-null value in
    the window - a data problem, no statistics); 'no_reference' (the profile
    has no finite reference values). ``test`` is the primary test ('ks' or
    'chi2'); ``statistic``/``p_value`` are its values, ``p_adjusted`` the BH
    adjusted p-value. Metrics that do not apply are None.
    """

    feature: str
    kind: str  # 'numeric' | 'categorical'
    status: str  # 'ok' | 'no_data' | 'no_reference'
    test: str  # 'ks' | 'chi2'
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    psi: float | None = None
    kl: float | None = None
    js: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    chi2_dof: int | None = None
    share_shift: float | None = None
    p_null: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    severity: float = 0.0
    level: str = "none"
    drifted: bool = False
    n_current: int = 0
    n_null: int = 0
    n_nonfinite: int = 0
    importance: float = 0.0
    unseen_levels: tuple[str, ...] = ()
    note: str = ""

    def metrics(self) -> dict[str, float | None]:
        """Metric name -> value for the tests that apply to this feature."""
        if self.status != "ok":
            return {}
        if self.kind == "numeric":
            return {"ks": self.ks, "psi": self.psi, "kl": self.kl, "js": self.js,
                    "wasserstein": self.wasserstein, "wasserstein_norm": self.wasserstein_norm}
        return {"chi2": self.chi2, "psi": self.psi, "kl": self.kl, "js": self.js, "share_shift": self.share_shift}


@dataclass(frozen=True)
class WindowResult:
    """All features of one window plus the model-level verdict.

    ``drift_score`` in [0, 1] = importance-weighted mean of feature
    severities / 100 over the features with status 'ok' (weights renormalized
    over them); ``drift_score_100`` = 100 x that. ``level`` = 'critical' if a
    drifted feature crossed a critical threshold, 'warning' if any feature
    drifted, else 'none' (and 'none' whenever ``drift_score <
    config.min_model_score``); ``drifted`` = ``level != 'none'`` - the boolean
    to feed the hysteresis.
    """

    features: tuple[FeatureResult, ...]
    n_rows: int
    drift_score: float
    level: str
    drifted: bool
    config: DriftConfig = field(default_factory=DriftConfig)

    @property
    def drift_score_100(self) -> float:
        """Model drift score on a 0-100 scale."""
        return 100.0 * self.drift_score

    @property
    def n_drifted(self) -> int:
        """Number of drifted features."""
        return sum(1 for f in self.features if f.drifted)

    @property
    def drifted_features(self) -> list[FeatureResult]:
        """Drifted features, most severe first."""
        return sorted((f for f in self.features if f.drifted), key=lambda f: (-f.severity, f.p_value or 0.0, f.feature))

    @property
    def no_data_features(self) -> list[str]:
        """Features that could not be evaluated (status != 'ok')."""
        return [f.feature for f in self.features if f.status != "ok"]

    def feature(self, name: str) -> FeatureResult:
        """The result of feature ``name`` (KeyError if absent)."""
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        """JSON-serializable window summary (for ``drift_windows.summary``)."""
        return {
            "n_rows": self.n_rows,
            "drift_score": self.drift_score,
            "level": self.level,
            "drifted": self.drifted,
            "n_features": len(self.features),
            "n_drifted": self.n_drifted,
            "drifted_features": [f.feature for f in self.drifted_features],
            "no_data_features": self.no_data_features,
            "config": self.config.to_dict(),
        }

    def summary_lines(self, top: int = 5) -> list[str]:
        """Human-readable log lines: the verdict, then up to ``top`` drifted
        features (or, if none drifted, the highest non-zero severities) with
        their statistics, then features without data."""
        cfg = self.config
        lines = [
            f"drift score {self.drift_score:.3f} ({self.drift_score_100:.1f}/100), level={self.level}, "
            f"{self.n_drifted}/{len(self.features)} features drifted, {self.n_rows} rows "
            f"(BH q={cfg.fdr_q:g}, PSI>={cfg.psi_warning:g}/{cfg.psi_critical:g}, "
            f"W/sd>={cfg.wasserstein_warning:g}/{cfg.wasserstein_critical:g})"
        ]
        shown = self.drifted_features
        if not shown:
            lines.append("no feature drifted")
            shown = sorted((f for f in self.features if f.severity > 0), key=lambda f: -f.severity)
        for f in shown[:top]:
            tag = f"DRIFTED {f.level}" if f.drifted else "not drifted"
            if f.kind == "numeric":
                detail = (f"KS D={_fmt(f.ks, '.4f')} p={_fmt(f.ks_pvalue)} (BH {_fmt(f.p_adjusted)}) "
                          f"PSI={_fmt(f.psi, '.4f')} W/sd={_fmt(f.wasserstein_norm, '.3f')} JS={_fmt(f.js, '.4f')}")
            else:
                detail = (f"chi2={_fmt(f.chi2, '.4g')} dof={f.chi2_dof} p={_fmt(f.chi2_pvalue)} "
                          f"(BH {_fmt(f.p_adjusted)}) PSI={_fmt(f.psi, '.4f')} JS={_fmt(f.js, '.4f')}")
                if f.unseen_levels:
                    detail += f" unseen={list(f.unseen_levels[:5])}"
            lines.append(f"  {f.feature}: {detail} severity={f.severity:.1f} importance={f.importance:.3f} {tag}")
        bad = [f for f in self.features if f.status != "ok"]
        if bad:
            lines.append("not evaluated: " + ", ".join(f"{f.feature} ({f.status}{': ' + f.note if f.note else ''})"
                                                     for f in bad))
        return lines

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows for the ``drift_results`` table, one per (feature, test).

        Keys: ``feature, test, statistic, p_value, severity, drifted,
        n_current, details``. Tests: numeric 'ks', 'psi', 'kl', 'js',
        'wasserstein', 'wasserstein_norm'; categorical 'chi2', 'psi', 'kl',
        'js'. ``p_value`` is set on the primary row ('ks'/'chi2') only;
        ``severity``/``drifted`` repeat the feature's verdict on every row.
        A feature without data gives one primary row with statistic/p_value
        None and ``details.status`` = 'no_data'/'no_reference'. ``details``
        (JSON) holds status, kind, level, p_adjusted, n_null, n_nonfinite,
        importance and (categoricals) unseen levels.
        """
        rows: list[dict[str, Any]] = []
        for f in self.features:
            details: dict[str, Any] = {
                "status": f.status, "kind": f.kind, "level": f.level, "p_adjusted": _f(f.p_adjusted),
                "n_null": f.n_null, "n_nonfinite": f.n_nonfinite, "importance": f.importance,
            }
            if f.unseen_levels:
                details["unseen_levels"] = list(f.unseen_levels)
            if f.chi2_dof is not None:
                details["dof"] = f.chi2_dof
            if f.thresholds:
                details["thresholds"] = dict(f.thresholds)
            if f.p_null is not None:
                details["p_null"] = _f(f.p_null)
            if f.note:
                details["note"] = f.note
            metrics = f.metrics() or {f.test: None}
            for test, value in metrics.items():
                rows.append({
                    "feature": f.feature,
                    "test": test,
                    "statistic": _f(value),
                    "p_value": _f(f.p_value) if test == f.test else None,
                    "severity": f.severity,
                    "drifted": f.drifted,
                    "n_current": f.n_current,
                    "details": dict(details),
                })
        return rows


def _spread(ref: Mapping[str, Any]) -> float:
    """Normalizer of the Wasserstein distance: reference std (ddof=0); if that
    is 0 or missing, the reference IQR; if that is 0 too, 1.0 (raw units)."""
    for key in ("std", "iqr"):
        v = ref.get(key)
        if v is not None and math.isfinite(v) and v > 0:
            return float(v)
    return 1.0


def _eval_numeric(name: str, ref: Mapping[str, Any], col: pd.Series | None, weight: float,
                  max_exact_n: int = KS_MAX_EXACT_N) -> dict[str, Any]:
    base: dict[str, Any] = {"feature": name, "kind": "numeric", "test": "ks", "importance": weight}
    if col is None:
        return {**base, "status": "no_data", "note": "column missing"}
    x = _as_float_array(col)
    finite, n_null, n_inf = _split_finite(x)
    base.update(n_null=n_null, n_nonfinite=n_inf, n_current=int(finite.size))
    if finite.size == 0:
        return {**base, "status": "no_data", "note": "no finite values"}
    sample = _profile_array(ref.get("sample"))
    if sample.size == 0 or not ref.get("n"):
        return {**base, "status": "no_reference", "note": "no finite reference values"}
    cur = np.sort(finite)
    edges = _profile_array(ref["edges"])
    ref_counts = _profile_array(ref["counts"])
    p_ref = ref_counts / ref_counts.sum()
    p_cur = bin_counts(cur, edges, assume_sorted=True) / cur.size
    d, p, w = _ks_and_wasserstein(sample, cur, max_exact_n)
    return {
        **base, "status": "ok", "statistic": d, "p_value": p, "ks": d, "ks_pvalue": p,
        "psi": _psi(p_ref, p_cur, PSI_EPSILON), "kl": _kl(p_ref, p_cur, PSI_EPSILON), "js": _js(p_ref, p_cur),
        "wasserstein": w, "wasserstein_norm": w / _spread(ref),
    }


def _eval_categorical(name: str, ref: Mapping[str, Any], col: pd.Series | None, weight: float) -> dict[str, Any]:
    base: dict[str, Any] = {"feature": name, "kind": "categorical", "test": "chi2", "importance": weight}
    if col is None:
        return {**base, "status": "no_data", "note": "column missing"}
    cur_levels, n_null = _categorical_counts(col)
    return _eval_categorical_counts(name, ref, cur_levels, n_null, weight)


def _eval_categorical_counts(name: str, ref: Mapping[str, Any], cur_levels: Mapping[str, int], n_null: int,
                             weight: float) -> dict[str, Any]:
    base: dict[str, Any] = {"feature": name, "kind": "categorical", "test": "chi2", "importance": weight}
    n = int(sum(cur_levels.values()))
    base.update(n_null=n_null, n_current=n)
    if n == 0:
        return {**base, "status": "no_data", "note": "no non-null values"}
    ref_levels: Mapping[str, int] = ref.get("levels") or {}
    ref_n = sum(ref_levels.values())
    if ref_n <= 0:
        return {**base, "status": "no_reference", "note": "no reference levels"}
    unseen = tuple(lv for lv in cur_levels if lv not in ref_levels)
    levels = [*ref_levels.keys(), *unseen]
    ref_c = np.array([ref_levels.get(lv, 0) for lv in levels], dtype=np.float64)
    c = np.array([cur_levels.get(lv, 0) for lv in levels], dtype=np.float64)
    r = ref_c / ref_n
    p_cur = c / n
    stat, p, dof = chi_square(ref_c, c)
    return {
        **base, "status": "ok", "statistic": stat, "p_value": p, "chi2": stat, "chi2_pvalue": p, "chi2_dof": dof,
        "psi": _psi(r, p_cur, PSI_EPSILON), "kl": _kl(r, p_cur, PSI_EPSILON), "js": _js(r, p_cur),
        "share_shift": float(np.abs(p_cur - r).max()), "unseen_levels": unseen,
    }


def evaluate_window(profile: dict, current: pd.DataFrame, config: DriftConfig) -> WindowResult:
    """Evaluate one window of current data against a reference profile.

    Every numeric and categorical feature of the profile is tested; a feature
    is ``drifted`` iff its primary p-value is BH-significant at
    ``config.fdr_q`` (over all features with status 'ok') AND its effect size
    reaches a warning threshold (``psi >= psi_warning``, or for numerics
    ``wasserstein_norm >= wasserstein_warning``); its level is 'critical' if
    drifted and a critical threshold is reached. Features with fewer than
    ``config.min_rows`` usable values are reported but not tested. Non-finite values are
    excluded and counted (``n_null`` for NaN/NULL, ``n_nonfinite`` for +/-inf).
    """
    if config is None:
        config = DriftConfig()
    importance: Mapping[str, float] = profile.get("importance") or {}
    cols = set(current.columns)

    def numeric(item: tuple[str, Mapping[str, Any]]) -> dict[str, Any]:
        name, ref = item
        return _eval_numeric(name, ref, current[name] if name in cols else None,
                             float(importance.get(name, 0.0)), config.ks_exact_max_n)

    items = list(profile.get("numeric", {}).items())
    threads = min(config.threads, os.cpu_count() or 1, len(items))
    if threads > 1 and len(current) >= PARALLEL_MIN_ROWS:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drift") as pool:
            raw: list[dict[str, Any]] = list(pool.map(numeric, items))
    else:
        raw = [numeric(item) for item in items]
    for name, ref in profile.get("categorical", {}).items():
        raw.append(_eval_categorical(name, ref, current[name] if name in cols else None,
                                     float(importance.get(name, 0.0))))
    return _decide(profile, raw, int(len(current)), config)


def _eval_numeric_binned(name: str, ref: Mapping[str, Any], counts: Sequence[int] | None, n_null: int,
                         weight: float) -> dict[str, Any]:
    base: dict[str, Any] = {"feature": name, "kind": "numeric", "test": "ks", "importance": weight,
                            "note": "binned in PostgreSQL"}
    if counts is None:
        return {**base, "status": "no_data", "note": "column missing"}
    fine = np.asarray(ref["fine_edges"], dtype=np.float64)
    cur = np.asarray(counts, dtype=np.float64)
    if cur.size != fine.size + 1:
        raise ValueError(f"{name}: {cur.size} bucket counts for {fine.size} fine edges (expected {fine.size + 1})")
    n = int(cur.sum())
    base.update(n_null=n_null, n_current=n)
    if n == 0:
        return {**base, "status": "no_data", "note": "no finite values"}
    ref_fine = np.asarray(ref["fine_counts"], dtype=np.float64)
    if not ref.get("n"):
        return {**base, "status": "no_reference", "note": "no finite reference values"}
    edges = np.asarray(ref["edges"], dtype=np.float64)
    # fine bin j >= 1 starts at fine[j-1]; every fine bin lies inside one PSI bin
    to_coarse = np.concatenate([[0], np.searchsorted(edges, fine, side="right")])
    p_ref = np.asarray(ref["counts"], dtype=np.float64) / ref_fine.sum()
    p_cur = np.bincount(to_coarse, weights=cur, minlength=edges.size + 1) / n
    f_ref = np.cumsum(ref_fine)[:-1] / ref_fine.sum()
    f_cur = np.cumsum(cur)[:-1] / n
    gap = np.abs(f_cur - f_ref)
    d = float(gap.max()) if gap.size else 0.0
    _, p = ks_pvalue(d, n, int(ref["n"]), max_exact_n=0)
    w = float(np.sum(gap[:-1] * np.diff(fine))) if fine.size > 1 else 0.0
    return {
        **base, "status": "ok", "statistic": d, "p_value": p, "ks": d, "ks_pvalue": p,
        "psi": _psi(p_ref, p_cur, PSI_EPSILON), "kl": _kl(p_ref, p_cur, PSI_EPSILON), "js": _js(p_ref, p_cur),
        "wasserstein": w, "wasserstein_norm": w / _spread(ref),
    }


def evaluate_binned(profile: dict, numeric_counts: Mapping[str, Mapping[str, Any]],
                    categorical_counts: Mapping[str, Mapping[str, Any]], n_rows: int,
                    config: DriftConfig) -> WindowResult:
    """Evaluate a window from bucket counts computed elsewhere (PostgreSQL).

    ``numeric_counts[feature] = {"counts": [...], "n_null": int}`` with one
    count per bucket of the feature's ``fine_edges`` (``width_bucket(x,
    fine_edges)`` = :func:`bin_index`; :func:`counts_from_buckets` turns the
    SQL rows into the list); ``categorical_counts[feature] = {"levels":
    {level: count}, "n_null": int}``. PSI, KL, JS and chi-square are exactly
    those of :func:`evaluate_window` (the fine edges contain the PSI edges).
    KS and Wasserstein are computed from the binned CDFs: D is the largest
    CDF gap at the fine edges (a lower bound of the exact D, off by at most
    one fine bin, ~1% of the mass) with Smirnov's asymptotic p-value, and W
    integrates the CDF gap between the outermost fine edges (tails beyond
    the 1st/99th reference percentiles are not integrated). The decision
    (BH, reference null, thresholds) is the same as in raw mode.
    """
    if config is None:
        config = DriftConfig()
    importance: Mapping[str, float] = profile.get("importance") or {}
    raw: list[dict[str, Any]] = []
    for name, ref in profile.get("numeric", {}).items():
        if "fine_edges" not in ref:
            raise ValueError(f"{name}: the profile has no fine edges (schema v1); rebuild it for binned mode")
        c = numeric_counts.get(name)
        raw.append(_eval_numeric_binned(name, ref, None if c is None else c["counts"], int((c or {}).get("n_null", 0)),
                                        float(importance.get(name, 0.0))))
    for name, ref in profile.get("categorical", {}).items():
        c = categorical_counts.get(name)
        if c is None:
            raw.append({"feature": name, "kind": "categorical", "test": "chi2", "status": "no_data",
                        "note": "column missing", "importance": float(importance.get(name, 0.0))})
            continue
        raw.append(_eval_categorical_counts(name, ref, {str(k): int(v) for k, v in c["levels"].items() if int(v) > 0},
                                            int(c.get("n_null", 0)), float(importance.get(name, 0.0))))
    return _decide(profile, raw, n_rows, config)


def _decide(profile: dict, raw: list[dict[str, Any]], n_rows: int, config: DriftConfig) -> WindowResult:
    """Significance (BH over max(test p, null p)), effect sizes, severity and
    the model-level score, shared by the raw and the binned mode."""
    for r in raw:
        if r["status"] == "ok" and r["n_current"] < config.min_rows:
            r["note"] = f"too few values ({r['n_current']} < min_rows={config.min_rows}); not tested"
    ok = [r for r in raw if r["status"] == "ok" and r["n_current"] >= config.min_rows]
    refs = {**profile.get("numeric", {}), **profile.get("categorical", {})}
    for r in ok:
        ref = refs[r["feature"]]
        stat = {"w_norm": "wasserstein_norm", "share": "share_shift"}.get((ref.get("null") or {}).get("stat", ""))
        r["p_null"] = null_pvalue(ref.get("null"), r.get(stat), r["n_current"], ref.get("n")) if stat else None
    # a feature must be unusual both as a sample (KS / chi-square) and against the
    # reference's own windows of this size: intersection-union, p = the larger one
    adjusted, rejected = benjamini_hochberg(
        [r["p_value"] if r["p_null"] is None else max(r["p_value"], r["p_null"]) for r in ok], config.fdr_q)
    for r, adj, rej in zip(ok, adjusted, rejected):
        null, n_ref = refs[r["feature"]].get("null"), refs[r["feature"]].get("n")
        n = r["n_current"]
        # (statistic, warning, critical) with the reference null folded into the thresholds
        checks = [("psi", r["psi"], config.psi_warning, config.psi_critical)]
        if r["kind"] == "numeric":
            checks.append(("wasserstein_norm", r.get("wasserstein_norm"), config.wasserstein_warning,
                           config.wasserstein_critical))
        else:
            checks.append(("share_shift", r.get("share_shift"), config.share_warning, config.share_critical))
        thresholds: dict[str, float] = {}
        warn = crit = False
        effect = 0.0
        for key, value, w0, c0 in checks:
            q99 = null_threshold(null, _NULL_KEY[key], n, n_ref)
            w_eff, c_eff = max(w0, q99), max(c0, 2.0 * q99)
            thresholds[key] = w_eff
            if value is None:
                continue
            warn |= value >= w_eff
            crit |= value >= c_eff
            effect = max(effect, value / c_eff)
        drifted = bool(rej and warn)
        r.update(
            p_adjusted=adj,
            significant=rej,
            thresholds=thresholds,
            severity=float(100.0 * min(1.0, effect)) if drifted else 0.0,
            drifted=drifted,
            level=("critical" if crit else "warning") if drifted else "none",
        )
    results = tuple(FeatureResult(**r) for r in raw)

    ok_results = [f for f in results if f.status == "ok"]
    total_w = math.fsum(f.importance for f in ok_results)
    if ok_results and total_w > 0:
        score = math.fsum(f.importance * f.severity for f in ok_results) / (100.0 * total_w)
    elif ok_results:
        score = math.fsum(f.severity for f in ok_results) / (100.0 * len(ok_results))
    else:
        score = 0.0
    score = min(1.0, max(0.0, score))
    drifted_feats = [f for f in ok_results if f.drifted]
    if not drifted_feats or score < config.min_model_score:
        level = "none"
    else:
        level = "critical" if any(f.level == "critical" for f in drifted_feats) else "warning"
    return WindowResult(features=results, n_rows=n_rows, drift_score=score, level=level,
                        drifted=level != "none", config=config)


# --------------------------------------------------------------------------- #
# Hysteresis
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class HysteresisResult:
    """New alert state ('clear' | 'firing') and the transition ('fire',
    'resolve' or None)."""

    state: str
    transition: str | None


@dataclass(frozen=True)
class Hysteresis:
    """N-of-M firing, K-clean resolving (defaults 2 of 3, 3 clean).

    * clear -> firing ('fire') when the newest window drifted and at least
      ``fire_n`` of the last ``fire_m`` windows drifted;
    * firing -> clear ('resolve') when the last ``resolve_k`` windows are all
      clean;
    * otherwise the state is kept (transition None). Fewer windows than
      needed never fire/resolve. Windows that could not be evaluated should be
      left out of the history.
    """

    fire_n: int = 2
    fire_m: int = 3
    resolve_k: int = 3

    def __post_init__(self) -> None:
        for name in ("fire_n", "fire_m", "resolve_k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {v!r}")
        if self.fire_n > self.fire_m:
            raise ValueError(f"fire_n: must be <= fire_m ({self.fire_n} > {self.fire_m})")

    @classmethod
    def from_config(cls, config: DriftConfig) -> Hysteresis:
        """Hysteresis with the config's fire_n / fire_m / resolve_k."""
        return cls(config.fire_n, config.fire_m, config.resolve_k)

    def step(self, history: Sequence[bool], state: str) -> HysteresisResult:
        """Apply to the ordered window booleans (oldest first, newest last,
        including the current window) and the alert state before it."""
        if state not in ALERT_STATES:
            raise ValueError(f"state: must be one of {ALERT_STATES}, got {state!r}")
        h = [bool(v) for v in history]
        if state == "clear":
            if h and h[-1] and sum(h[-self.fire_m:]) >= self.fire_n:
                return HysteresisResult("firing", "fire")
            return HysteresisResult("clear", None)
        if len(h) >= self.resolve_k and not any(h[-self.resolve_k:]):
            return HysteresisResult("clear", "resolve")
        return HysteresisResult("firing", None)


def update_alert_state(history: Sequence[bool], state: str, config: DriftConfig | None = None) -> HysteresisResult:
    """Functional form of :meth:`Hysteresis.step` using ``config``'s settings."""
    return Hysteresis.from_config(config or DriftConfig()).step(history, state)
