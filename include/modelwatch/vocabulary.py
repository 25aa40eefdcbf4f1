"""One vocabulary for the whole library: the class list, probability columns,
label indices, canonical metric names and the small numeric helpers every
context needs. Import these; do not define another copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: The signal classes, in the order of every probability vector and confusion matrix.
CLASSES: tuple[str, ...] = ("SELL", "HOLD", "BUY")
#: Index of each class in :data:`CLASSES`.
CLASS_INDEX: dict[str, int] = {c: i for i, c in enumerate(CLASSES)}
#: Frame column holding the probability of a class.
PROB_PREFIX = "p_"
PROB_COLUMNS: tuple[str, ...] = tuple(f"{PROB_PREFIX}{c}" for c in CLASSES)

#: Trading sessions in a year (annualization of volatility and Sharpe).
TRADING_DAYS = 252

#: Canonical names of the macro-averaged classification metrics (never ``f1_macro``).
MACRO_METRICS: tuple[str, ...] = ("macro_precision", "macro_recall", "macro_f1")


def prob_columns(classes: Iterable[str] = CLASSES) -> list[str]:
    """Probability column names for ``classes`` (a model's own class list)."""
    return [f"{PROB_PREFIX}{c}" for c in classes]


def label_to_index(labels: Iterable[Any], classes: Iterable[str] = CLASSES, *, what: str = "label") -> np.ndarray:
    """Class indices of ``labels`` (int64), or a ValueError naming the unknown values."""
    index = {c: i for i, c in enumerate(classes)}
    values = list(labels)
    out = np.empty(len(values), dtype=np.int64)
    bad: list[Any] = []
    for i, v in enumerate(values):
        k = index.get(v if isinstance(v, str) else str(v))
        if k is None:
            bad.append(v)
            k = -1
        out[i] = k
    if bad:
        shown = sorted({repr(b) for b in bad})[:5]
        raise ValueError(f"{what}: unknown class {', '.join(shown)} (expected one of {list(index)})")
    return out


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None (NaN, inf, None, bools, non-numeric text).

    Numeric text (``"0.1"``) converts: values read back from JSON or Variables may be strings.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def finite_values(d: Mapping[str, Any]) -> dict[str, float | None]:
    """``{key: finite_or_none(value)}`` for a mapping of metrics."""
    return {k: finite_or_none(v) for k, v in d.items()}


def brier_rows(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Per-row multiclass Brier score: sum over classes of (p - onehot)^2 (range 0..2)."""
    p = np.asarray(proba, dtype=float)
    y = np.asarray(y_index, dtype=np.int64)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return np.sum((p - onehot) ** 2, axis=1)


def multiclass_brier(proba: np.ndarray, y_index: np.ndarray) -> float:
    """Mean multiclass Brier score (see :func:`brier_rows`); NaN for no rows."""
    rows = brier_rows(proba, y_index)
    return float(rows.mean()) if len(rows) else float("nan")


def check_text(field: str, value: Any) -> Any:
    """``value`` unchanged, or a ValueError naming ``field`` when it holds a NUL character (PostgreSQL text cannot
    store one; any other text, quotes, markup and unicode included, is stored verbatim through parameters)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{field} must not contain NUL (0x00) characters")
    return value
