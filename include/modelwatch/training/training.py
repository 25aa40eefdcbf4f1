"""Training, walk-forward evaluation, explanations, serialization and metrics (no Airflow, no DB).

Models are the libraries' native boosters (``lightgbm.Booster`` /
``xgboost.Booster``), softmax multiclass over a class list ``classes`` (keyword of
the functions below; default :data:`~include.modelwatch.vocabulary.CLASSES`,
``SELL=0, HOLD=1, BUY=2``; the volatility-regime model uses
:data:`~include.modelwatch.data.regime.REGIME_CLASSES`), trained with balanced
class weights (``w_c = n / (k * n_c)`` as sample weights, ``k`` classes present).
Two classes are trained as a 2-class softmax too (``num_class=2``), so
probabilities are always ``(n, k)``. A booster knows its number of classes
(:func:`model_num_classes`: LightGBM ``num_model_per_iteration()``, XGBoost's
``learner_model_param.num_class``), so :func:`predict_proba` needs no class list;
the class *names* are the caller's (the registry records them with the version).

Serialization (:func:`serialize_model`): a one-line ASCII header naming the
library and format, then the library's own format -- LightGBM's text model
(``model_to_string``, floats written with full round-trip precision), XGBoost's
UBJSON (``save_raw("ubj")``). No pickle. Deserialized models give
bit-identical predictions (tested).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from include.modelwatch.registry import sha256_bytes  # noqa: F401  (the one hash helper, re-exported)
from include.modelwatch.vocabulary import CLASSES, TRADING_DAYS, label_to_index, prob_columns

Algorithm = Literal["lightgbm", "xgboost"]
Model = Any  # lightgbm.Booster | xgboost.Booster
N_CLASSES = len(CLASSES)
DEFAULT_NUM_BOOST_ROUND = 150
DEFAULT_THREADS = 2

#: LightGBM defaults (overridable through ``params``).
LGB_DEFAULTS: dict[str, Any] = {
    "objective": "multiclass",
    "num_class": N_CLASSES,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": DEFAULT_THREADS,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
#: XGBoost defaults (overridable through ``params``).
XGB_DEFAULTS: dict[str, Any] = {
    "objective": "multi:softprob",
    "num_class": N_CLASSES,
    "eta": 0.05,
    "max_depth": 4,
    "min_child_weight": 5.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "lambda": 1.0,
    "tree_method": "hist",
    "nthread": DEFAULT_THREADS,
    "eval_metric": "mlogloss",
    "verbosity": 0,
}

_HDR_LGB = b"modelwatch-model lightgbm text\n"
_HDR_XGB = b"modelwatch-model xgboost ubj\n"


# --------------------------------------------------------------------------- splits


def purged_walk_forward_splits(
    dates: pd.DatetimeIndex | np.ndarray | Sequence[Any],
    n_splits: int,
    horizon: int,
    embargo: int = 0,
    min_train_size: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window walk-forward splits with purging and embargo.

    Works on the distinct sorted dates (samples sharing a date stay together,
    so a multi-symbol panel is fine); positions, ``horizon`` and ``embargo``
    are counted in distinct dates (= trading days for daily bars). The dates
    are cut into ``n_splits + 1`` contiguous blocks (or a first block of
    ``min_train_size`` dates and ``n_splits`` equal test blocks); fold ``j``
    tests block ``j + 1`` and trains on earlier dates, except

    * **purge**: a sample at date position ``p`` has label window
      ``[p, p + horizon]``; it is dropped from training when that window
      reaches the test block (``p + horizon >= test_start``);
    * **embargo**: the ``embargo`` dates right after each *earlier* test block
      are dropped from training of every later fold.

    Returns ``[(train_idx, test_idx), ...]`` of integer row positions into
    ``dates`` (which need not be sorted). Folds with an empty training set
    raise ``ValueError``.
    """
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if horizon < 0 or embargo < 0:
        raise ValueError(f"horizon and embargo must be >= 0, got {horizon}, {embargo}")
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    if d.hasnans:
        raise ValueError("dates contain NaT")
    uniq = d.unique().sort_values()
    m = len(uniq)
    pos_of_row = uniq.get_indexer(d)
    if m < n_splits + 1:
        raise ValueError(f"{m} distinct dates are too few for {n_splits} splits")
    if min_train_size is None:
        bounds = [int(b[0]) for b in np.array_split(np.arange(m), n_splits + 1)] + [m]
    else:
        if not 0 < min_train_size < m:
            raise ValueError(f"min_train_size must be in (0, {m}), got {min_train_size}")
        rest = np.array_split(np.arange(min_train_size, m), n_splits)
        bounds = [0] + [int(b[0]) for b in rest] + [m]
    if len(set(bounds)) != len(bounds):
        raise ValueError(f"{m} distinct dates are too few for {n_splits} splits")

    embargoed = np.zeros(m, dtype=bool)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for j in range(n_splits):
        a, b = bounds[j + 1], bounds[j + 2]  # test positions [a, b)
        train_pos = np.arange(m) < a - horizon
        train_pos &= ~embargoed
        train_idx = np.flatnonzero(train_pos[pos_of_row])
        test_idx = np.flatnonzero((pos_of_row >= a) & (pos_of_row < b))
        if train_idx.size == 0:
            raise ValueError(f"fold {j}: empty training set (test starts at date position {a}, horizon {horizon})")
        out.append((train_idx, test_idx))
        embargoed[b : min(b + embargo, m)] = True
    return out


