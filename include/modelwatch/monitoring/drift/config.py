"""Drift configuration: the thresholds of the decision and the engine's constants."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

#: Added to every bin/level proportion (reference and current) before PSI and
#: KL, so empty bins give a large but finite contribution. (The chi-square
#: test needs no epsilon: it is a two-sample test on the raw counts.)
PSI_EPSILON: float = 1e-4

#: Version of the dict layout produced by :func:`build_reference_profile`
#: (2 added the per-feature ``null`` block; version-1 profiles still evaluate,
#: with the fixed thresholds only).
PROFILE_SCHEMA_VERSION: int = 2

#: Window sizes (rows) at which the reference's own window-to-reference
#: variation is measured when a profile is built (see "Reference null" above).
NULL_WINDOW_SIZES: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120)
#: Quantile of the reference's windows stored as the null threshold.
NULL_QUANTILE: float = 0.99
#: Contiguous reference windows measured per size (evenly spaced starts).
NULL_MAX_WINDOWS: int = 100
#: Reference-quantile bins stored for the in-database (binned) mode; they
#: include every PSI bin edge, so PSI is identical in both modes.
FINE_BINS: int = 100
#: Windows with at least this many rows evaluate their numeric features in
#: parallel (``DriftConfig.threads``); below it thread start-up costs more.
PARALLEL_MIN_ROWS: int = 20_000

#: Same rule as scipy's ``ks_2samp(method='auto')``: the exact p-value is used
#: when both sample sizes are <= this, else the asymptotic ``kstwo`` one.
KS_MAX_EXACT_N: int = 10_000

#: Quantiles stored in each numeric feature's summary.
QUANTILE_LEVELS: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)

ALERT_STATES: tuple[str, ...] = ("clear", "firing")
LEVELS: tuple[str, ...] = ("none", "warning", "critical")


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift decision. Defaults in brackets.

    * ``fdr_q`` [0.05] - Benjamini-Hochberg false discovery rate across the
      primary p-values of all features of one window.
    * ``psi_warning`` [0.10] / ``psi_critical`` [0.25] - PSI effect-size
      thresholds (predecessor system's defaults); also used for categoricals
      (PSI on level proportions).
    * ``wasserstein_warning`` [0.20] / ``wasserstein_critical`` [0.50] - for
      numerics, Wasserstein-1 distance in robust reference sigmas, IQR / 1.349
      (``profile.robust_scale``; the standard deviation for normal data, so
      Cohen's "small" and "medium" effects, but not inflated by heavy tails).
      A 0.25-sigma mean shift has PSI ~0.06 < 0.1 on 10 quantile bins but
      W/sigma = 0.25, so it is caught; a 1.3x scale change of a Student-t(3)
      feature has W = 0.29 robust sigmas (0.19 standard deviations).
    * ``share_warning`` [0.05] / ``share_critical`` [0.10] - for
      categoricals, the largest absolute change of one level's share (a +0.1
      shift of one of five equal levels has PSI ~0.05, below 0.1, so PSI alone
      would never see it).
    * ``min_rows`` [20] - a feature with fewer usable (finite / non-null)
      current values still gets all its statistics but is not tested: it is
      left out of BH, is never significant or drifted, severity 0, note
      "too few values". (One unseen category in a one-row window would
      otherwise give chi-square ~1e4.)
    * ``sql_counts_min_rows`` [200000] - windows with at least this many rows
      are binned inside PostgreSQL (``width_bucket`` against the stored fine
      edges; see :func:`evaluate_binned`) so only counts leave the database.
    * ``ks_exact_max_n`` [10000] - exact KS p-value when both sample sizes
      are <= this (scipy's ``method='auto'`` rule, so p-values equal scipy's);
      lower it to trade that equality for speed (the exact count costs
      ~25 us per row of the smaller sample).
    * ``threads`` [4] - numeric features of a window with at least
      ``PARALLEL_MIN_ROWS`` (20,000) rows are evaluated by up to this many
      threads (never more than the CPUs); numpy's sorts and merges release
      the GIL, so a large window finishes ~1.8x sooner on 2 cores. Results
      are identical; 1 = one thread.
    * ``min_model_score`` [0.0] - the window is reported as drifted only if
      the importance-weighted drift score is at least this (0 = any drifted
      feature counts).
    * ``fire_n`` [2] of ``fire_m`` [3] - hysteresis: an alert fires when at
      least ``fire_n`` of the last ``fire_m`` windows drifted and the newest
      one did; ``resolve_k`` [3] consecutive clean windows resolve it.
    * ``max_null_share`` [0.05] - the window's data-quality checks accept up
      to this share of missing values per feature (a bad bar scored with a
      NaN feature, ``predictions.data_quality = 'missing_features'``); more
      fails the window's checks.

    When the profile has a reference null (module docstring), a warning
    threshold is raised to the 99th percentile ``q99`` of the reference's own
    windows of the current size, and a critical one to ``2 * q99``.
    Effect size ``e`` of a feature = ``max(psi / psi_crit, wasserstein_norm / w_crit)``
    (categoricals: ``psi`` and ``share_shift / share_crit``) with those
    effective thresholds; severity = ``100 * min(1, e)`` if the feature
    drifted, else 0: a warning threshold maps to severity 40, a critical one
    (and beyond) to 100. The model drift score (0-1) is the importance-
    weighted mean severity / 100, i.e. roughly the share of the model's
    importance that drifted critically: the seed's "drift score > 0.25"
    rule reads it.
    """

    fdr_q: float = 0.05
    psi_warning: float = 0.10
    psi_critical: float = 0.25
    wasserstein_warning: float = 0.20
    wasserstein_critical: float = 0.50
    share_warning: float = 0.05
    share_critical: float = 0.10
    min_rows: int = 20
    ks_exact_max_n: int = KS_MAX_EXACT_N
    threads: int = 4
    sql_counts_min_rows: int = 200_000
    min_model_score: float = 0.0
    fire_n: int = 2
    fire_m: int = 3
    resolve_k: int = 3
    max_null_share: float = 0.05

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ValueError(f"{f.name}: expected an integer, got {value!r}")
                if value < 1:
                    raise ValueError(f"{f.name}: must be >= 1, got {value!r}")
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                    raise ValueError(f"{f.name}: expected a number, got {value!r}")
                if not math.isfinite(float(value)) or value < 0:
                    raise ValueError(f"{f.name}: must be a finite number >= 0, got {value!r}")
        if not 0.0 < self.fdr_q < 1.0:
            raise ValueError(f"fdr_q: must be in (0, 1), got {self.fdr_q!r}")
        if self.min_model_score > 1.0:
            raise ValueError(f"min_model_score: must be in [0, 1], got {self.min_model_score!r}")
        if self.max_null_share > 1.0:
            raise ValueError(f"max_null_share: must be in [0, 1], got {self.max_null_share!r}")
        for warn, crit in (
            ("psi_warning", "psi_critical"),
            ("wasserstein_warning", "wasserstein_critical"),
            ("share_warning", "share_critical"),
        ):
            if getattr(self, warn) <= 0:
                raise ValueError(f"{warn}: must be > 0, got {getattr(self, warn)!r}")
            if getattr(self, crit) < getattr(self, warn):
                raise ValueError(f"{crit}: must be >= {warn} ({getattr(self, crit)!r} < {getattr(self, warn)!r})")
        if self.fire_n > self.fire_m:
            raise ValueError(f"fire_n: must be <= fire_m ({self.fire_n} > {self.fire_m})")

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None) -> DriftConfig:
        """Defaults updated with ``overrides`` (e.g. per-model settings).

        Raises ValueError naming the key for unknown keys or invalid values.
        """
        if overrides is None:
            return cls()
        if not isinstance(overrides, Mapping):
            raise ValueError(f"drift config: expected a mapping, got {type(overrides).__name__}")
        known = {f.name for f in fields(cls)}
        for key in overrides:
            if key not in known:
                raise ValueError(f"{key}: unknown drift config key (known: {', '.join(sorted(known))})")
        return cls(**dict(overrides))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all thresholds (JSON-serializable)."""
        return asdict(self)
