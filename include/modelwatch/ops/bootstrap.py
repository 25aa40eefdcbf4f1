"""Bootstrap: the initial LightGBM champion of each native model and its backtest baseline.

A native model (``defaults.NATIVE_MODELS``, the variable ``modelwatch_native_models``) is a target and a list
of symbols. Its champion is trained on real daily bars of its symbols from the market source (default the
``arch`` package's S&P 500 and NASDAQ Composite) before ``train_end`` (default 2007-01-01):

1. bars are cleaned (:mod:`market`) and UPSERTed into ``market_bars``;
2. features and the target's labels per symbol (volatility-scaled BUY/SELL/HOLD for ``direction``, the next
   week's volatility regime LOW/HIGH for ``vol_regime``), pooled;
3. purged walk-forward validation with an embargo gives out-of-fold
   predictions; their classification and trading metrics become the
   version's ``backtest_baseline`` (the held-out period);
4. the final model is fit on all labelled rows, registered with its feature
   importance and drift reference profile, and made ``champion``.

Idempotent: when the model already has a champion nothing is trained.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from include.modelwatch import defaults, registry
from include.modelwatch.data import signals
from include.modelwatch.data.storage import transaction
from include.modelwatch.training import targets, training
from include.modelwatch.training.candidate import (  # noqa: F401  (re-exported: the bootstrap's public names)
    NOT_DRIFT_MONITORED,
    prediction_frame,
    reference_profile,
    walk_forward_baseline,
)
from include.modelwatch.training.dataset import (  # noqa: F401  (re-exported: the bootstrap's public names)
    HORIZON,
    VOL_WINDOW,
    K,
    feature_panel,
    fingerprint,
    load_clean_bars,
)

MODEL_NAME = defaults.MODEL_NAME
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BootstrapResult:
    model: registry.ModelVersion
    baseline: dict[str, float | None]
    trained: bool


def bootstrap_champion(
    conn,
    *,
    artifact_dir: str,
    model_name: str = MODEL_NAME,
    target: str | None = None,
    symbols: tuple[str, ...] | list[str] | None = None,
    source: Any = None,
    train_end: date = date(2007, 1, 1),
    run_id: str = "bootstrap",
    log: Callable[[str], object] = log.info,
) -> BootstrapResult:
    """Train and register ``model_name``'s first champion unless it has one. ``target`` and ``symbols`` default
    to the model's entry in :data:`defaults.NATIVE_MODELS`; ``source`` to the ``arch`` demo data."""
    existing = registry.resolve_alias(conn, model_name, registry.CHAMPION)
    if existing is not None:
        mv = registry.get_version(conn, model_name, existing)
        log(f"{mv.label} is already champion; nothing to bootstrap")
        return BootstrapResult(mv, {}, trained=False)
    conf = defaults.NATIVE_MODELS.get(model_name, {})
    tgt = targets.target_named(target or conf.get("target") or targets.DIRECTION, model_name)
    symbols = list(symbols or conf.get("symbols") or [])
    if not symbols:
        raise ValueError(f"{model_name}: no symbols to train on (set them in modelwatch_native_models)")

    bars = load_clean_bars(symbols, source)
    end = pd.Timestamp(train_end)
    with transaction(conn) as cur:
        n_bars = signals.upsert_bars(cur, bars[bars["date"] < end], source=getattr(source, "name", "arch"))
    log(f"{model_name}: loaded {n_bars} bars of {', '.join(symbols)} before {train_end} into market_bars")

    panel = feature_panel(bars[bars["date"] < end], end, tgt)
    panel = panel[panel["label"].notna()].reset_index(drop=True)
    cols = list(tgt.feature_columns)
    X = panel[cols]
    y = panel["label"].astype(str).to_numpy()
    wf = training.walk_forward_evaluate(
        X, y, panel["date"], algorithm="lightgbm", n_splits=4, horizon=HORIZON, embargo=HORIZON, classes=tgt.classes
    )
    oof = wf.oof
    held = panel.loc[oof.index]
    baseline = walk_forward_baseline(wf, panel, tgt)
    majority = float(pd.Series(oof["y_true"]).value_counts(normalize=True).max())
    baseline["majority_class_share"] = majority
    skill = (
        f"hit rate {_num(baseline.get('hit_rate')):.4f}, profit factor {_num(baseline.get('profit_factor')):.3f}, "
        f"Sharpe {_num(baseline.get('sharpe')):.3f}"
        if tgt.trading
        else f"AUC {_num(baseline.get('roc_auc_ovr')):.4f}"
    )
    log(
        f"{model_name} ({tgt.name}, classes {list(tgt.classes)}): purged walk-forward ({len(wf.folds)} folds, "
        f"embargo {HORIZON}d): held-out {len(oof)} rows "
        f"{held['date'].min():%Y-%m-%d}..{held['date'].max():%Y-%m-%d}: "
        f"accuracy {_num(baseline.get('accuracy')):.4f} (majority {majority:.4f}), "
        f"macro F1 {_num(baseline.get('macro_f1')):.4f}, {skill}"
    )

    model = training.train_model("lightgbm", X, y, seed=0, classes=tgt.classes)
    importance = training.feature_importance_gain(model, cols)
    proba_train = training.predict_proba(model, X)
    profile = reference_profile(X, proba_train, importance, prediction_proba=wf.proba, classes=tgt.classes)
    changed_at = datetime.combine(train_end, datetime.min.time(), tzinfo=UTC)
    mv = registry.register_version(
        conn,
        model_name=model_name,
        algorithm="lightgbm",
        artifact=training.serialize_model(model),
        artifact_dir=artifact_dir,
        features=cols,
        classes=list(tgt.classes),
        params={
            "target": tgt.name,
            "horizon": HORIZON,
            "k": K,
            "vol_window": VOL_WINDOW,
            "symbols": list(symbols),
            "num_boost_round": training.DEFAULT_NUM_BOOST_ROUND,
        },
        horizon_days=HORIZON,
        train_start=panel["date"].min().date(),
        train_end=panel["date"].max().date(),
        dataset_fingerprint=fingerprint(panel),
        metrics={"walk_forward": baseline, "folds": len(wf.folds), "train_rows": len(panel)},
        feature_importance=importance,
        reference_profile=profile,
        run_id=run_id,
        status=registry.ACTIVE,
    )
    with transaction(conn) as cur:
        registry.write_baseline(cur, mv, baseline, held["date"].min().date(), held["date"].max().date(), len(oof))
        registry.set_alias(
            conn,
            model_name,
            registry.CHAMPION,
            mv.version,
            reason="bootstrap: initial champion",
            changed_at=changed_at,
            run_id=run_id,
            cur=cur,
        )
    log(f"registered {mv.label} (sha256 {(mv.artifact_sha256 or '')[:12]}...) as champion (status active)")
    return BootstrapResult(registry.get_version(conn, model_name, mv.version), baseline, trained=True)


def bootstrap_all(
    conn,
    *,
    artifact_dir: str,
    models: dict[str, dict[str, Any]] | None = None,
    source: Any = None,
    log: Callable[[str], object] = log.info,
) -> list[BootstrapResult]:
    """:func:`bootstrap_champion` for every native model (default :data:`defaults.NATIVE_MODELS`), by name."""
    models = defaults.NATIVE_MODELS if models is None else models
    return [
        bootstrap_champion(
            conn,
            artifact_dir=artifact_dir,
            model_name=name,
            target=conf.get("target"),
            symbols=conf.get("symbols"),
            source=source,
            log=log,
        )
        for name, conf in sorted(models.items())
    ]


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)
