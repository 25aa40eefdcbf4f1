"""Validation gates a retrained candidate must pass before it replaces the champion.

Each gate is a pure function returning a :class:`GateResult` with status
``pass``, ``fail`` or ``borderline``; :func:`run_gates` folds them into a
:class:`GateSummary` with an overall ``deploy`` / ``reject`` / ``review``.

Limit-style checks (business, calibration, stability, data quality) share one
grading rule. Each check has a *usage* = how much of its allowance is used:
``observed / limit`` for an upper limit, ``limit / observed`` for a lower
limit, ``shortfall / tolerance`` for a tolerance versus the champion. Then

* ``usage > 1``                        -> fail,
* ``1 - band < usage <= 1``            -> borderline (close to the limit),
* ``usage <= 1 - band``                -> pass,

with ``band = BORDERLINE_BAND = 0.2`` unless a gate takes its own ``band``.
A gate is the worst of its checks; its ``value``/``threshold`` are the
observed value and limit of the check with the highest usage (the binding
one, named in ``evidence["binding"]``), and ``evidence["checks"]`` has all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

STATUSES: tuple[str, ...] = ("pass", "borderline", "fail")
_STATUS_RANK = {s: i for i, s in enumerate(STATUSES)}

#: Fraction of an allowance, just below the limit, that is graded 'borderline'.
BORDERLINE_BAND = 0.2
#: Number of equal-width confidence bins for ECE and PSI.
N_BINS = 10
#: Floor for empty-bin shares in PSI, so that ln(a/e) stays finite.
PSI_EPS = 1e-4


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate."""

    name: str
    status: str  # 'pass' | 'fail' | 'borderline'
    value: float | None
    threshold: float | None
    evidence: dict[str, Any]
    message: str

    @property
    def passed(self) -> bool:
        """True only for status 'pass'."""
        return self.status == "pass"


@dataclass(frozen=True)
class GateSummary:
    """Overall verdict: 'reject' if any gate failed, else 'review' if any is borderline
    (or no gate ran), else 'deploy'."""

    status: str  # 'deploy' | 'reject' | 'review'
    failing: tuple[str, ...]
    borderline: tuple[str, ...]
    passed: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class _Check:
    name: str
    observed: float
    limit: float
    usage: float
    status: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "observed": self.observed,
            "limit": self.limit,
            "usage": self.usage,
            "status": self.status,
            "detail": self.detail,
        }


def _grade(usage: float, band: float) -> str:
    if math.isnan(usage) or usage > 1.0:
        return "fail"
    if usage > 1.0 - band:
        return "borderline"
    return "pass"


def _usage_max(observed: float, limit: float) -> float:
    """Usage of an upper limit ``observed <= limit``."""
    if limit > 0:
        return observed / limit
    return 0.0 if observed <= 0 else math.inf


def _usage_min(observed: float, limit: float) -> float:
    """Usage of a lower limit ``observed >= limit``."""
    if limit <= 0:
        return 0.0
    return limit / observed if observed > 0 else math.inf


def _check(name: str, observed: float, limit: float, usage: float, band: float, detail: str) -> _Check:
    return _Check(name, float(observed), float(limit), float(usage), _grade(usage, band), detail)


def _combine(gate: str, checks: Sequence[_Check], extra: Mapping[str, Any] | None = None) -> GateResult:
    worst = max(checks, key=lambda c: (_STATUS_RANK[c.status], c.usage))
    status = max((c.status for c in checks), key=_STATUS_RANK.__getitem__)
    bad = [c for c in checks if c.status != "pass"]
    if bad:
        message = f"{gate} {status}: " + "; ".join(f"{c.detail} [{c.status}]" for c in bad)
    else:
        message = f"{gate} pass: " + "; ".join(c.detail for c in checks)
    evidence: dict[str, Any] = {"binding": worst.name, "checks": {c.name: c.as_dict() for c in checks}}
    if extra:
        evidence.update(extra)
    return GateResult(gate, status, worst.observed, worst.limit, evidence, message)


def _check_band(band: float) -> None:
    if not 0.0 <= band < 1.0:
        raise ValueError(f"band must be in [0, 1), got {band}")


# --------------------------------------------------------------------------- performance