# --------------------------------------------------------------------------- training


def _classes(classes: Sequence[str]) -> tuple[str, ...]:
    out = tuple(str(c) for c in classes)
    if len(out) < 2 or len(set(out)) != len(out):
        raise ValueError(f"classes must be at least 2 distinct names, got {list(classes)!r}")
    return out


def _y_codes(y: Any, *, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Class codes (int64) of labels from ``classes`` or of integer codes ``0..len(classes) - 1``."""
    cl = _classes(classes)
    arr = np.asarray(y)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() >= len(cl)):
            raise ValueError(f"integer labels must be in 0..{len(cl) - 1}")
        return arr.astype(np.int64)
    return label_to_index(arr, cl)


def balanced_sample_weights(y_codes: np.ndarray, *, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """``n / (n_classes_present * n_c)`` per sample (sklearn's 'balanced', over the classes present)."""
    k = len(_classes(classes))
    codes = np.asarray(y_codes, dtype=np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= k):
        raise ValueError(f"class codes must be in 0..{k - 1}")
    counts = np.bincount(codes, minlength=k).astype("float64")
    present = counts > 0
    w = np.zeros(k)
    w[present] = codes.size / (present.sum() * counts[present])
    return w[codes]


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X.astype("float64")
    arr = np.asarray(X, dtype="float64")
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])])


def model_algorithm(model: Model) -> Algorithm:
    """``"lightgbm"`` or ``"xgboost"`` for a native booster."""
    mod = type(model).__module__
    if mod.startswith("lightgbm"):
        return "lightgbm"
    if mod.startswith("xgboost"):
        return "xgboost"
    raise TypeError(f"not a LightGBM/XGBoost booster: {type(model).__name__}")


def model_num_classes(model: Model) -> int:
    """Number of classes (probability columns) of a trained booster, read from the model itself:
    LightGBM ``num_model_per_iteration()`` (trees per boosting round = ``num_class`` for multiclass),
    XGBoost ``learner.learner_model_param.num_class`` of ``save_config()`` (0 for a non-multiclass
    objective, counted as 1). Survives :func:`serialize_model` / :func:`deserialize_model`."""
    if model_algorithm(model) == "lightgbm":
        return int(model.num_model_per_iteration())
    import json

    cfg = json.loads(model.save_config())
    return max(int(cfg["learner"]["learner_model_param"]["num_class"]), 1)


def model_feature_names(model: Model) -> list[str]:
    """Feature names the booster was trained with, in input order."""
    if model_algorithm(model) == "lightgbm":
        return list(model.feature_name())
    return list(model.feature_names or [])


