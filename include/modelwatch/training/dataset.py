"""The training data of a model: the labelled feature panel and the train / out-of-sample split of a retrain.

No Airflow, no database. A retrain's data is fixed by its trigger: the labelled
bars whose ``HORIZON``-session label closed before the trigger's end (its
``window_end``, else ``triggered_at``). The last ``eval_sessions`` labelled
sessions are the out-of-sample period shared by candidate and champion;
training stops an embargo (``embargo`` sessions plus the label horizon) before
it, so no training label overlaps an evaluation bar. The same trigger and
settings always give the same frames (a retry reproduces them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.data import features, sources
from include.modelwatch.training import targets as T

#: Label horizon (sessions), volatility multiple and volatility window of the BUY/SELL/HOLD labels.
HORIZON, K, VOL_WINDOW = 5, 0.5, 21


@dataclass(frozen=True)
class SplitSettings:
    """How a retrain cuts its data (the quick-run knobs of ``retrain_gated``)."""

    eval_sessions: int = 126
    embargo: int = 5
    train_years: int = 8
    shuffle_labels: bool = False
    horizon: int = HORIZON
    min_eval_sessions: int = 40

    def __post_init__(self) -> None:
        for name in ("eval_sessions", "train_years", "min_eval_sessions"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if int(self.embargo) < 0 or int(self.horizon) < 0:
            raise ValueError(f"embargo and horizon must be >= 0, got {self.embargo!r}, {self.horizon!r}")

    @classmethod
    def from_mapping(cls, conf: Mapping[str, Any]) -> SplitSettings:
        keys = ("eval_sessions", "embargo", "train_years", "min_eval_sessions", "shuffle_labels")
        known = {k: conf[k] for k in keys if k in conf}
        ints = {k: int(v) for k, v in known.items() if k != "shuffle_labels"}
        return cls(**ints, shuffle_labels=bool(known.get("shuffle_labels", False)))


@dataclass
class TrainingFrames:
    """``train`` and ``evaluation`` rows of one retrain and where they were cut (``info``, JSON-ready)."""

    train: pd.DataFrame
    evaluation: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


def load_clean_bars(
    symbols: tuple[str, ...] | list[str], source: sources.MarketSource | None = None, as_of: Any = None
) -> pd.DataFrame:
    """Daily bars of ``symbols`` from the market ``source`` (default: the ``arch`` demo data), cleaned by
    :func:`market.clean_bars` (bars dated after ``as_of`` are refused)."""
    bars, _ = sources.load_clean(source or sources.ArchSource(), list(symbols), as_of=as_of)
    return bars


def feature_panel(
    bars: pd.DataFrame,
    end: pd.Timestamp | None = None,
    target: T.Target | None = None,
    params: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Features + the ``target``'s labels (default: direction) for every symbol, one row per (symbol, date) with
    complete features, before ``end``. ``params``: the version's label parameters (horizon, k, ...)."""
    target = target or T.TARGETS[T.DIRECTION]
    label_params = {"horizon": HORIZON, "k": K, "vol_window": VOL_WINDOW, **dict(params or {})}
    parts = []
    for sym, g in bars.groupby("symbol", sort=True):
        g = g.sort_values("date").reset_index(drop=True)
        f = features.compute_features(g, columns=list(target.feature_columns))
        lab = target.labels(g, label_params)
        f = f.join(lab[["label", "r_fwd", "threshold"]])
        f["symbol"] = sym
        f.index.name = "date"
        parts.append(f.reset_index())
    panel = pd.concat(parts, ignore_index=True)
    panel = panel.dropna(subset=list(target.feature_columns))
    if end is not None:
        panel = panel[panel["date"] < end]
    return panel.sort_values(["date", "symbol"]).reset_index(drop=True)


def fingerprint(panel: pd.DataFrame) -> str:
    """SHA-256 of the rows that define a training set (symbol, date, features, label)."""
    h = hashlib.sha256()
    known = [*features.FEATURE_COLUMNS, *features.REGIME_FEATURES]
    cols = ["symbol", "date", *[c for c in known if c in panel.columns], "label"]
    h.update(pd.util.hash_pandas_object(panel[cols], index=False).to_numpy().tobytes())
    return h.hexdigest()


def rows_per_class(frame: pd.DataFrame) -> dict[str, int]:
    """``{label: count}`` of a labelled frame, in label order."""
    return {str(k): int(v) for k, v in frame["label"].value_counts().sort_index().items()}


def trigger_end(trigger: Mapping[str, Any]) -> datetime:
    """The end of a trigger's data (``window_end``, else ``triggered_at``), timezone-aware (UTC if naive)."""
    end = trigger.get("window_end") or trigger.get("triggered_at")
    if end is None:
        raise ValueError(f"trigger {trigger.get('trigger_id')}: neither window_end nor triggered_at is set")
    dt = end if isinstance(end, datetime) else datetime.fromisoformat(str(end))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def matured(panel: pd.DataFrame, *, horizon: int = HORIZON, what: str = "training data") -> pd.DataFrame:
    """The labelled rows of ``panel`` whose label horizon closed inside the panel: a label is known only
    ``horizon`` sessions after its bar, so the last ``horizon`` sessions are dropped."""
    sessions = np.sort(panel["date"].unique())
    if len(sessions) <= horizon:
        raise ValueError(f"{what}: {len(sessions)} sessions, not more than the label horizon ({horizon})")
    last = sessions[-horizon - 1]
    return panel[panel["label"].notna() & (panel["date"] <= last)].reset_index(drop=True)


