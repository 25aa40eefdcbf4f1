"""Bootstrap: the initial LightGBM champion and its backtest baseline.

Trains on real daily bars (the ``arch`` package's S&P 500 and NASDAQ
Composite) before ``train_end`` (default 2007-01-01):

1. bars are cleaned (:mod:`market`) and UPSERTed into ``market_bars``;
2. features and volatility-scaled BUY/SELL/HOLD labels per symbol, pooled;
3. purged walk-forward validation with an embargo gives out-of-fold
   predictions; their classification and trading metrics become the
   version's ``backtest_baseline`` (the held-out period);
4. the final model is fit on all labelled rows, registered with its feature
   importance and drift reference profile, and made ``champion``.

Idempotent: when the model already has a champion nothing is trained.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.monitoring import drift
from include.modelwatch.data import features, market, signals
from include.modelwatch import registry
from include.modelwatch.training import training
from include.modelwatch.data.storage import transaction

MODEL_NAME = "spx_signal"
SYMBOLS = ("SPX", "IXIC")
HORIZON, K, VOL_WINDOW = 5, 0.5, 21
PROBA_COLUMNS = [f"p_{c}" for c in features.CLASSES]
# Calendar features are fixed by the window itself (a one-month window has one
# `month`), so comparing their distribution with the reference says nothing.
NOT_DRIFT_MONITORED = ("day_of_week", "month")


@dataclass(frozen=True)
class BootstrapResult:
    model: registry.ModelVersion
    baseline: dict[str, float]
    trained: bool


def load_clean_bars(symbols: tuple[str, ...] | list[str]) -> pd.DataFrame:
    frames = [market.load_arch_bars(s) for s in symbols]
    cleaned, _ = market.clean_bars(pd.concat(frames, ignore_index=True))
    return cleaned


def feature_panel(bars: pd.DataFrame, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Features + labels for every symbol, one row per (symbol, date) with complete features."""
    parts = []
    for sym, g in bars.groupby("symbol", sort=True):
        g = g.sort_values("date").reset_index(drop=True)
        f = features.compute_features(g)
        lab = features.make_labels(g, horizon=HORIZON, k=K, vol_window=VOL_WINDOW)
        f = f.join(lab[["label", "r_fwd", "threshold"]])
        f["symbol"] = sym
        f.index.name = "date"
        parts.append(f.reset_index())
    panel = pd.concat(parts, ignore_index=True)
    panel = panel.dropna(subset=list(features.FEATURE_COLUMNS))
    if end is not None:
        panel = panel[panel["date"] < end]
    return panel.sort_values(["date", "symbol"]).reset_index(drop=True)


def prediction_frame(proba: np.ndarray) -> pd.DataFrame:
    """Probability columns, confidence and predicted label: the prediction side of drift."""
    out = pd.DataFrame(proba, columns=PROBA_COLUMNS)
    out["confidence"] = proba.max(axis=1)
    out["predicted_label"] = np.asarray(features.CLASSES, dtype=object)[proba.argmax(axis=1)]
    return out


def reference_profile(X: pd.DataFrame, proba: np.ndarray, importance: dict[str, float],
                      prediction_proba: np.ndarray | None = None) -> dict[str, Any]:
    """Drift reference of a model version, rows in time order.

    Features come from the training rows ``X``. The prediction side (class
    probabilities, confidence, predicted label) comes from
    ``prediction_proba`` when given: out-of-sample (walk-forward) predictions,
    which is what live predictions look like; a model's predictions on its own
    training rows are sharper and would make every live window look like
    prediction drift. Without it, ``proba`` (predictions on ``X``) is used.
    """
    monitored = [c for c in X.columns if c not in NOT_DRIFT_MONITORED]
    imp = {c: float(importance.get(c, 0.0)) for c in monitored}
    total = sum(imp.values()) or 1.0
    # prediction columns get a fixed share so the model score also reflects output drift
    weights = {c: 0.8 * v / total for c, v in imp.items()}
    for c in PROBA_COLUMNS + ["confidence", "predicted_label"]:
        weights[c] = 0.2 / 5
    feat = drift.build_reference_profile(X[monitored].reset_index(drop=True), numeric=monitored, categorical=[],
                                         importance=None)
    pred = drift.build_reference_profile(prediction_frame(proba if prediction_proba is None else prediction_proba),
                                         numeric=PROBA_COLUMNS + ["confidence"], categorical=["predicted_label"],
                                         importance=None)
    profile = {**feat, "numeric": {**feat["numeric"], **pred["numeric"]}, "categorical": pred["categorical"],
               "prediction_rows": pred["n_rows"]}
    profile["importance"] = drift._normalize_importance([*profile["numeric"], *profile["categorical"]], weights)
    return profile


