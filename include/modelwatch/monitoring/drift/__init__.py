"""Feature drift engine: reference profiles, exact per-feature tests, quiet decisions.

Pure numpy/scipy; no Airflow, no database. Modules: ``config`` (DriftConfig and
constants), ``stats`` (binning, PSI/KL/JS, KS, Wasserstein, chi-square, BH),
``profile`` (reference profile and reference null), ``results`` (per-feature
and window results), ``evaluate`` (row and binned mode, the decision),
``hysteresis``, ``concept`` (concept drift from matured outcomes), ``alerting``
(the task's pure decisions: window mode, verdict, alert plan) and
``store`` (the drift task's SQL). This package re-exports the public API. The pieces:

* :func:`build_reference_profile` - computed once per model version from its
  training/validation data; a JSON-serializable dict (stored in
  ``model_versions.reference_profile``). :func:`profile_to_json` /
  :func:`profile_from_json` round-trip it exactly (floats are written with
  ``repr``; NaN/inf never appear - they are stored as ``null``).
* Per-feature tests against a current window: PSI, KL(current||reference) and
  Jensen-Shannon distance on the reference-quantile bins, two-sample
  Kolmogorov-Smirnov (statistic from one merge with the stored sorted
  reference; p-value from ``scipy.stats.ks_2samp``, equal to its default
  ``method='auto'``),
  Wasserstein-1 (identical to ``scipy.stats.wasserstein_distance``) and its
  normalized version, two-sample chi-square (homogeneity, equal to
  ``scipy.stats.chi2_contingency(correction=False)``) for categoricals.
* :func:`evaluate_window` - one entry point. A feature is ``drifted`` only when
  its primary p-value (KS for numeric, chi-square for categorical) survives
  Benjamini-Hochberg at ``fdr_q`` across all features of the window AND a
  practical effect size crosses its threshold (PSI, or for numerics the
  Wasserstein distance in robust reference sigmas, IQR / 1.349). Huge windows with
  negligible shifts are therefore not flagged; tiny windows rarely reach
  significance.
* :class:`Hysteresis` / :func:`update_alert_state` - N-of-M firing, K-clean
  resolving.
* :func:`psi_from_counts`, :func:`kl_from_counts`, :func:`js_from_counts` - the
  same metrics from bin counts computed elsewhere (e.g. PostgreSQL
  ``width_bucket``).

Binning convention (identical to PostgreSQL ``width_bucket(x, edges)``)
------------------------------------------------------------------------
A numeric feature stores ``edges`` = the sorted, de-duplicated *inner* bin
edges ``e[0] < e[1] < ... < e[k-1]``; there are ``k + 1`` bins and the outer
ones are open::

    bin 0      : x < e[0]                     (-inf, e[0])
    bin i      : e[i-1] <= x < e[i]           [e[i-1], e[i])   for 1 <= i <= k-1
    bin k      : x >= e[k-1]                  [e[k-1], +inf)

i.e. ``bin = numpy.searchsorted(edges, x, side='right')`` (see :func:`bin_index`),
which is exactly what ``width_bucket(x, edges_array)`` returns in PostgreSQL for
a sorted ``float8[]`` threshold array. Non-finite values (NULL, NaN, +/-inf) are
excluded from every distribution test; in SQL filter them out first, e.g.
``WHERE x IS NOT NULL AND x NOT IN ('NaN'::float8, 'Infinity', '-Infinity')``,
then ``SELECT width_bucket(x, :edges) AS b, count(*) ... GROUP BY b`` and pass
the result through :func:`counts_from_buckets`.

Reference null: thresholds that know the reference's own variation
----------------------------------------------------------------------
Trading features are autocorrelated (a 63-day volatility moves slowly), so a
window of a few dozen consecutive rows differs from an eight-year reference
far more than an i.i.d. sample would, and PSI on ~40 rows is inflated by
empty bins. A KS p-value cannot see either. So :func:`build_reference_profile`
also slides contiguous windows of ``NULL_WINDOW_SIZES`` rows over the
reference *in its given (time) order* and stores, per feature and size, the
``NULL_QUANTILE`` (99th percentile) of their PSI and normalized Wasserstein
distance to the whole reference (categoricals: PSI and the largest change of
a level's share). At evaluation the effect-size threshold of a feature is
``max(configured threshold, reference null at the window's size)`` (log-log
interpolation between sizes; above the largest measured size the null is
scaled down as ``1/sqrt(n)`` for W and ``1/n`` for PSI). A window therefore
drifts only if it is significant (BH), beyond the configured effect size and
more unusual than 99% of the reference's own windows of that size. Large
windows are governed by the configured thresholds, small windows by the null.

Smoothing
---------
PSI and KL use proportions with :data:`PSI_EPSILON` (1e-4) *added* to every
bin proportion of both distributions (no renormalization; both vectors get the
same total so PSI and KL stay >= 0). JS is computed on the raw proportions (it
is finite with empty bins) and equals ``scipy.spatial.distance.jensenshannon(p,
q, base=2)``. Natural logarithms (nats) are used for PSI and KL.
"""