def performance_gate(
    y_true: ArrayLike,
    champion_pred: ArrayLike,
    candidate_pred: ArrayLike,
    min_improvement: float = 0.0,
    alpha: float = 0.05,
    max_drop: float = 0.02,
) -> GateResult:
    """Candidate vs champion accuracy on the same out-of-sample rows, with an exact McNemar test.

    Discordant pairs: ``b`` = champion right & candidate wrong, ``c`` = champion
    wrong & candidate right; ``delta = (c - b) / n`` is the accuracy change.
    ``p_worse = P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)`` (one-sided exact
    McNemar, ``scipy.stats.binomtest(b, b + c, 0.5, alternative='greater')``);
    ``p_better`` likewise for ``c``; ``p_two_sided`` is reported too. 1.0 if
    there is no discordant pair.

    * fail       if ``p_worse < alpha`` (significantly worse) or ``delta < -max_drop``;
    * pass       if ``delta >= min_improvement`` (and not significantly worse);
    * borderline otherwise: worse but neither significant nor beyond
      ``max_drop``, or better by less than ``min_improvement``.

    ``value`` is ``delta``, ``threshold`` is ``min_improvement``.
    """
    y = np.asarray(y_true)
    champ = np.asarray(champion_pred)
    cand = np.asarray(candidate_pred)
    if y.ndim != 1 or champ.shape != y.shape or cand.shape != y.shape:
        raise ValueError(f"y_true, champion_pred, candidate_pred must be 1-D of equal length; got {y.shape}, {champ.shape}, {cand.shape}")
    if y.size == 0:
        raise ValueError("performance_gate needs at least one row")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if max_drop < 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")

    champ_ok = champ == y
    cand_ok = cand == y
    n = int(y.size)
    b = int(np.sum(champ_ok & ~cand_ok))
    c = int(np.sum(~champ_ok & cand_ok))
    acc_champ = float(np.mean(champ_ok))
    acc_cand = float(np.mean(cand_ok))
    delta = (c - b) / n
    if b + c > 0:
        p_worse = float(stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue)
        p_better = float(stats.binomtest(c, b + c, 0.5, alternative="greater").pvalue)
        p_two = float(stats.binomtest(c, b + c, 0.5, alternative="two-sided").pvalue)
    else:
        p_worse = p_better = p_two = 1.0

    evidence: dict[str, Any] = {
        "n": n,
        "champion_accuracy": acc_champ,
        "candidate_accuracy": acc_cand,
        "delta": delta,
        "champion_only_correct": b,
        "candidate_only_correct": c,
        "both_correct": int(np.sum(champ_ok & cand_ok)),
        "both_wrong": int(np.sum(~champ_ok & ~cand_ok)),
        "p_worse": p_worse,
        "p_better": p_better,
        "p_two_sided": p_two,
        "alpha": alpha,
        "max_drop": max_drop,
        "min_improvement": min_improvement,
        "test": "exact McNemar (binomial on discordant pairs)",
    }
    summary = (
        f"accuracy {acc_cand:.4f} vs champion {acc_champ:.4f} (delta {delta:+.4f}; "
        f"discordant {b} champion-only / {c} candidate-only, p_worse={p_worse:.4g})"
    )
    if p_worse < alpha:
        status, why = "fail", f"candidate significantly worse (p_worse {p_worse:.4g} < alpha {alpha:g})"
    elif delta < -max_drop:
        status, why = "fail", f"accuracy drop {-delta:.4f} > tolerance {max_drop:g}"
    elif delta >= min_improvement:
        status, why = "pass", f"improvement {delta:+.4f} >= required {min_improvement:+g}"
    elif delta < 0:
        status, why = "borderline", f"worse by {-delta:.4f}, not significant and within tolerance {max_drop:g}"
    else:
        status, why = "borderline", f"improvement {delta:+.4f} short of required {min_improvement:+g}"
    return GateResult("performance", status, delta, float(min_improvement), evidence, f"performance {status}: {why}; {summary}")


# --------------------------------------------------------------------------- business

BUSINESS_KEYS: tuple[str, ...] = ("profit_factor", "sharpe", "max_drawdown")