def _align(model: Model, X: Any) -> pd.DataFrame:
    df = _as_frame(X)
    names = model_feature_names(model)
    if isinstance(X, pd.DataFrame) and names:
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise ValueError(f"X lacks feature(s) {missing} the model was trained with")
        return df[names]
    if names and df.shape[1] != len(names):
        raise ValueError(f"X has {df.shape[1]} columns, the model expects {len(names)}")
    if names:
        df.columns = names
    return df


def train_model(
    algorithm: Algorithm,
    X: Any,
    y: Any,
    params: Mapping[str, Any] | None = None,
    init_model: Model | None = None,
    seed: int = 0,
    num_boost_round: int | None = None,
    sample_weight: Any | None = None,
    *,
    classes: Sequence[str] = CLASSES,
) -> Model:
    """Train a softmax multiclass booster over ``classes``; with ``init_model``, continue boosting it (warm start).

    ``sample_weight`` (one per row, e.g. a human label's weight) multiplies the balanced class weights.

    ``y``: labels from ``classes`` (default :data:`CLASSES`) or integer codes ``0..len(classes) - 1``;
    ``num_class`` is always ``len(classes)`` (2 classes too: probabilities are ``(n, 2)``), whatever
    ``params`` say. An ``init_model`` must have the same number of classes. ``params`` override
    :data:`LGB_DEFAULTS` / :data:`XGB_DEFAULTS`; a ``num_boost_round`` key in
    ``params`` is honoured (the argument wins), default
    :data:`DEFAULT_NUM_BOOST_ROUND`. Warm start adds ``num_boost_round`` new
    trees on top of ``init_model`` (LightGBM ``init_model=``, XGBoost
    ``xgb_model=``); the training columns must match the init model's.
    Deterministic for a given ``seed`` (fixed seeds, 2 threads, LightGBM
    ``deterministic=True``).
    """
    cl = _classes(classes)
    Xf = _as_frame(X)
    codes = _y_codes(y, classes=cl)
    if codes.size != len(Xf):
        raise ValueError(f"X has {len(Xf)} rows but y has {codes.size}")
    if codes.size == 0:
        raise ValueError("no training rows")
    if init_model is not None:
        if model_algorithm(init_model) != algorithm:
            raise ValueError(f"init_model is {model_algorithm(init_model)}, not {algorithm}")
        if model_num_classes(init_model) != len(cl):
            raise ValueError(f"init_model has {model_num_classes(init_model)} classes, not {len(cl)}")
        Xf = _align(init_model, Xf)
    w = balanced_sample_weights(codes, classes=cl)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype="float64")
        if sw.shape != w.shape or not np.all(np.isfinite(sw) & (sw > 0)):
            raise ValueError(f"sample_weight must be {w.size} finite positive numbers, got shape {sw.shape}")
        w = w * sw
    p = dict(params or {})
    rounds = int(num_boost_round if num_boost_round is not None else p.pop("num_boost_round", DEFAULT_NUM_BOOST_ROUND))
    p.pop("num_boost_round", None)
    if algorithm == "lightgbm":
        import lightgbm as lgb

        full = {**LGB_DEFAULTS, **p, "seed": seed, "num_class": len(cl)}
        ds = lgb.Dataset(Xf, label=codes, weight=w, feature_name=list(Xf.columns), free_raw_data=False)
        return lgb.train(full, ds, num_boost_round=rounds, init_model=init_model, keep_training_booster=False)
    if algorithm == "xgboost":
        import xgboost as xgb

        full = {**XGB_DEFAULTS, **p, "seed": seed, "num_class": len(cl)}
        dm = xgb.DMatrix(Xf, label=codes, weight=w, feature_names=list(Xf.columns), nthread=full["nthread"])
        return xgb.train(full, dm, num_boost_round=rounds, xgb_model=init_model, verbose_eval=False)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected 'lightgbm' or 'xgboost'")


