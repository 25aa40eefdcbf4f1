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
Limits and tolerances must be finite numbers >= 0 (a ValueError names the
argument otherwise); a zero upper limit allows nothing above zero, a zero
lower limit requires nothing.
A gate is the worst of its checks; its ``value``/``threshold`` are the
observed value and limit of the check with the highest usage (the binding
one, named in ``evidence["binding"]``), and ``evidence["checks"]`` has all.

One vocabulary: the Brier score, label indices and finite-or-None come from
:mod:`include.modelwatch.vocabulary`; the stability PSI is the drift monitor's
(:func:`~include.modelwatch.monitoring.drift.psi_from_counts` on
:func:`~include.modelwatch.monitoring.drift.bin_counts`), so the stability
gate's ``max_psi = 0.25`` and the drift threshold 0.25 mean the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from include.modelwatch.monitoring.drift import bin_counts, psi_from_counts, quantile_edges
from include.modelwatch.vocabulary import finite_or_none, label_to_index
from include.modelwatch.vocabulary import multiclass_brier as _brier_score

STATUSES: tuple[str, ...] = ("pass", "borderline", "fail")
_STATUS_RANK = {s: i for i, s in enumerate(STATUSES)}

#: Fraction of an allowance, just below the limit, that is graded 'borderline'.
BORDERLINE_BAND = 0.2
#: Number of confidence bins: equal-width for ECE, reference quantiles for the stability PSI.
N_BINS = 10


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


class _Check(NamedTuple):
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


def _check_limits(**limits: Any) -> None:
    """Every limit/tolerance a finite number >= 0, else a ValueError naming it."""
    for name, value in limits.items():
        number = finite_or_none(value) if isinstance(value, (int, float)) else None  # not "0.1", not True
        if number is None or number < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


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
        raise ValueError(
            "y_true, champion_pred, candidate_pred must be 1-D of equal length; "
            f"got {y.shape}, {champ.shape}, {cand.shape}"
        )
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
    return GateResult(
        "performance", status, delta, float(min_improvement), evidence, f"performance {status}: {why}; {summary}"
    )


# --------------------------------------------------------------------------- business

BUSINESS_KEYS: tuple[str, ...] = ("profit_factor", "sharpe", "max_drawdown")


def _metric(metrics: Mapping[str, Any], key: str, allow_inf: bool = False) -> float | None:
    """``finite_or_none`` of ``metrics[key]``; with ``allow_inf`` also +inf (a profit factor without losses)."""
    v = metrics.get(key)
    if allow_inf and isinstance(v, (int, float)) and v == math.inf:
        return math.inf
    return finite_or_none(v)


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
    _check_limits(pf_tolerance=pf_tolerance, sharpe_tolerance=sharpe_tolerance, max_dd_limit=max_dd_limit)
    needed = [("candidate", candidate_metrics, k) for k in BUSINESS_KEYS]
    if champion_metrics is not None:
        needed += [("champion", champion_metrics, k) for k in ("profit_factor", "sharpe")]
    missing = [f"{who}.{k}" for who, m, k in needed if _metric(m, k, allow_inf=(k == "profit_factor")) is None]
    if missing:
        return GateResult(
            "business",
            "fail",
            None,
            None,
            {"missing": missing},
            f"business fail: missing or non-numeric metrics {', '.join(missing)}",
        )

    cand_pf = _metric(candidate_metrics, "profit_factor", allow_inf=True)
    cand_sh = _metric(candidate_metrics, "sharpe")
    cand_dd = abs(_metric(candidate_metrics, "max_drawdown"))  # type: ignore[arg-type]
    checks: list[_Check] = []
    if champion_metrics is not None:
        champ_pf = _metric(champion_metrics, "profit_factor", allow_inf=True)
        champ_sh = _metric(champion_metrics, "sharpe")
        assert cand_pf is not None and champ_pf is not None and cand_sh is not None and champ_sh is not None
        pf_short = 0.0 if cand_pf >= champ_pf else champ_pf - cand_pf
        sh_short = max(0.0, champ_sh - cand_sh)
        checks.append(
            _check(
                "profit_factor",
                pf_short,
                pf_tolerance,
                _usage_max(pf_short, pf_tolerance),
                band,
                f"profit factor {cand_pf:.3f} vs champion {champ_pf:.3f} "
                f"(shortfall {pf_short:.3f}, tolerance {pf_tolerance:g})",
            )
        )
        checks.append(
            _check(
                "sharpe",
                sh_short,
                sharpe_tolerance,
                _usage_max(sh_short, sharpe_tolerance),
                band,
                f"Sharpe {cand_sh:.3f} vs champion {champ_sh:.3f} "
                f"(shortfall {sh_short:.3f}, tolerance {sharpe_tolerance:g})",
            )
        )
    checks.append(
        _check(
            "max_drawdown",
            cand_dd,
            max_dd_limit,
            _usage_max(cand_dd, max_dd_limit),
            band,
            f"max drawdown {cand_dd:.3f} (limit {max_dd_limit:g})",
        )
    )
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


def _label_index(y_true: ArrayLike, classes: Sequence[Any], n: int) -> np.ndarray:
    """Indices of ``y_true`` in ``classes`` (the vocabulary's ``label_to_index``, labels compared as text)."""
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise ValueError(f"y_true must be 1-D with {n} rows, got shape {y.shape}")
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError(f"classes must be unique, got {list(classes)}")
    return label_to_index((str(v) for v in y.tolist()), names, what="y_true")


