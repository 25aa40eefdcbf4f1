"""A synthetic external model for trying the feed (``external example``) and for the tests: an FX direction
classifier ModelWatch did not train.

Its probability of ``up`` is a logistic function of a 5-day return and a venue effect; the realized class is drawn
from that probability, so the model is calibrated and its accuracy is known in expectation. ``shift`` moves the
live return distribution (drift) and ``flip`` inverts the relation between features and outcome (a broken model).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

NAME = "fx_direction"
CLASSES = ["down", "up"]
SYMBOLS = [f"FX{i:02d}" for i in range(25)]
REFERENCE_START = datetime(2008, 1, 2, 21, tzinfo=UTC)
REFERENCE_DAYS = 60
LIVE_START = datetime(2008, 4, 1, 21, tzinfo=UTC)


def spec(**overrides) -> dict:
    s = {
        "name": NAME,
        "classes": CLASSES,
        "owner": "fx-desk@example.com",
        "horizon_days": 1,
        "description": "synthetic FX direction model (tests)",
        "features": [
            {"name": "ret_5d"},
            {"name": "vol_21d", "min": 0.0, "max": 1.0},
            {"name": "venue", "kind": "categorical"},
        ],
        "baseline": {"accuracy": 0.62, "macro_f1": 0.61, "brier": 0.45},
    }
    s.update(overrides)
    return s


def frame(days: list[datetime], *, seed: int, shift: float = 0.0, flip: bool = False) -> pd.DataFrame:
    """Predictions (and their realized class) of every symbol on ``days``."""
    rng = np.random.default_rng(seed)
    n = len(days) * len(SYMBOLS)
    ts = np.repeat(np.array(days, dtype=object), len(SYMBOLS))
    sym = np.tile(SYMBOLS, len(days))
    ret = rng.normal(shift, 0.02, n)
    vol = np.clip(rng.lognormal(np.log(0.12), 0.25, n), 0.01, 0.9)
    venue = rng.choice(["XNYS", "XNAS"], n)
    z = 40 * ret + np.where(venue == "XNAS", 0.2, -0.2)
    p_up = 1 / (1 + np.exp(-z))
    truth_up = rng.random(n) < (1 - p_up if flip else p_up)
    return pd.DataFrame(
        {
            "model_name": NAME,
            "ts": pd.to_datetime(list(ts), utc=True),
            "symbol": sym,
            "ret_5d": ret,
            "vol_21d": vol,
            "venue": venue,
            "p_down": 1 - p_up,
            "p_up": p_up,
            "realized_label": np.where(truth_up, "up", "down"),
        }
    )


def reference() -> pd.DataFrame:
    days = [REFERENCE_START + timedelta(days=i) for i in range(REFERENCE_DAYS)]
    return frame(days, seed=1).drop(columns=["model_name"])


def live(day: int, **kw) -> pd.DataFrame:
    """The predictions of live day ``day`` (0 = 2008-04-01) without their outcome."""
    return frame([LIVE_START + timedelta(days=day)], seed=100 + day, **kw)


def predictions_of(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["realized_label"])


def outcomes_of(df: pd.DataFrame) -> pd.DataFrame:
    return df[["model_name", "ts", "symbol", "realized_label"]].copy()


def write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def write_example(out: Path) -> dict[str, Path]:
    """The example's files in ``out``: the spec (YAML), the reference frame, and an inbox-ready feed (two days of
    predictions, then their outcomes as a later batch, and one malformed batch with NaN probabilities)."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / f"{NAME}.yaml"
    spec_path.write_text(yaml.safe_dump(spec(), sort_keys=False))
    days = [live(0), live(1)]
    bad = predictions_of(live(2))
    bad.loc[[4, 17], "p_up"] = np.nan
    return {
        "spec": spec_path,
        "reference": write(reference(), out / "reference.parquet"),
        "predictions_1": write(predictions_of(days[0]), out / "feed" / "predictions" / "2008-04-01.parquet"),
        "predictions_2": write(predictions_of(days[1]), out / "feed" / "predictions" / "2008-04-02.parquet"),
        "malformed": write(bad, out / "feed" / "predictions" / "2008-04-03-malformed.parquet"),
        "outcomes": write(
            outcomes_of(pd.concat(days, ignore_index=True)), out / "late" / "outcomes" / "outcomes.parquet"
        ),
    }
