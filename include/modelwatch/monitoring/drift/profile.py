"""Reference profile of a model version: build, JSON round trip, and the reference null."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from include.modelwatch.monitoring.drift.config import (
    FINE_BINS,
    NULL_MAX_WINDOWS,
    NULL_QUANTILE,
    NULL_WINDOW_SIZES,
    PROFILE_SCHEMA_VERSION,
    PSI_EPSILON,
    QUANTILE_LEVELS,
)
from include.modelwatch.monitoring.drift.stats import (
    as_float_array,
    bin_counts,
    categorical_counts,
    level_key,
    split_finite,
)
from include.modelwatch.vocabulary import finite_or_none

#: Quantile levels used to approximate the Wasserstein distance of a window.
_NULL_GRID: int = 200

_ARRAY_CACHE: dict[int, tuple[list, np.ndarray]] = {}
_ARRAY_CACHE_MAX: int = 4096


def profile_array(values: list | None) -> np.ndarray:
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


# --------------------------------------------------------------------------- #
# Reference profile
# --------------------------------------------------------------------------- #
def quantile_edges(sorted_finite: np.ndarray, n_bins: int) -> np.ndarray:
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


def normalize_importance(features: Sequence[str], importance: Mapping[str, float] | None) -> dict[str, float]:
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


def _append_lognormal(out: dict[str, Any], values: np.ndarray) -> None:
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


def null_pvalue(null: Mapping[str, Any] | None, value: float | None, n: int, n_ref: int | None = None) -> float | None:
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


def _null_numeric(
    ordered: np.ndarray, sorted_finite: np.ndarray, edges: np.ndarray, counts: np.ndarray, spread: float
) -> dict[str, Any] | None:
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
    out: dict[str, Any] = {"sizes": [], "psi": [], "w_norm": []}
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


def _null_categorical(values: pd.Series, levels: Mapping[str, int]) -> dict[str, Any] | None:
    """Reference null of a categorical feature: per window size, the
    NULL_QUANTILE of contiguous windows' PSI and largest level-share change."""
    keys = list(levels)
    s = values[values.notna()].map(level_key)
    codes = pd.Categorical(s, categories=keys).codes.astype(np.int64)
    sizes = _null_sizes(codes.size)
    if not sizes or not keys:
        return None
    ref_n = float(sum(levels.values()))
    p_ref = np.array([levels[k] for k in keys], dtype=np.float64) / ref_n
    out: dict[str, Any] = {"sizes": [], "psi": [], "share": []}
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


NULL_KEY = {"psi": "psi", "wasserstein_norm": "w_norm", "share_shift": "share"}


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
                               "iqr", "scale" (the unit of wasserstein_norm: robust_scale),
                               "quantiles": {"0.01": v, ...}, "sample": [sorted floats]}},
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
        x = as_float_array(df[feat])
        finite, n_null, n_inf = split_finite(x)
        finite = np.sort(finite)
        n = int(finite.size)
        edges = quantile_edges(finite, n_bins)
        counts = bin_counts(finite, edges, assume_sorted=True) if n else np.zeros(edges.size + 1, dtype=np.int64)
        if n:
            q = np.quantile(finite, QUANTILE_LEVELS)
            stats_: dict[str, Any] = {
                "mean": finite_or_none(np.mean(finite)),
                "std": finite_or_none(np.std(finite)),
                "min": finite_or_none(finite[0]),
                "max": finite_or_none(finite[-1]),
                "iqr": finite_or_none(np.quantile(finite, 0.75) - np.quantile(finite, 0.25)),
                "quantiles": {repr(lv): finite_or_none(v) for lv, v in zip(QUANTILE_LEVELS, q, strict=True)},
            }
        else:
            stats_ = {
                "mean": None,
                "std": None,
                "min": None,
                "max": None,
                "iqr": None,
                "quantiles": {repr(lv): None for lv in QUANTILE_LEVELS},
            }
        fine = np.unique(np.concatenate([edges, quantile_edges(finite, FINE_BINS)])) if n else edges
        fine_counts = bin_counts(finite, fine, assume_sorted=True) if n else np.zeros(fine.size + 1, dtype=np.int64)
        null = None
        scale = robust_scale(stats_["std"], stats_["iqr"]) if n else None
        if reference_null and scale is not None:
            null = _null_numeric(x[np.isfinite(x)], finite, edges, counts, scale)
        num_profiles[feat] = {
            "null": null,
            "scale": scale,
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
        levels, n_null = categorical_counts(df[feat])
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
        "importance": normalize_importance([*numeric, *categorical], importance),
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


#: Interquartile range of the standard normal distribution (2 x 0.6745): ``IQR / IQR_PER_SIGMA`` estimates the
#: standard deviation of normal data and, unlike the standard deviation, is not inflated by heavy tails.
IQR_PER_SIGMA: float = 1.3489795003921634


def robust_scale(std: float | None, iqr: float | None) -> float:
    """The unit of ``wasserstein_norm``: the reference's robust sigma ``IQR / 1.349`` (equal to the standard
    deviation for normal data); the standard deviation when the IQR is 0 (over half the values equal), 1.0 (raw
    units) when both are 0 or missing.

    Why not the standard deviation: heavy tails inflate it. A Student-t(3) feature has std = 1.53 robust sigmas,
    a lognormal(0, 1) one 2.0, so a 30% rise in the scale of a fat-tailed return or volatility feature read as
    a small effect in standard deviations (W/std = 0.19 < 0.20) and was missed; in robust sigmas it is 0.29.
    """
    for v in (None if iqr is None else iqr / IQR_PER_SIGMA, std):
        if v is not None and math.isfinite(v) and v > 0:
            return float(v)
    return 1.0


def reference_spread(ref: Mapping[str, Any]) -> float:
    """Normalizer of a numeric feature's Wasserstein distance: the ``scale`` stored in its profile
    (:func:`robust_scale`, also the unit of its reference null). Profiles built before ``scale`` was stored
    measured their null in standard deviations, so they keep that unit: std, else IQR, else 1.0."""
    scale = ref.get("scale")
    if scale is not None and math.isfinite(scale) and scale > 0:
        return float(scale)
    for key in ("std", "iqr"):
        v = ref.get(key)
        if v is not None and math.isfinite(v) and v > 0:
            return float(v)
    return 1.0