def split_train_eval(
    panel: pd.DataFrame,
    settings: SplitSettings,
    *,
    incremental_from: date | None = None,
    champion_train_end: date | None = None,
    what: str = "training data",
) -> TrainingFrames:
    """Cut a panel (rows before the trigger's end) into training and out-of-sample rows.

    * only matured labels (:func:`matured`);
    * out-of-sample: the last ``eval_sessions`` labelled sessions, but never a session the champion trained on.
      A champion judged on its own training rows looks far better than it is, and the gates would reject every
      candidate. With ``champion_train_end``, when the last ``eval_sessions`` reach back into the champion's
      sample (plus ``embargo + horizon``), the sessions out of its sample are split in two: the later half is
      the out-of-sample period, the earlier half (less the embargo) is the candidate's new training data. When
      that half is shorter than ``min_eval_sessions``, a ValueError says the champion is too recent to judge;
    * training: up to ``embargo + horizon`` sessions before the out-of-sample start (exclusive), going back
      ``train_years`` years, or starting the day after ``incremental_from`` (an incremental retrain
      continues from the champion's last training day);
    * ``shuffle_labels`` permutes the training labels (seed 0): a sanity check that must fail the gates.

    ``what`` names model, trigger and window in errors.
    """
    labelled_panel = matured(panel, horizon=settings.horizon, what=what)
    labelled = np.sort(labelled_panel["date"].unique())
    n_eval, gap = int(settings.eval_sessions), int(settings.embargo) + int(settings.horizon)
    if len(labelled) <= n_eval + gap:
        raise ValueError(
            f"{what}: {len(labelled)} labelled sessions are too few for eval_sessions={n_eval} "
            f"plus an embargo of {gap} sessions and any training rows"
        )
    start = len(labelled) - n_eval
    if champion_train_end is not None:
        # index of the first session more than `gap` whole sessions after the champion's last training day
        unseen = int(np.searchsorted(labelled, np.datetime64(pd.Timestamp(champion_train_end)), side="right")) + gap
        if unseen > start:
            n_unseen = max(len(labelled) - unseen, 0)
            n_half = max(n_unseen - gap, 0) // 2
            if n_half < int(settings.min_eval_sessions):
                raise ValueError(
                    f"{what}: the champion trained until {champion_train_end}; only {n_unseen} labelled sessions "
                    f"after it (and an embargo of {gap}) are out of its sample, leaving {n_half} for the "
                    f"out-of-sample period, fewer than min_eval_sessions={settings.min_eval_sessions}: judging it "
                    "on its own training rows would reject every candidate; retrain later or lower min_eval_sessions"
                )
            start = len(labelled) - n_half
    if start - gap - 1 < 0:
        raise ValueError(f"{what}: no training sessions before the out-of-sample start and its embargo of {gap}")
    eval_start = pd.Timestamp(labelled[start])
    train_last = pd.Timestamp(labelled[start - gap - 1])
    train_first = train_last - pd.DateOffset(years=int(settings.train_years))
    if incremental_from is not None:
        train_first = pd.Timestamp(incremental_from) + pd.Timedelta(days=1)
    dates = labelled_panel["date"]
    train = labelled_panel[(dates >= train_first) & (dates <= train_last)].reset_index(drop=True)
    evaluation = labelled_panel[dates >= eval_start].reset_index(drop=True)
    if settings.shuffle_labels:
        rng = np.random.default_rng(0)
        train["label"] = rng.permutation(train["label"].to_numpy())
    info = {
        "train_start": str(train["date"].min().date()) if len(train) else None,
        "train_end": str(train_last.date()),
        "eval_start": str(eval_start.date()),
        "eval_end": str(pd.Timestamp(labelled[-1]).date()),
        "embargo_sessions": gap,
    }
    if start != len(labelled) - n_eval:
        info["eval_sessions"] = len(labelled) - start
    return TrainingFrames(train, evaluation, info)


def trigger_frames(
    trigger: Mapping[str, Any],
    settings: SplitSettings,
    *,
    symbols: list[str] | tuple[str, ...],
    champion_train_end: date | None = None,
    target: T.Target | None = None,
    params: Mapping[str, Any] | None = None,
    source: sources.MarketSource | None = None,
) -> TrainingFrames:
    """The frames of a retrain trigger: bars of ``symbols`` (from ``source``) before the trigger's end, labelled
    for ``target``, split by :func:`split_train_eval` (out of the champion's sample, which ends at
    ``champion_train_end``; incremental triggers continue from it)."""
    end = pd.Timestamp(trigger_end(trigger).date())
    what = f"{trigger['model_name']} trigger {trigger['trigger_id']} (data before {end:%Y-%m-%d})"
    bars = load_clean_bars(list(symbols), source)
    panel = feature_panel(bars[bars["date"] < end], end, target, params)
    incremental = trigger.get("retrain_mode") == "incremental" and champion_train_end is not None
    return split_train_eval(
        panel,
        settings,
        incremental_from=champion_train_end if incremental else None,
        champion_train_end=champion_train_end,
        what=what,
    )


def training_frame_spec(
    min_rows: int = 200,
    classes: tuple[str, ...] | list[str] | None = None,
    feature_columns: tuple[str, ...] | list[str] | None = None,
):
    """The Great Expectations checks of a training set: every feature present (``feature_columns``, default the
    direction target's), known labels (of ``classes``, default the direction target's), enough rows."""
    from include.modelwatch.data.features import FEATURE_COLUMNS
    from include.modelwatch.data.quality import ColumnSpec, FrameSpec
    from include.modelwatch.vocabulary import CLASSES

    columns = [ColumnSpec(c, max_null_share=0.0) for c in (feature_columns or FEATURE_COLUMNS)]
    columns.append(ColumnSpec("label", kind="categorical", allowed=tuple(classes or CLASSES), max_null_share=0.0))
    return FrameSpec(columns=tuple(columns), min_rows=min_rows)
