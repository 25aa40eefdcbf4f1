"""Label-free performance estimate (CBPE idea): an isotonic calibrator fitted on matured
predictions, checked on the most recent ones, applied to predictions without labels.

Every function takes the model's class list ``classes`` (default
:data:`include.modelwatch.vocabulary.CLASSES`); a :class:`Calibrator` knows the classes
it was fitted on (:attr:`Calibrator.classes`, the order of its maps) and is applied only
to probabilities of the same class list (ValueError otherwise)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from include.modelwatch.monitoring.performance.frames import as_classes, expected_calibration_error, prob_matrix
from include.modelwatch.vocabulary import CLASSES, label_to_index

DEFAULT_ECE_THRESHOLD = 0.05
DEFAULT_MIN_CHECK_ROWS = 200

# --------------------------------------------------------------------------- label-free estimate (CBPE)


@dataclass(frozen=True)
class Calibrator:
    """Per-class one-vs-rest isotonic maps p_k -> P(y = k), renormalised per row.

    ``x[c]``/``y[c]`` are the isotonic knots of class ``c``; between knots the
    map is linear, outside it is clipped (sklearn ``IsotonicRegression``
    semantics). The order of ``x``'s keys is the class order of the probabilities
    it transforms (:attr:`classes`; ``fit_calibrator`` writes them in the model's
    class order). Plain lists so it round-trips through JSON (``to_dict``).
    """

    x: dict[str, list[float]]
    y: dict[str, list[float]]
    n_fit: int
    method: str = "isotonic"
    fitted_until: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class list the calibrator was fitted on, in the column order of ``transform``."""
        return tuple(self.x)

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows sum to 1) for raw (n x len(classes)) probabilities."""
        p = np.asarray(probs, dtype=float)
        if p.ndim != 2 or p.shape[1] != len(self.classes):
            raise ValueError(f"expected probabilities with {len(self.classes)} columns {list(self.classes)}")
        q = np.column_stack([np.interp(p[:, i], self.x[c], self.y[c]) for i, c in enumerate(self.classes)])
        q = np.clip(q, 0.0, 1.0)
        s = q.sum(axis=1, keepdims=True)
        raw = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
        return np.where(s > 1e-12, q / np.where(s > 1e-12, s, 1.0), raw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "x": self.x,
            "y": self.y,
            "n_fit": self.n_fit,
            "method": self.method,
            "fitted_until": self.fitted_until,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibrator:
        """Inverse of ``to_dict``."""
        return cls(
            x={k: list(v) for k, v in d["x"].items()},
            y={k: list(v) for k, v in d["y"].items()},
            n_fit=int(d["n_fit"]),
            method=str(d.get("method", "isotonic")),
            fitted_until=d.get("fitted_until"),
            extra=dict(d.get("extra") or {}),
        )


def fit_calibrator(matured_df: pd.DataFrame, min_rows: int = 100, *, classes: Sequence[str] = CLASSES) -> Calibrator:
    """Fit per-class isotonic calibration on matured predictions.

    For each class k of ``classes`` (columns ``p_<class>``) an increasing ``IsotonicRegression`` (clipped to [0, 1])
    regresses 1[realized_label == k] on p_k; ``Calibrator.transform`` applies
    the maps and renormalises rows to sum 1. Raises ValueError with fewer than
    ``min_rows`` matured rows.

    Give it as much matured data of the model as its premise allows: the
    estimate rests on the map p -> P(y | p) being stable (``calibration_check``
    on recent outcomes tests that), and under that premise every extra row only
    lowers the variance. Rows are far from independent (symbols that move
    together share an entry day; overlapping horizons make neighbouring days
    alike), so a few hundred rows carry the information of far fewer: on the
    SPX/IXIC replay a 500-row fit moves the estimated accuracy of a month by
    about 0.03 (10-day block bootstrap) against about 0.01 for a fit on the
    whole history (out-of-fold reference plus live, 2,700-3,600 rows).
    """
    from sklearn.isotonic import IsotonicRegression

    data = matured_df.loc[matured_df["realized_label"].notna()]
    if len(data) < min_rows:
        raise ValueError(f"need at least {min_rows} matured rows to fit a calibrator, got {len(data)}")
    cls = as_classes(classes)
    p = prob_matrix(data, cls)
    y = label_to_index(data["realized_label"], cls, what="realized_label")
    xs: dict[str, list[float]] = {}
    ys: dict[str, list[float]] = {}
    for i, c in enumerate(cls):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(p[:, i], (y == i).astype(float))
        xs[c] = [float(v) for v in iso.X_thresholds_]
        ys[c] = [float(v) for v in iso.y_thresholds_]
    until = None
    if "matured_at" in data.columns and data["matured_at"].notna().any():
        until = str(pd.Timestamp(data["matured_at"].max()))
    return Calibrator(x=xs, y=ys, n_fit=len(data), fitted_until=until)


def _check_classes(calibrator: Calibrator, classes: tuple[str, ...]) -> None:
    if calibrator.classes != classes:
        raise ValueError(f"calibrator fitted on classes {list(calibrator.classes)}, applied to classes {list(classes)}")


def _calibrated_top(
    df: pd.DataFrame, calibrator: Calibrator, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    _check_classes(calibrator, classes)
    q = calibrator.transform(prob_matrix(df, classes))
    pred = label_to_index(df["predicted_label"], classes, what="predicted_label")
    return q, pred


def calibration_check(
    matured_recent_df: pd.DataFrame,
    calibrator: Calibrator,
    threshold: float = DEFAULT_ECE_THRESHOLD,
    min_rows: int = DEFAULT_MIN_CHECK_ROWS,
    null_draws: int = 200,
    *,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """Is the calibrator still trustworthy on recently matured outcomes?

    ECE (10 equal-width bins) of the calibrated probability of the *predicted*
    label against ``predicted_label == realized_label`` (what
    ``estimate_performance`` relies on). ``reliable`` is True iff at least
    ``min_rows`` (default 200) rows exist and ``ece <= limit`` where
    ``limit = max(threshold, ece_null_q95)`` (threshold default 0.05;
    ``ece_null_q95``: see ``ece_null_quantile``, skipped when ``null_draws=0``). Use data NOT used to
    fit the calibrator; ``classes`` must be the calibrator's class list. Also reports
    ``ece_raw`` (same statistic on uncalibrated probabilities),
    ``accuracy``, ``expected_accuracy`` and ``reason``.
    """
    cls = as_classes(classes)
    data = matured_recent_df
    if len(data):
        data = data.loc[data["realized_label"].notna()]
    n = len(data)
    out: dict[str, Any] = {
        "n": n,
        "ece": None,
        "ece_raw": None,
        "accuracy": None,
        "expected_accuracy": None,
        "ece_null_q95": None,
        "limit": threshold,
        "threshold": threshold,
        "min_rows": min_rows,
        "reliable": False,
        "reason": "",
    }
    if n == 0:
        out["reason"] = "no recently matured outcomes"
        return out
    q, pred = _calibrated_top(data, calibrator, cls)
    true = label_to_index(data["realized_label"], cls, what="realized_label")
    correct = pred == true
    top = q[np.arange(n), pred]
    raw = prob_matrix(data, cls)[np.arange(n), pred]
    out["ece"] = expected_calibration_error(top, correct)
    out["ece_raw"] = expected_calibration_error(raw, correct)
    out["accuracy"] = float(correct.mean())
    out["expected_accuracy"] = float(top.mean())
    out["ece_null_q95"] = ece_null_quantile(top, draws=null_draws) if null_draws > 0 else None
    limit = max(threshold, out["ece_null_q95"] or 0.0)
    out["limit"] = limit
    if n < min_rows:
        out["reason"] = f"only {n} matured rows (< {min_rows})"
    elif out["ece"] > limit:
        out["reason"] = (
            f"calibration decayed: calibrated ECE {out['ece']:.3f} > {limit:.3f} "
            f"(max of {threshold:.3f} and the 95% ECE of a calibrated model on {n} rows)"
        )
    else:
        out["reliable"] = True
        out["reason"] = f"calibrated ECE {out['ece']:.3f} <= {limit:.3f}"
    return out


def ece_null_quantile(confidence: np.ndarray, q: float = 0.95, draws: int = 200, seed: int = 0) -> float | None:
    """The ``q`` quantile of the ECE a *perfectly calibrated* model would show on
    these confidences: each draw sets ``correct ~ Bernoulli(confidence)`` and
    computes ``expected_calibration_error``. On a few hundred rows the ECE of a
    calibrated model is itself 0.05-0.10 (binning noise), so a fixed ECE limit
    alone would call every small sample "decayed"; ``calibration_check`` uses
    ``max(threshold, this quantile)``."""
    conf = np.asarray(confidence, dtype=float)
    if conf.size == 0:
        return None
    rng = np.random.default_rng(seed)
    sims = rng.random((draws, conf.size)) < conf
    vals = [expected_calibration_error(conf, s) for s in sims]
    return float(np.quantile(np.asarray(vals, dtype=float), q))


def estimate_performance(
    unlabeled_df: pd.DataFrame,
    calibrator: Calibrator,
    check: Mapping[str, Any] | None = None,
    *,
    classes: Sequence[str] = CLASSES,
) -> dict[str, Any]:
    """Confidence-based performance estimate (CBPE idea) for predictions without labels.

    With calibrated probabilities q (rows of ``calibrator.transform``) and
    predicted class j_i of each row:

    * ``expected_accuracy`` = mean_i q[i, j_i]
    * expected confusion matrix ``E[C[k, j]] = sum_{i: j_i = j} q[i, k]`` so per
      class ``TP_j = sum_{i: j_i=j} q[i, j]``, ``FP_j = n_pred_j - TP_j``,
      ``FN_j = sum_{i: j_i != j} q[i, j]``; precision/recall/F1 per class from
      these expectations (zero_division=0), macro over classes that are
      predicted or have expected support >= 1; ``expected_f1_<class>`` per class of
      ``classes`` (the calibrator's class list).

    ``status``: ``empty`` (n = 0); ``unreliable`` when ``check`` (a
    ``calibration_check`` result) says not reliable — then every ``expected_*``
    value is None and the reason is given; ``ok`` when the check passed;
    ``unchecked`` when no check was supplied (numbers returned, not vouched for).
    """
    cls = as_classes(classes)
    n = len(unlabeled_df)
    keys = ["expected_accuracy", "expected_macro_precision", "expected_macro_recall", "expected_macro_f1"]
    keys += [f"expected_f1_{c}" for c in cls]
    out: dict[str, Any] = dict.fromkeys(keys)
    out.update(n=n, status="empty", reason="", ece=None if check is None else check.get("ece"))
    if n == 0:
        out["reason"] = "no predictions"
        return out
    if check is not None and not check.get("reliable", False):
        out["status"] = "unreliable"
        out["reason"] = str(check.get("reason") or "calibration check failed")
        return out
    q, pred = _calibrated_top(unlabeled_df, calibrator, cls)
    rows = np.arange(n)
    out["expected_accuracy"] = float(q[rows, pred].mean())
    cm = np.zeros((len(cls), len(cls)))
    for j in range(len(cls)):
        cm[:, j] = q[pred == j].sum(axis=0)
    tp = np.diag(cm)
    pred_n = cm.sum(axis=0)
    true_n = cm.sum(axis=1)
    prec = np.where(pred_n > 0, tp / np.where(pred_n > 0, pred_n, 1), 0.0)
    rec = np.where(true_n > 0, tp / np.where(true_n > 0, true_n, 1), 0.0)
    den = prec + rec
    f1 = np.where(den > 0, 2 * prec * rec / np.where(den > 0, den, 1), 0.0)
    present = (pred_n > 0) | (true_n >= 1.0)
    out["expected_macro_precision"] = float(prec[present].mean())
    out["expected_macro_recall"] = float(rec[present].mean())
    out["expected_macro_f1"] = float(f1[present].mean())
    for i, c in enumerate(cls):
        out[f"expected_f1_{c}"] = float(f1[i])
    out["status"] = "unchecked" if check is None else "ok"
    out["reason"] = "no calibration check supplied" if check is None else str(check.get("reason", ""))
    return out


def calibration_split(
    matured: pd.DataFrame, check_rows: int, fit_rows: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(fit, check)`` for the label-free estimator, by time: ``check`` is the
    ``check_rows`` most recently matured predictions (the estimator's own
    calibration is judged there), ``fit`` every prediction matured before them
    (``fit_rows=None``, the default) or only the ``fit_rows`` most recent of
    those. Disjoint, so the check is out of sample."""
    order = "matured_at" if "matured_at" in matured.columns else "ts"
    data = matured.sort_values([order, "ts"], kind="stable").reset_index(drop=True)
    n_before = max(0, len(data) - check_rows)
    check = data.iloc[n_before:]
    fit = data.iloc[0 if fit_rows is None else max(0, n_before - fit_rows) : n_before]
    return fit.reset_index(drop=True), check.reset_index(drop=True)


# --------------------------------------------------------------------------- the estimate performance_daily reports

#: The calibrator is fitted on every matured prediction before the CHECK_ROWS most
#: recent ones (why all of them: ``fit_calibrator``), and needs FIT_MIN_ROWS of them;
#: its calibration is checked on those CHECK_ROWS (at least CHECK_MIN_ROWS).
FIT_MIN_ROWS = 100
CHECK_ROWS, CHECK_MIN_ROWS = 126, 100


@dataclass(frozen=True)
class LabelFreeEstimate:
    """``estimate``: ``estimate_performance`` vouched for by ``check`` (withheld when unreliable);
    ``unchecked``: the same numbers ignoring the check; ``check``: the calibration check."""

    estimate: dict[str, Any]
    unchecked: dict[str, Any]
    check: dict[str, Any]


def estimate_label_free(
    matured: pd.DataFrame,
    unlabeled: pd.DataFrame,
    *,
    check_rows: int = CHECK_ROWS,
    fit_min_rows: int = FIT_MIN_ROWS,
    check_min_rows: int = CHECK_MIN_ROWS,
    classes: Sequence[str] = CLASSES,
) -> LabelFreeEstimate:
    """CBPE estimate of ``unlabeled`` with a calibrator fitted and checked on ``matured`` data.

    ``calibration_split`` puts the ``check_rows`` most recently matured predictions
    aside for the check and fits on everything before them. With fewer than
    ``fit_min_rows`` to fit on, no calibrator is fitted and the estimate is
    ``unreliable`` (with the reason); so are both returned estimates. ``classes``: the
    model's class list (probability columns ``p_<class>``).
    """
    fit, recent = calibration_split(matured, check_rows)
    if len(fit) < fit_min_rows:
        check = {
            "reliable": False,
            "n_fit": len(fit),
            "n": len(recent),
            "reason": f"only {len(fit)} matured predictions to fit the calibrator (< {fit_min_rows})",
        }
        est = estimate_performance(unlabeled, None, check, classes=classes)  # type: ignore[arg-type]  # never transformed
        return LabelFreeEstimate(est, est, check)
    cal = fit_calibrator(fit, min_rows=fit_min_rows, classes=classes)
    check = {**calibration_check(recent, cal, min_rows=check_min_rows, classes=classes), "n_fit": len(fit)}
    return LabelFreeEstimate(
        estimate_performance(unlabeled, cal, check, classes=classes),
        estimate_performance(unlabeled, cal, classes=classes),
        check,
    )