def _finite_or_none(metrics: Mapping[str, Any], key: str, allow_inf: bool = False) -> float | None:
    v = metrics.get(key)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or (math.isinf(f) and not allow_inf):
        return None
    return f


def business_gate(
    candidate_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    pf_tolerance: float = 0.1,
    sharpe_tolerance: float = 0.25,
    max_dd_limit: float = 0.25,
    band: float = BORDERLINE_BAND,
) -> GateResult:
    """Trading metrics of the candidate vs the champion on the same backtest period.

    Metrics keys: ``profit_factor`` (gross profit / gross loss, may be inf),
    ``sharpe`` (annualised), ``max_drawdown`` (fraction of peak equity; the
    sign is ignored, so -0.18 and 0.18 both mean an 18% drawdown).

    Checks (absolute units): profit-factor shortfall ``champion - candidate``
    within ``pf_tolerance``; Sharpe shortfall within ``sharpe_tolerance``;
    candidate drawdown within ``max_dd_limit``. Graded with the module's
    usage rule (borderline in the top ``band`` of each allowance). With
    ``champion_metrics=None`` (no champion yet) only the drawdown is checked.
    A missing or non-numeric metric fails the gate.
    """
    _check_band(band)
    needed = [("candidate", candidate_metrics, k) for k in BUSINESS_KEYS]
    if champion_metrics is not None:
        needed += [("champion", champion_metrics, k) for k in ("profit_factor", "sharpe")]
    missing = [
        f"{who}.{k}" for who, m, k in needed if _finite_or_none(m, k, allow_inf=(k == "profit_factor")) is None
    ]
    if missing:
        return GateResult(
            "business", "fail", None, None, {"missing": missing},
            f"business fail: missing or non-numeric metrics {', '.join(missing)}",
        )

    cand_pf = _finite_or_none(candidate_metrics, "profit_factor", allow_inf=True)
    cand_sh = _finite_or_none(candidate_metrics, "sharpe")
    cand_dd = abs(_finite_or_none(candidate_metrics, "max_drawdown"))  # type: ignore[arg-type]
    checks: list[_Check] = []
    if champion_metrics is not None:
        champ_pf = _finite_or_none(champion_metrics, "profit_factor", allow_inf=True)
        champ_sh = _finite_or_none(champion_metrics, "sharpe")
        assert cand_pf is not None and champ_pf is not None and cand_sh is not None and champ_sh is not None
        pf_short = 0.0 if cand_pf >= champ_pf else champ_pf - cand_pf
        sh_short = max(0.0, champ_sh - cand_sh)
        checks.append(_check(
            "profit_factor", pf_short, pf_tolerance, _usage_max(pf_short, pf_tolerance), band,
            f"profit factor {cand_pf:.3f} vs champion {champ_pf:.3f} (shortfall {pf_short:.3f}, tolerance {pf_tolerance:g})",
        ))
        checks.append(_check(
            "sharpe", sh_short, sharpe_tolerance, _usage_max(sh_short, sharpe_tolerance), band,
            f"Sharpe {cand_sh:.3f} vs champion {champ_sh:.3f} (shortfall {sh_short:.3f}, tolerance {sharpe_tolerance:g})",
        ))
    checks.append(_check(
        "max_drawdown", cand_dd, max_dd_limit, _usage_max(cand_dd, max_dd_limit), band,
        f"max drawdown {cand_dd:.3f} (limit {max_dd_limit:g})",
    ))
    return _combine("business", checks, {"champion_compared": champion_metrics is not None})


# --------------------------------------------------------------------------- calibration


