"""Calm and stressed months from realized volatility, and whether drift monitoring caught each stress episode.

A month's realized volatility is the annualized standard deviation of the daily log returns of its closes (the
mean over the model's symbols). Against the months of the champion's training period: *calm* is at or below their
75th percentile, *stressed* above their 95th, *normal* in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

CALM, NORMAL, STRESSED = "calm", "normal", "stressed"
CALM_PERCENTILE, STRESS_PERCENTILE = 75.0, 95.0
#: stress episodes of 2007-2018 (month of onset) that drift monitoring should detect within two windows
STRESS_EPISODES: tuple[str, ...] = ("2008-09", "2010-05", "2011-08", "2015-08", "2016-01", "2018-02")
DETECTION_WINDOWS = 2
TRADING_DAYS = 252


def month_key(value: date | pd.Timestamp) -> str:
    return f"{value.year:04d}-{value.month:02d}"


def monthly_realized_vol(bars: pd.DataFrame) -> pd.Series:
    """Month ``YYYY-MM`` -> realized volatility (annualized) from bars with ``symbol``, ``date``, ``close``."""
    need = {"symbol", "date", "close"}
    if not need <= set(bars.columns):
        raise ValueError(f"bars lack column(s) {sorted(need - set(bars.columns))}")
    df = bars.sort_values(["symbol", "date"]).copy()
    df["date"] = pd.to_datetime(df["date"])
    close = df["close"].astype(float)
    if (close <= 0).any():
        bad = df.loc[close <= 0].iloc[0]
        raise ValueError(f"close {bad['close']} of {bad['symbol']} on {bad['date']:%Y-%m-%d} is not positive")
    log_close = pd.Series(np.log(close.to_numpy()), index=df.index)
    df["ret"] = log_close.groupby(df["symbol"]).diff()
    df["month"] = df["date"].dt.strftime("%Y-%m")
    per_symbol = df.dropna(subset=["ret"]).groupby(["month", "symbol"])["ret"].std(ddof=1) * np.sqrt(TRADING_DAYS)
    return per_symbol.groupby(level="month").mean().sort_index()


@dataclass(frozen=True)
class Regimes:
    calm_max: float  # the training months' 75th percentile
    stress_min: float  # their 95th
    by_month: dict[str, str]  # YYYY-MM -> calm | normal | stressed

    def of(self, month: str) -> str:
        return self.by_month.get(month, NORMAL)


def regimes(vol: pd.Series, train_start: date, train_end: date) -> Regimes:
    """Classify every month of ``vol`` against the months of the training period ``train_start..train_end``."""
    train = vol[(vol.index >= month_key(train_start)) & (vol.index <= month_key(train_end))].dropna()
    if len(train) < 12:
        raise ValueError(
            f"training period {train_start}..{train_end}: {len(train)} month(s) of realized volatility, "
            "need at least 12 to set the calm and stress thresholds"
        )
    calm_max = float(np.percentile(train, CALM_PERCENTILE))
    stress_min = float(np.percentile(train, STRESS_PERCENTILE))
    by_month = {
        str(m): (CALM if v <= calm_max else STRESSED if v > stress_min else NORMAL) for m, v in vol.dropna().items()
    }
    return Regimes(calm_max, stress_min, by_month)


def next_months(month: str, n: int) -> list[str]:
    """``month`` and the ``n - 1`` months after it."""
    y, m = int(month[:4]), int(month[5:7])
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def detections(
    alert_spans: Iterable[tuple[str, str]], months: Sequence[str], episodes: Sequence[str] = STRESS_EPISODES
) -> dict[str, str | None]:
    """Episode -> the first of its :data:`DETECTION_WINDOWS` monthly windows (its onset and the next) on which a
    drift alert was active, None when none was (missed). ``alert_spans``: each alert episode's first and last window
    (``YYYY-MM``; an alert stays open while the drift lasts, so one raised before the onset and still open
    counts). Episodes outside the replayed ``months`` are left out."""
    spans = list(alert_spans)
    replayed = set(months)
    return {
        ep: next((m for m in next_months(ep, DETECTION_WINDOWS) if any(a <= m <= b for a, b in spans)), None)
        for ep in episodes
        if ep in replayed
    }


def quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def alerts_per_quarter(alerts_by_month: Mapping[str, int], reg: Regimes, months: Sequence[str]) -> dict[str, Any]:
    """Drift alerts per quarter, split by the regime of the month they were raised in: per regime the quarters
    with such months, the mean and maximum alerts per quarter, and the quarters over one calm alert."""
    quarters = sorted({quarter_of(m) for m in months})
    out: dict[str, Any] = {}
    for regime in (CALM, NORMAL, STRESSED):
        counts = {}
        for q in quarters:
            in_q = [m for m in months if quarter_of(m) == q and reg.of(m) == regime]
            if in_q:
                counts[q] = sum(int(alerts_by_month.get(m, 0)) for m in in_q)
        values = list(counts.values())
        out[regime] = {
            "quarters": len(values),
            "alerts": sum(values),
            "per_quarter_mean": round(float(np.mean(values)), 3) if values else None,
            "per_quarter_max": max(values) if values else None,
            "quarters_over_one": sorted(q for q, c in counts.items() if c > 1),
        }
    return out
