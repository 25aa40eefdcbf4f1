"""Results of one window: per-feature outcomes and the model-level verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from include.modelwatch.monitoring.drift.config import DriftConfig
from include.modelwatch.monitoring.drift.stats import fmt_number
from include.modelwatch.vocabulary import finite_or_none


@dataclass(frozen=True)
class FeatureResult:
    """Outcome of one feature in one window.

    ``status``: 'ok'; 'no_data' (column missing or no finite/non-null value in
    the window - a data problem, no statistics); 'no_reference' (the profile
    has no finite reference values). ``test`` is the primary test ('ks' or
    'chi2'); ``statistic``/``p_value`` are its values, ``p_adjusted`` the BH
    adjusted p-value. Metrics that do not apply are None. ``window_bins``: the
    window's counts per reference bin (numeric: the bins of the profile's PSI
    ``edges``, ``len(edges) + 1``; categorical: the profile's levels in order,
    then ``unseen_levels``), so a page can overlay the window on the reference
    without reading the data again.
    """

    feature: str
    kind: str  # 'numeric' | 'categorical'
    status: str  # 'ok' | 'no_data' | 'no_reference'
    test: str  # 'ks' | 'chi2'
    statistic: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    significant: bool = False
    psi: float | None = None
    kl: float | None = None
    js: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    chi2_dof: int | None = None
    share_shift: float | None = None
    p_null: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    severity: float = 0.0
    level: str = "none"
    drifted: bool = False
    n_current: int = 0
    n_null: int = 0
    n_nonfinite: int = 0
    importance: float = 0.0
    unseen_levels: tuple[str, ...] = ()
    window_bins: tuple[int, ...] = ()
    note: str = ""

    def metrics(self) -> dict[str, float | None]:
        """Metric name -> value for the tests that apply to this feature."""
        if self.status != "ok":
            return {}
        if self.kind == "numeric":
            return {
                "ks": self.ks,
                "psi": self.psi,
                "kl": self.kl,
                "js": self.js,
                "wasserstein": self.wasserstein,
                "wasserstein_norm": self.wasserstein_norm,
            }
        return {"chi2": self.chi2, "psi": self.psi, "kl": self.kl, "js": self.js, "share_shift": self.share_shift}


@dataclass(frozen=True)
class WindowResult:
    """All features of one window plus the model-level verdict.

    ``drift_score`` in [0, 1] = importance-weighted mean of feature
    severities / 100 over the features with status 'ok' (weights renormalized
    over them); ``drift_score_100`` = 100 x that. ``level`` = 'critical' if a
    drifted feature crossed a critical threshold, 'warning' if any feature
    drifted, else 'none' (and 'none' whenever ``drift_score <
    config.min_model_score``); ``drifted`` = ``level != 'none'`` - the boolean
    to feed the hysteresis.
    """

    features: tuple[FeatureResult, ...]
    n_rows: int
    drift_score: float
    level: str
    drifted: bool
    config: DriftConfig = field(default_factory=DriftConfig)

    @property
    def drift_score_100(self) -> float:
        """Model drift score on a 0-100 scale."""
        return 100.0 * self.drift_score

    @property
    def n_drifted(self) -> int:
        """Number of drifted features."""
        return sum(1 for f in self.features if f.drifted)

    @property
    def drifted_features(self) -> list[FeatureResult]:
        """Drifted features, most severe first."""
        return sorted((f for f in self.features if f.drifted), key=lambda f: (-f.severity, f.p_value or 0.0, f.feature))

    @property
    def no_data_features(self) -> list[str]:
        """Features that could not be evaluated (status != 'ok')."""
        return [f.feature for f in self.features if f.status != "ok"]

    def feature(self, name: str) -> FeatureResult:
        """The result of feature ``name`` (KeyError if absent)."""
        for f in self.features:
            if f.feature == name:
                return f
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        """JSON-serializable window summary (for ``drift_windows.summary``)."""
        return {
            "n_rows": self.n_rows,
            "drift_score": self.drift_score,
            "level": self.level,
            "drifted": self.drifted,
            "n_features": len(self.features),
            "n_drifted": self.n_drifted,
            "drifted_features": [f.feature for f in self.drifted_features],
            "no_data_features": self.no_data_features,
            "config": self.config.to_dict(),
        }

    def summary_lines(self, top: int = 5) -> list[str]:
        """Human-readable log lines: the verdict, then up to ``top`` drifted
        features (or, if none drifted, the highest non-zero severities) with
        their statistics, then features without data."""
        cfg = self.config
        lines = [
            f"drift score {self.drift_score:.3f} ({self.drift_score_100:.1f}/100), level={self.level}, "
            f"{self.n_drifted}/{len(self.features)} features drifted, {self.n_rows} rows "
            f"(BH q={cfg.fdr_q:g}, PSI>={cfg.psi_warning:g}/{cfg.psi_critical:g}, "
            f"W/sd>={cfg.wasserstein_warning:g}/{cfg.wasserstein_critical:g})"
        ]
        shown = self.drifted_features
        if not shown:
            lines.append("no feature drifted")
            shown = sorted((f for f in self.features if f.severity > 0), key=lambda f: -f.severity)
        for f in shown[:top]:
            tag = f"DRIFTED {f.level}" if f.drifted else "not drifted"
            if f.kind == "numeric":
                detail = (
                    f"KS D={fmt_number(f.ks, '.4f')} p={fmt_number(f.ks_pvalue)} (BH {fmt_number(f.p_adjusted)}) "
                    f"PSI={fmt_number(f.psi, '.4f')} W/sd={fmt_number(f.wasserstein_norm, '.3f')} "
                    f"JS={fmt_number(f.js, '.4f')}"
                )
            else:
                detail = (
                    f"chi2={fmt_number(f.chi2, '.4g')} dof={f.chi2_dof} p={fmt_number(f.chi2_pvalue)} "
                    f"(BH {fmt_number(f.p_adjusted)}) PSI={fmt_number(f.psi, '.4f')} "
                    f"JS={fmt_number(f.js, '.4f')}"
                )
                if f.unseen_levels:
                    detail += f" unseen={list(f.unseen_levels[:5])}"
            lines.append(f"  {f.feature}: {detail} severity={f.severity:.1f} importance={f.importance:.3f} {tag}")
        bad = [f for f in self.features if f.status != "ok"]
        if bad:
            lines.append(
                "not evaluated: " + ", ".join(f"{f.feature} ({f.status}{': ' + f.note if f.note else ''})" for f in bad)
            )
        return lines

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows for the ``drift_results`` table, one per (feature, test).

        Keys: ``feature, test, statistic, p_value, severity, drifted,
        n_current, details``. Tests: numeric 'ks', 'psi', 'kl', 'js',
        'wasserstein', 'wasserstein_norm'; categorical 'chi2', 'psi', 'kl',
        'js'. ``p_value`` is set on the primary row ('ks'/'chi2') only;
        ``severity``/``drifted`` repeat the feature's verdict on every row.
        A feature without data gives one primary row with statistic/p_value
        None and ``details.status`` = 'no_data'/'no_reference'. ``details``
        (JSON) holds status, kind, level, p_adjusted, n_null, n_nonfinite,
        importance and (categoricals) unseen levels; the 'psi' row's details
        also hold ``window_bins`` (see :class:`FeatureResult`).
        """
        rows: list[dict[str, Any]] = []
        for f in self.features:
            details: dict[str, Any] = {
                "status": f.status,
                "kind": f.kind,
                "level": f.level,
                "p_adjusted": finite_or_none(f.p_adjusted),
                "n_null": f.n_null,
                "n_nonfinite": f.n_nonfinite,
                "importance": f.importance,
            }
            if f.unseen_levels:
                details["unseen_levels"] = list(f.unseen_levels)
            if f.chi2_dof is not None:
                details["dof"] = f.chi2_dof
            if f.thresholds:
                details["thresholds"] = dict(f.thresholds)
            if f.p_null is not None:
                details["p_null"] = finite_or_none(f.p_null)
            if f.note:
                details["note"] = f.note
            metrics = f.metrics() or {f.test: None}
            for test, value in metrics.items():
                row_details = dict(details)
                if test == "psi" and f.window_bins:
                    row_details["window_bins"] = list(f.window_bins)
                rows.append(
                    {
                        "feature": f.feature,
                        "test": test,
                        "statistic": finite_or_none(value),
                        "p_value": finite_or_none(f.p_value) if test == f.test else None,
                        "severity": f.severity,
                        "drifted": f.drifted,
                        "n_current": f.n_current,
                        "details": row_details,
                    }
                )
        return rows