def _proba_matrix(proba: ArrayLike, name: str, n_classes: int | None = None) -> np.ndarray:
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rows x classes), got shape {p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"{name} has {p.shape[1]} columns, expected {n_classes}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"{name} rows must sum to 1")
    return p


def _bin_index(conf: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bins [k/n, (k+1)/n) on [0, 1]; 1.0 falls in the last bin."""
    return np.minimum(np.floor(conf * n_bins).astype(int), n_bins - 1)


def expected_calibration_error(y_true: ArrayLike, proba: ArrayLike, classes: Sequence[Any], n_bins: int = N_BINS) -> float:
    """Top-label ECE of a probability matrix: the project's one ECE
    (:func:`include.modelwatch.monitoring.performance.expected_calibration_error`) applied to
    the top-label confidence and whether the top label is correct."""
    from include.modelwatch.monitoring.performance import expected_calibration_error as ece_from_confidence

    p = _proba_matrix(proba, "proba", len(classes))
    y_idx = _label_index(y_true, classes, p.shape[0])
    ece = ece_from_confidence(p.max(axis=1), p.argmax(axis=1) == y_idx, n_bins)
    if ece is None:
        raise ValueError("expected_calibration_error needs at least one row")
    return float(ece)


def multiclass_brier(y_true: ArrayLike, proba: ArrayLike, classes: Sequence[Any]) -> float:
    """Mean over rows of sum_k (p_k - 1[y = k])^2; 0 is perfect, 2 the worst."""
    p = _proba_matrix(proba, "proba", len(classes))
    y_idx = _label_index(y_true, classes, p.shape[0])
    onehot = np.zeros_like(p)
    onehot[np.arange(p.shape[0]), y_idx] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def _label_index(y_true: ArrayLike, classes: Sequence[Any], n: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise ValueError(f"y_true must be 1-D with {n} rows, got shape {y.shape}")
    lookup = {c: i for i, c in enumerate(classes)}
    if len(lookup) != len(classes):
        raise ValueError("classes must be unique")
    try:
        return np.array([lookup[v.item() if isinstance(v, np.generic) else v] for v in y], dtype=int)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} not in classes {list(classes)}") from None


def calibration_gate(
    y_true: ArrayLike,
    proba: ArrayLike,
    classes: Sequence[Any],
    max_ece: float = 0.08,
    max_brier: float | None = None,
    band: float = BORDERLINE_BAND,
) -> GateResult:
    """Calibration of the candidate's probabilities (columns ordered as ``classes``).

    ECE: top-label, 10 equal-width bins [k/10, (k+1)/10). Brier: multiclass
    (sum over classes, range [0, 2]). ``max_brier=None`` means the Brier score
    of an uninformative uniform forecast, ``1 - 1/K`` (0.667 for three classes):
    the candidate must do better than knowing nothing. Graded with the usage
    rule against ``max_ece`` and ``max_brier``.
    """
    _check_band(band)
    k = len(classes)
    if k < 2:
        raise ValueError("calibration_gate needs at least two classes")
    limit_brier = (1.0 - 1.0 / k) if max_brier is None else float(max_brier)
    ece = expected_calibration_error(y_true, proba, classes)
    brier = multiclass_brier(y_true, proba, classes)
    checks = [
        _check("ece", ece, max_ece, _usage_max(ece, max_ece), band, f"ECE {ece:.4f} (max {max_ece:g})"),
        _check("brier", brier, limit_brier, _usage_max(brier, limit_brier), band,
               f"Brier {brier:.4f} (max {limit_brier:.4g})"),
    ]
    return _combine("calibration", checks, {"n": int(np.asarray(y_true).shape[0]), "n_bins": N_BINS})


# --------------------------------------------------------------------------- stability


def psi(expected: ArrayLike, actual: ArrayLike, n_bins: int = N_BINS, eps: float = PSI_EPS) -> float:
    """Population stability index of values in [0, 1] over equal-width bins.

    ``sum (a - e) * ln(a / e)`` with bin shares floored at ``eps``.
    """
    e_vals = np.asarray(expected, dtype=float)
    a_vals = np.asarray(actual, dtype=float)
    if e_vals.size == 0 or a_vals.size == 0:
        raise ValueError("psi needs non-empty samples")
    e = np.bincount(_bin_index(e_vals, n_bins), minlength=n_bins) / e_vals.size
    a = np.bincount(_bin_index(a_vals, n_bins), minlength=n_bins) / a_vals.size
    e = np.maximum(e, eps)
    a = np.maximum(a, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def stability_gate(
    champion_proba: ArrayLike,
    candidate_proba: ArrayLike,
    max_label_flip: float = 0.35,
    max_psi: float = 0.25,
    band: float = BORDERLINE_BAND,
) -> GateResult:
    """How much the candidate's signals differ from the champion's on the same rows.

    Label flip = share of rows whose argmax class differs. PSI compares the
    top-label confidence (row max) of the candidate with the champion's
    (expected), 10 equal-width bins, empty shares floored at 1e-4. Graded
    with the usage rule against ``max_label_flip`` and ``max_psi``.
    """
    _check_band(band)
    champ = _proba_matrix(champion_proba, "champion_proba")
    cand = _proba_matrix(candidate_proba, "candidate_proba", champ.shape[1])
    if cand.shape != champ.shape:
        raise ValueError(f"champion_proba and candidate_proba shapes differ: {champ.shape} vs {cand.shape}")
    flip = float(np.mean(champ.argmax(axis=1) != cand.argmax(axis=1)))
    value_psi = psi(champ.max(axis=1), cand.max(axis=1))
    checks = [
        _check("label_flip", flip, max_label_flip, _usage_max(flip, max_label_flip), band,
               f"label flip share {flip:.4f} (max {max_label_flip:g})"),
        _check("confidence_psi", value_psi, max_psi, _usage_max(value_psi, max_psi), band,
               f"confidence PSI {value_psi:.4f} (max {max_psi:g})"),
    ]
    return _combine("stability", checks, {"n": int(champ.shape[0])})


# --------------------------------------------------------------------------- data quality


def data_quality_gate(
    n_rows: int,
    rows_per_class: Mapping[str, int],
    null_share: float,
    min_rows: int = 500,
    min_class_share: float = 0.05,
    max_null_share: float = 0.01,
    band: float = BORDERLINE_BAND,
) -> GateResult:
    """Is the training set big, balanced and complete enough?

    Checks: ``n_rows >= min_rows``; the rarest class share (class count / sum
    of ``rows_per_class``; list expected classes with 0 to have them checked)
    ``>= min_class_share``; ``null_share <= max_null_share``. Graded with the
    usage rule (e.g. 550 rows vs 500 minimum -> usage 0.91 -> borderline).
    """
    _check_band(band)
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if any(v < 0 for v in rows_per_class.values()):
        raise ValueError("rows_per_class counts must be >= 0")
    if not 0.0 <= null_share <= 1.0:
        raise ValueError(f"null_share must be in [0, 1], got {null_share}")
    labelled = sum(rows_per_class.values())
    checks = [
        _check("rows", n_rows, min_rows, _usage_min(n_rows, min_rows), band, f"{n_rows} rows (min {min_rows})"),
    ]
    shares = {k: (v / labelled if labelled else 0.0) for k, v in rows_per_class.items()}
    if shares:
        rarest = min(shares, key=lambda k: (shares[k], str(k)))
        share = shares[rarest]
        checks.append(_check(
            "class_share", share, min_class_share, _usage_min(share, min_class_share), band,
            f"rarest class {rarest!r} share {share:.4f} (min {min_class_share:g})",
        ))
    else:
        checks.append(_Check("class_share", 0.0, float(min_class_share), math.inf, "fail", "no class counts given"))
    checks.append(_check(
        "null_share", null_share, max_null_share, _usage_max(null_share, max_null_share), band,
        f"null share {null_share:.4f} (max {max_null_share:g})",
    ))
    return _combine("data_quality", checks, {"class_shares": shares})


# --------------------------------------------------------------------------- summary


def run_gates(results: Sequence[GateResult]) -> GateSummary:
    """Fold gate results: any fail -> 'reject'; else any borderline -> 'review';
    else 'deploy'. No results at all -> 'review' (nothing was validated)."""
    for r in results:
        if r.status not in STATUSES:
            raise ValueError(f"gate {r.name!r} has unknown status {r.status!r}")
    failing = tuple(r.name for r in results if r.status == "fail")
    borderline = tuple(r.name for r in results if r.status == "borderline")
    passed = tuple(r.name for r in results if r.status == "pass")
    if failing:
        status, msg = "reject", f"failed gates: {', '.join(failing)}"
    elif not results:
        status, msg = "review", "no gate results"
    elif borderline:
        status, msg = "review", f"borderline gates: {', '.join(borderline)}"
    else:
        status, msg = "deploy", f"all {len(passed)} gates passed"
    return GateSummary(status, failing, borderline, passed, msg)
