"""The drift window's data-quality spec (Great Expectations checks before drift is computed).

Probabilities, confidence and the predicted label must be complete and in
range. A feature may be missing in a small share of the window's rows: a bad
bar (e.g. a NaN ``volume_z_20``) is still scored and marked
``predictions.data_quality = 'missing_features'``; the window counts such rows
and reports them, but one such row does not fail the window.
"""

from __future__ import annotations

from collections.abc import Sequence

from include.modelwatch.data.quality import ColumnSpec, FrameSpec
from include.modelwatch.vocabulary import prob_columns


def feature_null_allowance(n_rows: int, max_null_share: float) -> float:
    """Share of missing values a feature may have in a window of ``n_rows``:
    ``max_null_share``, but never less than one row (one bad bar in a small
    window is reported, not fatal)."""
    if n_rows <= 0:
        return max_null_share
    # + a hair so that exactly one row of n passes GX's float comparison (1 - 1/n) <= (n - 1)/n
    return min(1.0, max(max_null_share, 1.0 / n_rows) + 1e-9)


def window_spec(
    features: Sequence[str],
    classes: Sequence[str],
    n_rows: int,
    max_null_share: float,
    categorical: Sequence[str] = (),
) -> FrameSpec:
    """Expectations of a drift window frame (columns as ``store.window_frame`` builds them); ``categorical``
    features are checked for presence only (a new level is drift, not bad data)."""
    allowance = feature_null_allowance(n_rows, max_null_share)
    cols = [
        ColumnSpec(f, kind="categorical" if f in categorical else "numeric", max_null_share=allowance) for f in features
    ]
    cols += [ColumnSpec(p, min_value=0.0, max_value=1.0, max_null_share=0.0) for p in prob_columns(classes)]
    cols += [
        ColumnSpec("confidence", min_value=0.0, max_value=1.0, max_null_share=0.0),
        ColumnSpec("predicted_label", kind="categorical", allowed=tuple(classes), max_null_share=0.0),
    ]
    return FrameSpec(columns=tuple(cols), min_rows=1)
