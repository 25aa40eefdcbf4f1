"""What a native model predicts: its *target*. One object per kind of label, so training, scoring, outcomes and
gates never branch on a model's name.

* ``direction`` (``spx_signal``): BUY / HOLD / SELL, the 5-session forward log return against half a trailing
  volatility unit (:func:`include.modelwatch.data.features.make_labels`). Its predictions are trades, so trading
  metrics (hit rate, profit factor, Sharpe, R multiples) and the business gate apply.
* ``vol_regime`` (``spx_vol_regime``): LOW / HIGH, the next 5 sessions' realized volatility against its trailing
  one-year median (:mod:`include.modelwatch.data.regime`). Not a trade: those metrics and the business gate do not
  apply; accuracy, macro F1, AUC, calibration and stability do.

A model's target is recorded in its versions' ``params["target"]`` (absent: ``direction``, every version made
before targets existed); its classes in ``model_versions.classes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.vocabulary import CLASSES

DIRECTION, VOL_REGIME = "direction", "vol_regime"


@dataclass(frozen=True)
class Target:
    name: str
    classes: tuple[str, ...]
    horizon: int
    #: predictions are trades (BUY/SELL): trading metrics and the business gate apply
    trading: bool
    #: calendar days of bars before the oldest pending prediction its outcome needs
    outcome_history_days: int
    #: the features its models are trained on (``features.compute_features`` columns)
    feature_columns: tuple[str, ...] = ()

    def labels(self, bars: pd.DataFrame, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Per-bar labels of one symbol, indexed by date: ``label`` (None where not known yet), ``r_fwd`` (forward
        log return over the horizon), ``threshold`` (the direction model's risk unit; NaN otherwise) and
        ``matured_at`` (date of the bar that closes the horizon)."""
        p = dict(params or {})
        if self.name == DIRECTION:
            from include.modelwatch.data import features

            lab = features.make_labels(
                bars,
                horizon=int(p.get("horizon", self.horizon)),
                k=float(p.get("k", 0.5)),
                vol_window=int(p.get("vol_window", 21)),
            )
            return lab[["label", "r_fwd", "threshold", "matured_at"]]
        from include.modelwatch.data import features, regime

        horizon = int(p.get("horizon", self.horizon))
        lab = regime.regime_labels(bars, horizon=horizon, lookback=int(p.get("lookback", regime.REGIME_LOOKBACK)))
        close = features.prepare_bars(bars)["close"]
        logc = pd.Series(np.log(close.to_numpy()), index=close.index)
        out = lab[["label", "matured_at"]].copy()
        out["r_fwd"] = logc.shift(-horizon) - logc
        out["threshold"] = np.nan
        return out[["label", "r_fwd", "threshold", "matured_at"]]

    def outcomes(
        self, predictions: pd.DataFrame, bars: pd.DataFrame, params: Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Realized outcomes of one symbol's matured predictions (``date``, ``predicted_label`` and carried
        columns): adds ``realized_return``, ``realized_label``, ``matured_at`` and ``r_multiple`` (None when the
        target is not a trade). Immature predictions are left out."""
        p = dict(params or {})
        horizon = int(p.get("horizon", self.horizon))
        if self.name == DIRECTION:
            from include.modelwatch.data import features

            out = features.compute_outcomes(
                predictions, bars, horizon=horizon, k=float(p.get("k", 0.5)), vol_window=int(p.get("vol_window", 21))
            )
            return out
        unknown = sorted(set(predictions["predicted_label"]) - set(self.classes))
        if unknown:
            raise ValueError(f"unknown predicted_label {unknown[0]!r}; expected one of {list(self.classes)}")
        from include.modelwatch.data.features import entry_label_rows

        entry, rows = entry_label_rows(self.labels(bars, p), predictions["date"])
        matured = rows["matured_at"].notna().to_numpy()
        unlabelled = matured & rows["label"].isna().to_numpy()
        if unlabelled.any():
            d = entry[unlabelled][0]
            raise ValueError(f"entry {d:%Y-%m-%d} has too little history for its regime threshold")
        out = predictions.loc[matured].copy()
        rows = rows.iloc[np.flatnonzero(matured)]
        out["realized_return"] = rows["r_fwd"].to_numpy()
        out["realized_label"] = rows["label"].to_numpy()
        out["matured_at"] = rows["matured_at"].to_numpy()
        out["r_multiple"] = None
        out["horizon"] = horizon
        return out


def _targets() -> dict[str, Target]:
    from include.modelwatch.data.features import FEATURE_COLUMNS, REGIME_FEATURES

    return {
        DIRECTION: Target(
            DIRECTION, tuple(CLASSES), 5, trading=True, outcome_history_days=60, feature_columns=tuple(FEATURE_COLUMNS)
        ),
        # the regime threshold needs a year of sessions (252 + 5) before the entry: 420 calendar days. Its extra
        # features put each volatility against that same threshold (bench/regime_skill.py: AUC 0.70 -> 0.76)
        VOL_REGIME: Target(
            VOL_REGIME,
            ("LOW", "HIGH"),
            5,
            trading=False,
            outcome_history_days=420,
            feature_columns=(*FEATURE_COLUMNS, *REGIME_FEATURES),
        ),
    }


TARGETS: dict[str, Target] = _targets()


def target_named(name: str, what: str = "model") -> Target:
    """The target ``name``, or a ValueError naming ``what`` and the known targets."""
    if name not in TARGETS:
        raise ValueError(f"{what}: unknown target {name!r}; expected one of {sorted(TARGETS)}")
    return TARGETS[name]


def target_of(params: Mapping[str, Any] | None, what: str = "model") -> Target:
    """The target a version's ``params`` record (``direction`` when they name none)."""
    return target_named(str((params or {}).get("target") or DIRECTION), what)