def predict_proba(model: Model, X: Any, *, classes: Sequence[str] | None = None) -> np.ndarray:
    """Class probabilities, shape ``(n, k)`` with ``k`` = :func:`model_num_classes`, columns in the
    order of the class list the model was trained with. ``classes`` (optional) is checked against
    ``k`` (ValueError when the lengths differ); the model alone is enough."""
    k = model_num_classes(model)
    if classes is not None and len(_classes(classes)) != k:
        raise ValueError(f"the model has {k} classes, not {len(classes)} ({list(classes)})")
    Xf = _align(model, X)
    if model_algorithm(model) == "lightgbm":
        proba = np.asarray(model.predict(Xf), dtype="float64")
    else:
        import xgboost as xgb

        proba = np.asarray(model.predict(xgb.DMatrix(Xf, feature_names=list(Xf.columns))), dtype="float64")
    return proba.reshape(len(Xf), k)


def predict_labels(proba: np.ndarray, classes: Sequence[str] = CLASSES) -> np.ndarray:
    """Argmax of a probability matrix ``(n, len(classes))`` as labels from ``classes`` (object array)."""
    cl = _classes(classes)
    pr = np.asarray(proba)
    if pr.ndim != 2 or pr.shape[1] != len(cl):
        raise ValueError(f"proba must have {len(cl)} columns ({list(cl)}), got shape {pr.shape}")
    return np.asarray(cl, dtype=object)[np.argmax(pr, axis=1)]


def feature_importance_gain(model: Model, feature_names: Sequence[str] | None = None) -> dict[str, float]:
    """Total split gain per feature (0.0 for unused features), in ``feature_names`` order."""
    names = list(feature_names) if feature_names is not None else model_feature_names(model)
    if model_algorithm(model) == "lightgbm":
        gains = dict(zip(model.feature_name(), model.feature_importance(importance_type="gain"), strict=True))
    else:
        gains = model.get_score(importance_type="total_gain")
    return {n: float(gains.get(n, 0.0)) for n in names}


def row_contributions(model: Model, X: Any) -> np.ndarray:
    """Native SHAP contributions per row, class and feature, shape ``(n_rows, k, n_features)`` (bias excluded,
    ``k`` = :func:`model_num_classes`), classes in the model's class order, features in the model's order.
    LightGBM ``predict(pred_contrib=True)`` / XGBoost ``predict(pred_contribs=True)``."""
    Xf = _align(model, X)
    nf = Xf.shape[1]
    if model_algorithm(model) == "lightgbm":
        raw = np.asarray(model.predict(Xf, pred_contrib=True), dtype="float64")
    else:
        import xgboost as xgb

        raw = np.asarray(model.predict(xgb.DMatrix(Xf, feature_names=list(Xf.columns)), pred_contribs=True))
    return raw.reshape(len(Xf), model_num_classes(model), nf + 1)[
        :, :, :nf
    ]  # class-major blocks of (features..., bias)


def shap_contributions(model: Model, X: Any) -> np.ndarray:
    """Mean absolute native SHAP contribution per feature, shape ``(n_features,)``: per row, ``|contribution|``
    summed over the model's classes (:func:`row_contributions`), then averaged over rows."""
    return np.abs(row_contributions(model, X)).sum(axis=1).mean(axis=0)


# --------------------------------------------------------------------------- serialization


def serialize_model(model: Model) -> bytes:
    """Header line + native format (LightGBM text / XGBoost UBJSON); see module docstring."""
    if model_algorithm(model) == "lightgbm":
        return _HDR_LGB + model.model_to_string(num_iteration=-1).encode("utf-8")
    return _HDR_XGB + bytes(model.save_raw(raw_format="ubj"))


def deserialize_model(data: bytes) -> Model:
    """Inverse of :func:`serialize_model`."""
    if data.startswith(_HDR_LGB):
        import lightgbm as lgb

        return lgb.Booster(model_str=data[len(_HDR_LGB) :].decode("utf-8"))
    if data.startswith(_HDR_XGB):
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(data[len(_HDR_XGB) :]))
        booster.set_param({"nthread": DEFAULT_THREADS})
        return booster
    raise ValueError(f"not a serialized ModelWatch model (header {data[:40]!r})")


