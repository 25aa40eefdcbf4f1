"""Evaluation of a window against a reference profile: row mode, binned mode, the decision."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.monitoring.drift.config import KS_MAX_EXACT_N, PARALLEL_MIN_ROWS, PSI_EPSILON, DriftConfig
from include.modelwatch.monitoring.drift.profile import (
    NULL_KEY,
    null_pvalue,
    null_threshold,
    profile_array,
    reference_spread,
)
from include.modelwatch.monitoring.drift.results import FeatureResult, WindowResult
from include.modelwatch.monitoring.drift.stats import (
    as_float_array,
    benjamini_hochberg,
    bin_counts,
    categorical_counts,
    chi_square,
    js_from_proportions,
    kl_from_proportions,
    ks_and_wasserstein,
    ks_pvalue,
    psi_from_proportions,
    sorted_finite,
)


def _eval_numeric(
    name: str,
    ref: Mapping[str, Any],
    col: pd.Series | None,
    weight: float,
    max_exact_n: int = KS_MAX_EXACT_N,
) -> dict[str, Any]:
    """One numeric feature in row mode: the window is sorted once (its finite
    values are a slice of the sorted copy), binned on the reference edges by
    binary search, and merged with the profile's pre-sorted reference sample
    for KS and Wasserstein (:func:`ks_and_wasserstein`)."""
    base: dict[str, Any] = {"feature": name, "kind": "numeric", "test": "ks", "importance": weight}
    if col is None:
        return {**base, "status": "no_data", "note": "column missing"}
    cur, n_null, n_inf = sorted_finite(as_float_array(col))
    base.update(n_null=n_null, n_nonfinite=n_inf, n_current=int(cur.size))
    if cur.size == 0:
        return {**base, "status": "no_data", "note": "no finite values"}
    sample = profile_array(ref.get("sample"))
    if sample.size == 0 or not ref.get("n"):
        return {**base, "status": "no_reference", "note": "no finite reference values"}
    edges = profile_array(ref["edges"])
    ref_counts = profile_array(ref["counts"])
    p_ref = ref_counts / ref_counts.sum()
    cur_counts = bin_counts(cur, edges, assume_sorted=True)
    p_cur = cur_counts / cur.size
    d, p, w = ks_and_wasserstein(sample, cur, max_exact_n)
    return {
        **base,
        "status": "ok",
        "window_bins": tuple(int(c) for c in cur_counts),
        "statistic": d,
        "p_value": p,
        "ks": d,
        "ks_pvalue": p,
        "psi": psi_from_proportions(p_ref, p_cur, PSI_EPSILON),
        "kl": kl_from_proportions(p_ref, p_cur, PSI_EPSILON),
        "js": js_from_proportions(p_ref, p_cur),
        "wasserstein": w,
        "wasserstein_norm": w / reference_spread(ref),
    }


def _eval_categorical(name: str, ref: Mapping[str, Any], col: pd.Series | None, weight: float) -> dict[str, Any]:
    base: dict[str, Any] = {"feature": name, "kind": "categorical", "test": "chi2", "importance": weight}
    if col is None:
        return {**base, "status": "no_data", "note": "column missing"}
    cur_levels, n_null = categorical_counts(col)
    return _eval_categorical_counts(name, ref, cur_levels, n_null, weight)


def _eval_categorical_counts(
    name: str, ref: Mapping[str, Any], cur_levels: Mapping[str, int], n_null: int, weight: float
) -> dict[str, Any]:
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
        **base,
        "status": "ok",
        "window_bins": tuple(int(k) for k in c),
        "statistic": stat,
        "p_value": p,
        "chi2": stat,
        "chi2_pvalue": p,
        "chi2_dof": dof,
        "psi": psi_from_proportions(r, p_cur, PSI_EPSILON),
        "kl": kl_from_proportions(r, p_cur, PSI_EPSILON),
        "js": js_from_proportions(r, p_cur),
        "share_shift": float(np.abs(p_cur - r).max()),
        "unseen_levels": unseen,
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
        return _eval_numeric(
            name,
            ref,
            current[name] if name in cols else None,
            float(importance.get(name, 0.0)),
            config.ks_exact_max_n,
        )

    items = list(profile.get("numeric", {}).items())
    threads = min(config.threads, os.cpu_count() or 1, len(items))
    if threads > 1 and len(current) >= PARALLEL_MIN_ROWS:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drift") as pool:
            raw: list[dict[str, Any]] = list(pool.map(numeric, items))
    else:
        raw = [numeric(item) for item in items]
    for name, ref in profile.get("categorical", {}).items():
        raw.append(
            _eval_categorical(name, ref, current[name] if name in cols else None, float(importance.get(name, 0.0)))
        )
    return _decide(profile, raw, int(len(current)), config)


def _eval_numeric_binned(
    name: str, ref: Mapping[str, Any], counts: Sequence[int] | None, n_null: int, weight: float
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "feature": name,
        "kind": "numeric",
        "test": "ks",
        "importance": weight,
        "note": "binned in PostgreSQL",
    }
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
    coarse = np.bincount(to_coarse, weights=cur, minlength=edges.size + 1)
    p_cur = coarse / n
    f_ref = np.cumsum(ref_fine)[:-1] / ref_fine.sum()
    f_cur = np.cumsum(cur)[:-1] / n
    gap = np.abs(f_cur - f_ref)
    d = float(gap.max()) if gap.size else 0.0
    _, p = ks_pvalue(d, n, int(ref["n"]))
    w = float(np.sum(gap[:-1] * np.diff(fine))) if fine.size > 1 else 0.0
    return {
        **base,
        "status": "ok",
        "window_bins": tuple(int(round(c)) for c in coarse),
        "statistic": d,
        "p_value": p,
        "ks": d,
        "ks_pvalue": p,
        "psi": psi_from_proportions(p_ref, p_cur, PSI_EPSILON),
        "kl": kl_from_proportions(p_ref, p_cur, PSI_EPSILON),
        "js": js_from_proportions(p_ref, p_cur),
        "wasserstein": w,
        "wasserstein_norm": w / reference_spread(ref),
    }


def evaluate_binned(
    profile: dict,
    numeric_counts: Mapping[str, Mapping[str, Any]],
    categorical_counts: Mapping[str, Mapping[str, Any]],
    n_rows: int,
    config: DriftConfig,
) -> WindowResult:
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
        raw.append(
            _eval_numeric_binned(
                name,
                ref,
                None if c is None else c["counts"],
                int((c or {}).get("n_null", 0)),
                float(importance.get(name, 0.0)),
            )
        )
    for name, ref in profile.get("categorical", {}).items():
        c = categorical_counts.get(name)
        if c is None:
            raw.append(
                {
                    "feature": name,
                    "kind": "categorical",
                    "test": "chi2",
                    "status": "no_data",
                    "note": "column missing",
                    "importance": float(importance.get(name, 0.0)),
                }
            )
            continue
        raw.append(
            _eval_categorical_counts(
                name,
                ref,
                {str(k): int(v) for k, v in c["levels"].items() if int(v) > 0},
                int(c.get("n_null", 0)),
                float(importance.get(name, 0.0)),
            )
        )
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
        [r["p_value"] if r["p_null"] is None else max(r["p_value"], r["p_null"]) for r in ok], config.fdr_q
    )
    for r, adj, rej in zip(ok, adjusted, rejected, strict=True):
        null, n_ref = refs[r["feature"]].get("null"), refs[r["feature"]].get("n")
        n = r["n_current"]
        # (statistic, warning, critical) with the reference null folded into the thresholds
        checks = [("psi", r["psi"], config.psi_warning, config.psi_critical)]
        if r["kind"] == "numeric":
            checks.append(
                ("wasserstein_norm", r.get("wasserstein_norm"), config.wasserstein_warning, config.wasserstein_critical)
            )
        else:
            checks.append(("share_shift", r.get("share_shift"), config.share_warning, config.share_critical))
        thresholds: dict[str, float] = {}
        warn = crit = False
        effect = 0.0
        for key, value, w0, c0 in checks:
            q99 = null_threshold(null, NULL_KEY[key], n, n_ref)
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
    return WindowResult(
        features=results, n_rows=n_rows, drift_score=score, level=level, drifted=level != "none", config=config
    )


# --------------------------------------------------------------------------- #
