"""What a person sees to label one queue item: the bar, the model's probabilities, recent prices and the features
that pushed the model toward its answer (native SHAP of that one prediction)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from include.modelwatch.active_learning.store import Item

#: options of a labelling request: the three labels and Skip
SKIP = "Skip"
OPTIONS: tuple[str, ...] = ("BUY", "SELL", "HOLD", SKIP)


def top_contributions(model: Any, item: Item, k: int = 5) -> list[dict[str, Any]]:
    """The ``k`` features with the largest absolute SHAP contribution to the item's predicted class:
    ``{feature, value, contribution}`` (positive: toward the prediction)."""
    import pandas as pd

    from include.modelwatch.training import training

    names = training.model_feature_names(model)
    row = pd.DataFrame([{n: _num(item.features.get(n)) for n in names}], columns=names)
    contrib = training.row_contributions(model, row)[0, training.CLASSES.index(item.predicted_label)]
    order = sorted(range(len(names)), key=lambda j: -abs(contrib[j]))[:k]
    return [{"feature": names[j], "value": row.iat[0, j], "contribution": float(contrib[j])} for j in order]


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _fmt(v: Any, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"


def request(
    item: Item, closes: Sequence[tuple[Any, float]], contributions: Sequence[Mapping[str, Any]], horizon: int
) -> tuple[str, str]:
    """Subject and Markdown body of the item's labelling request. ``closes``: (date, close) of the sessions up to
    and including the bar, oldest first."""
    day = f"{item.ts:%Y-%m-%d}"
    subject = (
        f"Label {item.symbol} {day}: {item.model_name} said {item.predicted_label} (confidence {item.confidence:.3f})"
    )
    probs = " | ".join(f"{k} {float(v):.3f}" for k, v in sorted(item.probabilities.items(), key=lambda kv: -kv[1]))
    lines = [
        f"**{item.symbol}** on **{day}** (item {item.item_id}, priority {item.priority}). Model "
        f"**{item.model_name} v{item.model_version}** answered **{item.predicted_label}** but could hardly choose "
        f"between its two best classes: confidence p1/(p1+p2) = **{item.confidence:.3f}**.",
        "",
        f"Probabilities: {probs}",
        "",
        f"What should the signal have been over the next {horizon} sessions? BUY, SELL, HOLD, or Skip if you cannot "
        "tell. A note helps the next reviewer.",
        "",
        "Recent closes:",
        "",
        "| session | close | change |",
        "|---|---:|---:|",
    ]
    prev = None
    for d, c in closes:
        change = "" if prev is None or not prev else f"{(float(c) / prev - 1) * 100:+.2f}%"
        lines.append(f"| {str(d)[:10]} | {float(c):,.2f} | {change} |")
        prev = float(c)
    lines += [
        "",
        f"Features that pushed toward {item.predicted_label} (SHAP):",
        "",
        "| feature | value | SHAP |",
        "|---|---:|---:|",
    ]
    for top in contributions:
        lines.append(f"| {top['feature']} | {_fmt(top['value'])} | {float(top['contribution']):+.4f} |")
    return subject, "\n".join(lines)
