"""Interpretability of a window's predictions: gain share and mean |SHAP| per feature."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def importance_shares(values: Mapping[str, float]) -> dict[str, float]:
    """Non-negative importances scaled to sum 1 (all 0.0 when the total is 0)."""
    total = float(sum(max(0.0, float(v)) for v in values.values()))
    return {k: (max(0.0, float(v)) / total if total > 0 else 0.0) for k, v in values.items()}


def window_interpretability(
    model: Any, features: list[str], feature_rows: list[Mapping[str, Any]], *, label: str = "model"
) -> dict[str, dict[str, Any]]:
    """Per feature of ``model``: ``gain`` (share of the model's split gain), ``shap`` (mean |SHAP|
    over ``feature_rows``, one mapping feature -> value per prediction; None without rows) and
    ``rank`` (1 = largest mean |SHAP|). A row lacking a model feature raises ValueError naming it.

    ``model`` None (an external model: no artifact ModelWatch can explain) gives ``{}``:
    interpretability is skipped and nothing is logged for the window."""
    if model is None:
        return {}
    import pandas as pd

    from include.modelwatch.training import training

    gain = importance_shares(training.feature_importance_gain(model, features))
    shap: dict[str, float | None] = dict.fromkeys(features)
    if feature_rows:
        X = pd.DataFrame(list(feature_rows))
        missing = [f for f in features if f not in X.columns]
        if missing:
            raise ValueError(f"{label}: predictions lack feature column(s) {missing}")
        values = training.shap_contributions(model, X[features].astype(float))
        shap = dict(zip(features, (float(v) for v in values), strict=True))
    order = sorted((f for f in features if shap[f] is not None), key=lambda f: -shap[f])  # type: ignore[operator]
    rank = {f: i + 1 for i, f in enumerate(order)}
    return {f: {"gain": gain[f], "shap": shap[f], "rank": rank.get(f)} for f in features}