# --------------------------------------------------------------------------- walk-forward


@dataclass
class WalkForwardResult:
    """Out-of-fold predictions of :func:`walk_forward_evaluate`.

    ``oof``: one row per held-out sample (index = the sample's index in ``X``)
    with ``date``, ``fold``, ``y_true``, one ``p_<class>`` column per class of ``classes``
    (:func:`~include.modelwatch.vocabulary.prob_columns`; ``p_SELL/HOLD/BUY`` by default), ``y_pred``.
    ``folds``: per fold train/test sizes, date ranges and training seconds.
    ``classes``: the class list the folds were trained with (:func:`walk_forward_evaluate`'s ``classes``).
    """

    oof: pd.DataFrame
    folds: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    classes: tuple[str, ...] = CLASSES

    @property
    def proba(self) -> np.ndarray:
        """Out-of-fold probabilities ``(n, len(classes))`` in :attr:`classes` order."""
        return self.oof[prob_columns(self.classes)].to_numpy()


def walk_forward_evaluate(
    X: pd.DataFrame,
    y: Any,
    dates: Any,
    algorithm: Algorithm = "lightgbm",
    n_splits: int = 4,
    horizon: int = 5,
    embargo: int = 5,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    num_boost_round: int | None = None,
    min_train_size: int | None = None,
    sample_weight: Any | None = None,
    *,
    classes: Sequence[str] = CLASSES,
) -> WalkForwardResult:
    """Train one model per :func:`purged_walk_forward_splits` fold and predict its test block.

    ``y``: labels from ``classes`` (default :data:`CLASSES`) or their integer codes.

    ``X``, ``y`` and ``dates`` are aligned row-wise (drop rows with unknown
    labels first). Returns out-of-fold probabilities for the held-out periods
    only, ready for :func:`classification_metrics` / :func:`trading_metrics`. ``sample_weight``: per row, as in
    :func:`train_model` (each fold trains with its rows' weights).
    """
    cl = _classes(classes)
    Xf = _as_frame(X)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")
    Xf.index = X.index if isinstance(X, pd.DataFrame) else Xf.index
    yv = np.asarray(cl, dtype=object)[_y_codes(y, classes=cl)]  # labels or codes -> labels
    dv = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    if not (len(Xf) == len(yv) == len(dv)):
        raise ValueError(f"X, y, dates lengths differ: {len(Xf)}, {len(yv)}, {len(dv)}")
    splits = purged_walk_forward_splits(dv, n_splits, horizon, embargo, min_train_size=min_train_size)
    parts: list[pd.DataFrame] = []
    folds: list[dict[str, Any]] = []
    total = 0.0
    for j, (tr, te) in enumerate(splits):
        t0 = time.perf_counter()
        model = train_model(
            algorithm,
            Xf.iloc[tr],
            yv[tr],
            params=params,
            seed=seed,
            num_boost_round=num_boost_round,
            sample_weight=None if sw is None else sw[tr],
            classes=cl,
        )
        secs = time.perf_counter() - t0
        total += secs
        proba = predict_proba(model, Xf.iloc[te])
        part = pd.DataFrame(
            {"date": dv[te], "fold": j, "y_true": yv[te]},
            index=Xf.index[te],
        )
        for i, col in enumerate(prob_columns(cl)):
            part[col] = proba[:, i]
        part["y_pred"] = predict_labels(proba, cl)
        parts.append(part)
        folds.append(
            {
                "fold": j,
                "n_train": int(tr.size),
                "n_test": int(te.size),
                "train_start": dv[tr].min(),
                "train_end": dv[tr].max(),
                "test_start": dv[te].min(),
                "test_end": dv[te].max(),
                "train_seconds": secs,
            }
        )
    return WalkForwardResult(oof=pd.concat(parts), folds=folds, train_seconds=total, classes=cl)


# --------------------------------------------------------------------------- metrics