def expected_calibration_error(
    y_true: ArrayLike, proba: ArrayLike, classes: Sequence[Any], n_bins: int = N_BINS
) -> float:
    """Top-label ECE of a probability matrix: the project's one ECE
    (:func:`include.modelwatch.monitoring.performance.expected_calibration_error`) applied to
    the top-label confidence and whether the top label is correct."""
    from include.modelwatch.monitoring.performance import expected_calibration_error as ece_from_confidence

    p = _proba_matrix(proba, "proba", len(classes))
    y_idx = _label_index(y_true, classes, p.shape[0])
    ece = ece_from_confidence(p.max(axis=1), p.argmax(axis=1) == y_idx, n_bins)
    assert ece is not None  # _proba_matrix refused an empty matrix above; ECE is None only for no rows
    return ece


def multiclass_brier(y_true: ArrayLike, proba: ArrayLike, classes: Sequence[Any]) -> float:
    """Mean over rows of sum_k (p_k - 1[y = k])^2; 0 is perfect, 2 the worst
    (the vocabulary's ``multiclass_brier`` after checking the matrix and labels)."""
    p = _proba_matrix(proba, "proba", len(classes))
    return _brier_score(p, _label_index(y_true, classes, p.shape[0]))


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
    of an uninformative uniform forecast, ``1 - 1/K`` (0.667 for three classes,
    0.5 for two): the candidate must do better than knowing nothing. Graded with
    the usage rule against ``max_ece`` and ``max_brier``.
    """
    _check_band(band)
    k = len(classes)
    if k < 2:
        raise ValueError(f"classes: calibration_gate needs at least two classes, got {list(classes)}")
    limit_brier = (1.0 - 1.0 / k) if max_brier is None else max_brier
    _check_limits(max_ece=max_ece, max_brier=limit_brier)
    ece = expected_calibration_error(y_true, proba, classes)
    brier = multiclass_brier(y_true, proba, classes)
    checks = [
        _check("ece", ece, max_ece, _usage_max(ece, max_ece), band, f"ECE {ece:.4f} (max {max_ece:g})"),
        _check(
            "brier",
            brier,
            limit_brier,
            _usage_max(brier, limit_brier),
            band,
            f"Brier {brier:.4f} (max {limit_brier:.4g})",
        ),
    ]
    return _combine("calibration", checks, {"n": int(np.asarray(y_true).shape[0]), "n_bins": N_BINS})


# --------------------------------------------------------------------------- stability


def reference_edges(reference: ArrayLike, n_bins: int = N_BINS) -> np.ndarray:
    """Inner bin edges at the ``i / n_bins`` quantiles of ``reference``, duplicates
    collapsed (the drift monitor's numeric binning). A constant reference gets
    ``[c, nextafter(c, +inf)]``, so any departure from ``c`` lands in an outer bin."""
    ref = np.sort(np.asarray(reference, dtype=float).ravel())
    if ref.size == 0 or not np.all(np.isfinite(ref)):
        raise ValueError("reference must be a non-empty array of finite values")
    return quantile_edges(ref, n_bins)


def confidence_psi(reference: ArrayLike, current: ArrayLike, n_bins: int = N_BINS) -> float:
    """PSI of ``current`` against ``reference`` over the reference's quantile bins:
    :func:`reference_edges`, counted with the drift monitor's ``bin_counts`` and
    scored with its ``psi_from_counts`` (proportions plus ``PSI_EPSILON``)."""
    edges = reference_edges(reference, n_bins)
    return psi_from_counts(
        bin_counts(np.asarray(reference, dtype=float).ravel(), edges),
        bin_counts(np.asarray(current, dtype=float).ravel(), edges),
    )


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
    (reference) by :func:`confidence_psi`: the drift monitor's PSI over the
    champion's 10 quantile bins, so ``max_psi`` is on the drift scale. Graded
    with the usage rule against ``max_label_flip`` and ``max_psi``.
    """
    _check_band(band)
    _check_limits(max_label_flip=max_label_flip, max_psi=max_psi)
    champ = _proba_matrix(champion_proba, "champion_proba")
    cand = _proba_matrix(candidate_proba, "candidate_proba", champ.shape[1])
    if cand.shape != champ.shape:
        raise ValueError(f"champion_proba and candidate_proba shapes differ: {champ.shape} vs {cand.shape}")
    flip = float(np.mean(champ.argmax(axis=1) != cand.argmax(axis=1)))
    value_psi = confidence_psi(champ.max(axis=1), cand.max(axis=1))
    checks = [
        _check(
            "label_flip",
            flip,
            max_label_flip,
            _usage_max(flip, max_label_flip),
            band,
            f"label flip share {flip:.4f} (max {max_label_flip:g})",
        ),
        _check(
            "confidence_psi",
            value_psi,
            max_psi,
            _usage_max(value_psi, max_psi),
            band,
            f"confidence PSI {value_psi:.4f} (max {max_psi:g})",
        ),
    ]
    return _combine("stability", checks, {"n": int(champ.shape[0]), "psi_bins": "champion quantiles"})


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
    _check_limits(min_rows=min_rows, min_class_share=min_class_share, max_null_share=max_null_share)
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
        checks.append(
            _check(
                "class_share",
                share,
                min_class_share,
                _usage_min(share, min_class_share),
                band,
                f"rarest class {rarest!r} share {share:.4f} (min {min_class_share:g})",
            )
        )
    else:
        checks.append(_Check("class_share", 0.0, float(min_class_share), math.inf, "fail", "no class counts given"))
    checks.append(
        _check(
            "null_share",
            null_share,
            max_null_share,
            _usage_max(null_share, max_null_share),
            band,
            f"null share {null_share:.4f} (max {max_null_share:g})",
        )
    )
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