from __future__ import annotations

from include.modelwatch.monitoring.drift.alerting import (
    DQ_SAMPLE_ROWS,
    AlertPlan,
    Verdict,
    WindowMode,
    alert_plan,
    result_kind,
    window_mode,
    window_verdict,
)
from include.modelwatch.monitoring.drift.concept import (
    CONCEPT_AUC_DELTA,
    CONCEPT_BOOTSTRAP,
    CONCEPT_ERROR_DELTA,
    CONCEPT_MIN_ROWS,
    concept_rows,
)
from include.modelwatch.monitoring.drift.config import (
    ALERT_STATES,
    FINE_BINS,
    KS_MAX_EXACT_N,
    LEVELS,
    NULL_MAX_WINDOWS,
    NULL_QUANTILE,
    NULL_WINDOW_SIZES,
    PARALLEL_MIN_ROWS,
    PROFILE_SCHEMA_VERSION,
    PSI_EPSILON,
    QUANTILE_LEVELS,
    DriftConfig,
)
from include.modelwatch.monitoring.drift.evaluate import evaluate_binned, evaluate_window
from include.modelwatch.monitoring.drift.hysteresis import Hysteresis, HysteresisResult, update_alert_state
from include.modelwatch.monitoring.drift.profile import (
    build_reference_profile,
    normalize_importance,
    null_pvalue,
    null_threshold,
    profile_from_json,
    profile_to_json,
    quantile_edges,
    reference_spread,
)
from include.modelwatch.monitoring.drift.results import FeatureResult, WindowResult
from include.modelwatch.monitoring.drift.stats import (
    benjamini_hochberg,
    bin_counts,
    bin_index,
    chi_square,
    counts_from_buckets,
    fmt_number,
    js_from_counts,
    kl_from_counts,
    ks_2samp_sorted,
    ks_pvalue,
    psi_from_counts,
    severity_score,
    wasserstein_sorted,
)

__all__ = [
    "ALERT_STATES",
    "CONCEPT_AUC_DELTA",
    "CONCEPT_BOOTSTRAP",
    "CONCEPT_ERROR_DELTA",
    "CONCEPT_MIN_ROWS",
    "FINE_BINS",
    "KS_MAX_EXACT_N",
    "LEVELS",
    "NULL_MAX_WINDOWS",
    "NULL_QUANTILE",
    "NULL_WINDOW_SIZES",
    "PARALLEL_MIN_ROWS",
    "PROFILE_SCHEMA_VERSION",
    "PSI_EPSILON",
    "QUANTILE_LEVELS",
    "DriftConfig",
    "FeatureResult",
    "WindowResult",
    "Hysteresis",
    "HysteresisResult",
    "build_reference_profile",
    "profile_to_json",
    "profile_from_json",
    "normalize_importance",
    "quantile_edges",
    "reference_spread",
    "bin_index",
    "bin_counts",
    "counts_from_buckets",
    "psi_from_counts",
    "kl_from_counts",
    "js_from_counts",
    "ks_2samp_sorted",
    "ks_pvalue",
    "wasserstein_sorted",
    "chi_square",
    "benjamini_hochberg",
    "severity_score",
    "fmt_number",
    "null_threshold",
    "null_pvalue",
    "evaluate_window",
    "evaluate_binned",
    "update_alert_state",
    "concept_rows",
    "DQ_SAMPLE_ROWS",
    "AlertPlan",
    "Verdict",
    "WindowMode",
    "alert_plan",
    "result_kind",
    "window_mode",
    "window_verdict",
]