def _finite(d: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k, v in d.items():
        if isinstance(v, (int, float, np.floating, np.integer)):
            f = float(v)
            out[k] = f if math.isfinite(f) else None
    return out


def fingerprint(panel: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(panel[["symbol", "date", *features.FEATURE_COLUMNS, "label"]], index=False).values.tobytes())
    return h.hexdigest()


def bootstrap_champion(
    conn,
    *,
    artifact_dir: str,
    model_name: str = MODEL_NAME,
    symbols: tuple[str, ...] | list[str] = SYMBOLS,
    train_end: date = date(2007, 1, 1),
    run_id: str = "bootstrap",
    log=print,
) -> BootstrapResult:
    existing = registry.resolve_alias(conn, model_name, registry.CHAMPION)
    if existing is not None:
        mv = registry.get_version(conn, model_name, existing)
        log(f"{mv.label} is already champion; nothing to bootstrap")
        return BootstrapResult(mv, {}, trained=False)

    bars = load_clean_bars(symbols)
    end = pd.Timestamp(train_end)
    with transaction(conn) as cur:
        n_bars = signals.upsert_bars(cur, bars[bars["date"] < end])
    log(f"loaded {n_bars} bars of {', '.join(symbols)} before {train_end} into market_bars")

    panel = feature_panel(bars[bars["date"] < end], end)
    panel = panel[panel["label"].notna()].reset_index(drop=True)
    X = panel[list(features.FEATURE_COLUMNS)]
    y = panel["label"].astype(str).to_numpy()
    wf = training.walk_forward_evaluate(X, y, panel["date"], algorithm="lightgbm", n_splits=4, horizon=HORIZON, embargo=HORIZON)
    oof = wf.oof
    held = panel.loc[oof.index]
    cls = training.classification_metrics(oof["y_true"].to_numpy(), oof["y_pred"].to_numpy(), wf.proba)
    trade = training.trading_metrics(oof["y_pred"].to_numpy(), held["r_fwd"].to_numpy(), held["threshold"].to_numpy(), held["date"].to_numpy())
    baseline = {**_finite(cls), **_finite(trade)}
    majority = float(pd.Series(oof["y_true"]).value_counts(normalize=True).max())
    baseline["majority_class_share"] = majority
    log(
        f"purged walk-forward ({len(wf.folds)} folds, embargo {HORIZON}d): held-out {len(oof)} rows "
        f"{held['date'].min():%Y-%m-%d}..{held['date'].max():%Y-%m-%d}: accuracy {baseline.get('accuracy', float('nan')):.4f} "
        f"(majority {majority:.4f}), macro F1 {baseline.get('f1_macro', float('nan')):.4f}, hit rate {baseline.get('hit_rate', float('nan')):.4f}, "
        f"profit factor {baseline.get('profit_factor') or float('nan'):.3f}, Sharpe {baseline.get('sharpe') or float('nan'):.3f}"
    )

    model = training.train_model("lightgbm", X, y, seed=0)
    importance = training.feature_importance_gain(model, list(features.FEATURE_COLUMNS))
    proba_train = training.predict_proba(model, X)
    profile = reference_profile(X, proba_train, importance, prediction_proba=wf.proba)
    changed_at = datetime.combine(train_end, datetime.min.time(), tzinfo=timezone.utc)
    mv = registry.register_version(
        conn,
        model_name=model_name,
        algorithm="lightgbm",
        artifact=training.serialize_model(model),
        artifact_dir=artifact_dir,
        features=list(features.FEATURE_COLUMNS),
        classes=list(features.CLASSES),
        params={"horizon": HORIZON, "k": K, "vol_window": VOL_WINDOW, "symbols": list(symbols), "num_boost_round": training.DEFAULT_NUM_BOOST_ROUND},
        horizon_days=HORIZON,
        train_start=panel["date"].min().date(),
        train_end=panel["date"].max().date(),
        dataset_fingerprint=fingerprint(panel),
        metrics={"walk_forward": baseline, "folds": len(wf.folds), "train_rows": len(panel)},
        feature_importance=importance,
        reference_profile=profile,
        run_id=run_id,
    )
    with transaction(conn) as cur:
        write_baseline(cur, mv, baseline, held["date"].min().date(), held["date"].max().date(), len(oof))
        registry.set_alias(conn, model_name, registry.CHAMPION, mv.version, reason="bootstrap: initial champion",
                           changed_at=changed_at, run_id=run_id, cur=cur)
    log(f"registered {mv.label} (sha256 {mv.artifact_sha256[:12]}...) as champion")
    return BootstrapResult(registry.get_version(conn, model_name, mv.version), baseline, trained=True)


def write_baseline(cur, mv: registry.ModelVersion, baseline: dict[str, float | None], start: date, end: date, n: int) -> None:
    cur.execute("DELETE FROM backtest_baseline WHERE model_name = %s AND model_version = %s", (mv.model_name, mv.version))
    for metric, value in sorted(baseline.items()):
        cur.execute(
            "INSERT INTO backtest_baseline (model_name, model_version, metric, value, period_start, period_end, n_predictions, details) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (mv.model_name, mv.version, metric, value, start, end, n, json.dumps({"source": "purged walk-forward out-of-fold"})),
        )