def trading_metrics(
    predicted_labels: Any,
    realized_returns: Any,
    risk_units: Any | None = None,
    entry_dates: Any | None = None,
    cost: float = 0.0,
) -> dict[str, float]:
    """Backtest metrics of following the signals (BUY = long, SELL = short, HOLD = flat).

    Per signal ``pnl = direction * realized_return - cost`` (log-return units;
    ``cost`` is a round-trip cost per trade, default 0).

    * ``hit_rate``: share of BUY/SELL signals whose realized return has the sign of the direction;
    * ``win_rate``: share of trades with ``pnl > 0`` (equals hit_rate when ``cost == 0``);
    * ``profit_factor``: sum of positive pnl / |sum of negative pnl| (inf with no loss, NaN with no trade);
    * ``avg_rr``: mean winning pnl / |mean losing pnl| (NaN if no win or no loss);
    * ``avg_r_multiple``: mean ``pnl / risk_unit`` over trades (NaN without ``risk_units``);
    * ``sharpe``: each trade's pnl is booked on its entry date (HOLD days book 0;
      same-day trades are summed); mean / std(ddof=1) of that daily series
      * sqrt(252). Without ``entry_dates`` every prediction is its own day.
      Overlapping multi-day holdings are not spread over their days, so this
      is a per-signal Sharpe, not a portfolio Sharpe;
    * ``max_drawdown``: largest peak-to-trough fall of ``exp(cumsum(daily pnl))``,
      as a positive fraction of the peak (starting equity 1 counts as a peak);
    * ``total_return``: ``exp(sum pnl) - 1``; ``n_signals``, ``n_trades``, ``n_predictions``.
    """
    lab = np.asarray(predicted_labels, dtype=object)
    ret = np.asarray(realized_returns, dtype="float64")
    if lab.shape != ret.shape or lab.ndim != 1:
        raise ValueError(
            f"predicted_labels and realized_returns must be 1-D of equal length; got {lab.shape}, {ret.shape}"
        )
    direction = label_to_index(lab).astype("float64") - 1.0  # SELL -1, HOLD 0, BUY +1
    if np.isnan(ret).any():
        raise ValueError("realized_returns contain NaN (pass matured outcomes only)")
    trade = direction != 0
    n_tr = int(trade.sum())
    pnl_all = np.where(trade, direction * ret - cost, 0.0)
    pnl = pnl_all[trade]
    nan = float("nan")
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_p, gross_l = float(wins.sum()), float(-losses.sum())
    if n_tr == 0:
        pf = nan
    elif gross_l == 0:
        pf = float("inf") if gross_p > 0 else nan
    else:
        pf = gross_p / gross_l
    avg_rr = float(wins.mean() / -losses.mean()) if wins.size and losses.size else nan
    if risk_units is not None:
        ru = np.asarray(risk_units, dtype="float64")
        if ru.shape != ret.shape:
            raise ValueError("risk_units must align with realized_returns")
        avg_r = float(np.mean(pnl / ru[trade])) if n_tr else nan
    else:
        avg_r = nan
    if entry_dates is not None:
        d = pd.DatetimeIndex(pd.to_datetime(np.asarray(entry_dates)))
        if len(d) != lab.size:
            raise ValueError("entry_dates must align with predicted_labels")
        daily = pd.Series(pnl_all, index=d).groupby(level=0).sum().sort_index().to_numpy()
    else:
        daily = pnl_all
    sd = float(np.std(daily, ddof=1)) if daily.size > 1 else nan
    sharpe = float(np.mean(daily) / sd * np.sqrt(TRADING_DAYS)) if sd and not np.isnan(sd) else nan
    equity = np.exp(np.concatenate([[0.0], np.cumsum(daily)]))
    peak = np.maximum.accumulate(equity)
    mdd = float(np.max(1.0 - equity / peak)) if equity.size else 0.0
    return {
        "n_predictions": int(lab.size),
        "n_signals": n_tr,
        "n_trades": n_tr,
        "hit_rate": float(np.mean(np.sign(ret[trade]) == direction[trade])) if n_tr else nan,
        "win_rate": float(np.mean(pnl > 0)) if n_tr else nan,
        "profit_factor": pf,
        "avg_rr": avg_rr,
        "avg_r_multiple": avg_r,
        "sharpe": sharpe,
        "max_drawdown": mdd,
        "total_return": float(np.expm1(pnl.sum())) if n_tr else 0.0,
    }


def macro_auc_ovr(y_true: Any, proba: Any, *, classes: Sequence[str] = CLASSES) -> float:
    """Macro one-vs-rest ROC AUC over the classes of ``classes`` present in ``y_true`` (equal
    to ``sklearn.metrics.roc_auc_score(..., multi_class='ovr', average='macro')``
    when all classes are present). Each class's AUC is the Mann-Whitney
    statistic of its probability column (ties count 1/2). NaN when fewer than
    two classes are present. With two classes whose probabilities sum to 1 both
    one-vs-rest AUCs equal the binary AUC of the second class's probability, so
    this is the binary ROC AUC."""
    from scipy.stats import rankdata

    cl = _classes(classes)
    t = label_to_index(np.asarray(y_true, dtype=object), cl)
    pr = np.asarray(proba, dtype="float64")
    if pr.ndim != 2 or pr.shape != (t.size, len(cl)):
        raise ValueError(f"proba must have shape ({t.size}, {len(cl)}), got {pr.shape}")
    aucs = []
    for k in range(len(cl)):
        pos = t == k
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(pr[:, k])
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return float(np.mean(aucs)) if len(aucs) >= 2 else float("nan")


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any | None = None, *, classes: Sequence[str] = CLASSES
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 (``macro_precision``, ``macro_recall``, ``macro_f1``:
    :data:`~include.modelwatch.vocabulary.MACRO_METRICS`), per-class F1 (``f1_<class>``), log loss,
    multiclass Brier and macro one-vs-rest ROC AUC (``roc_auc_ovr``), over ``classes`` (default
    :data:`CLASSES`; ``proba`` columns in that order; confusion matrix rows = true, columns = predicted).

    Macro averages are over all ``classes`` (a class with no predictions
    has precision 0; a class absent from ``y_true`` has recall 0, as sklearn's
    ``zero_division=0``). ``log_loss``: mean ``-ln p(true class)`` with ``p``
    clipped to ``[1e-15, 1]``; ``brier``: mean over rows of
    ``sum_c (p_c - 1[y = c])^2`` (range 0..2). Both NaN without ``proba``.
    """
    cl = _classes(classes)
    k = len(cl)
    t = label_to_index(np.asarray(y_true, dtype=object), cl)
    p = label_to_index(np.asarray(y_pred, dtype=object), cl)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred lengths differ")
    if t.size == 0:
        raise ValueError("no rows")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    tp = np.diag(cm).astype("float64")
    pred_n, true_n = cm.sum(axis=0), cm.sum(axis=1)
    prec = np.divide(tp, pred_n, out=np.zeros(k), where=pred_n > 0)
    rec = np.divide(tp, true_n, out=np.zeros(k), where=true_n > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(k), where=(prec + rec) > 0)
    out: dict[str, Any] = {
        "n": int(t.size),
        "accuracy": float(tp.sum() / t.size),
        "macro_precision": float(prec.mean()),
        "macro_recall": float(rec.mean()),
        "macro_f1": float(f1.mean()),
        **{f"f1_{c}": float(f1[i]) for i, c in enumerate(cl)},
        "confusion_matrix": cm.tolist(),
    }
    if proba is not None:
        pr = np.asarray(proba, dtype="float64")
        if pr.shape != (t.size, k):
            raise ValueError(f"proba must have shape ({t.size}, {k}), got {pr.shape}")
        onehot = np.eye(k)[t]
        out["log_loss"] = float(-np.mean(np.log(np.clip(pr[np.arange(t.size), t], 1e-15, 1.0))))
        out["brier"] = float(np.mean(np.sum((pr - onehot) ** 2, axis=1)))
        out["roc_auc_ovr"] = macro_auc_ovr(y_true, pr, classes=cl)
    else:
        out["log_loss"] = out["brier"] = out["roc_auc_ovr"] = float("nan")
    return out
