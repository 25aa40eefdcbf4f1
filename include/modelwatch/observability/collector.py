"""The Prometheus collector of ModelWatch's domain state (no Airflow, no in-process state).

:class:`ModelWatchCollector` reads the *current* values from the monitoring database on every scrape
(``sql/dml/metrics_*.sql``, named parameters only), so an exporter restart loses nothing: every number
is a row in PostgreSQL. One scrape opens one connection (:func:`storage.session`), sets a short
``statement_timeout`` and reads everything in one read-only REPEATABLE READ transaction (one snapshot:
the alerts agree with the health rows); each query group runs under a savepoint, so a failing or slow
query drops its own metrics (``modelwatch_scrape_query_success{query}`` 0) and not the others. When the
database cannot be reached the scrape still answers, with ``modelwatch_database_up 0``.

Which series exist:

* per **active model version** (one that holds an alias; retired, rejected and candidate versions are
  not reported): labels ``model``, ``version`` and ``alias``, the version's aliases sorted and
  comma-joined (``champion``; ``challenger,champion`` for a version holding both). The
  ``modelwatch_model_alias_info`` series has one ``alias`` each, to join on;
* live metrics add ``symbol`` and ``timeframe``: ``'*'`` is the version as a whole (all symbols);
* per **model** (every registered model, zeros included): alerts, triggers, training counters;
* the scoring histogram per model version that has scoring batches (``model``, ``version``);
* the active-learning queue per model (every registered model, zeros included): items per ``status``, the
  answered and processed counters; the oldest pending item's age only for a model that has one.

A value that is NULL in the database (no matured outcome yet, an undecidable comparison) is left out,
not exported as NaN. The full table of names is :data:`METRICS` (name, type, labels, meaning, source);
``tests/db/test_prometheus_metrics.py`` checks the collector emits exactly these families.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from include.modelwatch.active_learning.band import STATUSES as ACTIVE_LEARNING_STATUSES
from include.modelwatch.data import storage
from include.modelwatch.loop.alerts import KINDS, SEVERITIES

log = logging.getLogger(__name__)

#: health status -> numeric code (as the statsd gauge and ``performance.HEALTH_CODES``)
HEALTH_CODES: dict[str, int] = {"healthy": 0, "warning": 1, "critical": 2}
#: alert statuses that count as unresolved
ALERT_STATUSES: tuple[str, ...] = ("open", "acknowledged")
#: trigger statuses reported
TRIGGER_STATUSES: tuple[str, ...] = ("pending", "claimed")
#: active-learning statuses a person answered (``labelled_by``/``labelled_at`` set); answered items are never
#: deleted (only pending ones are), so their count only grows
ANSWERED_STATUSES: tuple[str, ...] = ("labelled", "skipped", "processed")
#: upper bounds (seconds) of the scoring-duration histogram; +Inf is added
SCORING_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: default per-statement timeout of a scrape (Prometheus' own scrape timeout defaults to 10 s)
STATEMENT_TIMEOUT_MS = 2000
#: seconds to wait for a connection before reporting the database down
CONNECT_TIMEOUT_S = 3

VERSION_LABELS = ("model", "version", "alias")
LIVE_LABELS = (*VERSION_LABELS, "symbol", "timeframe")


@dataclass(frozen=True)
class MetricDoc:
    """One exported family: what the report and the tests list."""

    name: str  # the family name (counters: without _total; samples add _total, histograms _bucket/_sum/_count)
    kind: str  # gauge | counter | histogram
    labels: tuple[str, ...]
    help: str
    source: str


def _m(name: str, kind: str, labels: Sequence[str], help_: str, source: str) -> MetricDoc:
    return MetricDoc(name, kind, tuple(labels), help_, source)


#: (live metric column, family name, help) of live_performance_daily
LIVE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("win_rate", "modelwatch_win_rate", "Share of trades (BUY/SELL signals) with a positive return, trailing period"),
    ("macro_precision", "modelwatch_precision", "Macro-averaged precision over SELL/HOLD/BUY, trailing period"),
    ("profit_factor", "modelwatch_profit_factor", "Gross profit / gross loss of the signals' trades, trailing period"),
    ("avg_rr", "modelwatch_avg_rr", "Average realized R multiple (reward/risk) per trade, trailing period"),
    ("accuracy", "modelwatch_model_accuracy", "Live accuracy on matured outcomes, trailing period"),
    ("hit_rate", "modelwatch_hit_rate", "Share of directional signals whose direction was right, trailing period"),
    ("max_drawdown", "modelwatch_max_drawdown", "Maximum drawdown of the signals' cumulative return (0..1)"),
    ("sharpe", "modelwatch_sharpe_ratio", "Annualized Sharpe ratio of the daily signal returns, trailing period"),
    ("n", "modelwatch_live_matured_predictions", "Matured predictions the live metrics are computed from"),
)

METRICS: tuple[MetricDoc, ...] = (
    _m("modelwatch_database_up", "gauge", (), "1 if the monitoring database answered this scrape, else 0", "-"),
    _m("modelwatch_scrape_duration_seconds", "gauge", (), "Wall time of this scrape's database reads", "-"),
    _m(
        "modelwatch_scrape_query_success",
        "gauge",
        ("query",),
        "1 if the query group succeeded in this scrape, 0 if it failed (its metrics are missing)",
        "-",
    ),
    _m(
        "modelwatch_model_alias_info",
        "gauge",
        ("model", "version", "alias"),
        "1 per alias a model version holds",
        "model_aliases",
    ),
    _m(
        "modelwatch_model_health_status",
        "gauge",
        VERSION_LABELS,
        "Latest health of the version: 0 healthy, 1 warning, 2 critical",
        "model_health_daily",
    ),
    _m(
        "modelwatch_model_health_state",
        "gauge",
        (*VERSION_LABELS, "state"),
        "Latest health as a state set: 1 for the current state (healthy, warning, critical), 0 for the others",
        "model_health_daily",
    ),
    _m(
        "modelwatch_model_health_window_end_timestamp_seconds",
        "gauge",
        VERSION_LABELS,
        "Window end (as of) of the latest health row, Unix seconds",
        "model_health_daily",
    ),
    _m(
        "modelwatch_model_age_days",
        "gauge",
        VERSION_LABELS,
        "Days from the version's training-data end (train_end) to today (UTC)",
        "model_versions",
    ),
    _m(
        "modelwatch_model_drift_score",
        "gauge",
        VERSION_LABELS,
        "Drift score (0..1, importance-weighted severity) of the newest evaluated drift window",
        "drift_windows",
    ),
    _m(
        "modelwatch_model_drifted_features",
        "gauge",
        VERSION_LABELS,
        "Features that drifted in the newest evaluated drift window",
        "drift_windows",
    ),
    _m(
        "modelwatch_drift_window_end_timestamp_seconds",
        "gauge",
        VERSION_LABELS,
        "End of the newest drift window of any status (evaluated, empty, data_quality_failed), Unix seconds",
        "drift_windows",
    ),
    _m(
        "modelwatch_psi_drift_score",
        "gauge",
        (*VERSION_LABELS, "feature"),
        "PSI of the feature in the newest evaluated drift window",
        "drift_results (kind feature, test psi)",
    ),
    _m(
        "modelwatch_feature_drifted",
        "gauge",
        (*VERSION_LABELS, "feature"),
        "1 if ModelWatch judged the feature drifted in the newest evaluated drift window (significant after "
        "Benjamini-Hochberg and above the effect thresholds and the reference null), else 0",
        "drift_results (kind feature, test psi: drifted)",
    ),
    _m(
        "modelwatch_concept_drift_score",
        "gauge",
        VERSION_LABELS,
        "Concept drift (0..1): highest severity / 100 of the concept tests in the newest window that has them",
        "drift_results (kind concept)",
    ),
    _m(
        "modelwatch_auc_delta",
        "gauge",
        VERSION_LABELS,
        "Live macro one-vs-rest AUC minus the backtest baseline's (negative = worse), newest concept window",
        "drift_results (kind concept, test auc_delta)",
    ),
    _m(
        "modelwatch_error_rate_delta",
        "gauge",
        VERSION_LABELS,
        "Live error rate minus the backtest baseline's (positive = worse), newest concept window",
        "drift_results (kind concept, test error_rate_delta)",
    ),
    _m(
        "modelwatch_concept_drift_window_end_timestamp_seconds",
        "gauge",
        VERSION_LABELS,
        "End of the newest window with concept-drift results, Unix seconds",
        "drift_results (kind concept)",
    ),
    *(_m(name, "gauge", LIVE_LABELS, help_, "live_performance_daily") for _, name, help_ in LIVE_COLUMNS),
    _m(
        "modelwatch_live_performance_window_end_timestamp_seconds",
        "gauge",
        LIVE_LABELS,
        "Window end (as of) of the newest live-metrics snapshot, Unix seconds",
        "live_performance_daily",
    ),
    _m(
        "modelwatch_primary_metric_live",
        "gauge",
        (*VERSION_LABELS, "metric"),
        "Live value of the primary metric in the newest live-vs-backtest comparison",
        "live_vs_backtest_comparison",
    ),
    _m(
        "modelwatch_primary_metric_baseline",
        "gauge",
        (*VERSION_LABELS, "metric"),
        "Backtest baseline of the primary metric in the newest comparison",
        "live_vs_backtest_comparison",
    ),
    _m(
        "modelwatch_primary_metric_degraded",
        "gauge",
        (*VERSION_LABELS, "metric"),
        "1 if the newest comparison declared the primary metric degraded, 0 if not (absent: undecidable)",
        "live_vs_backtest_comparison",
    ),
    _m(
        "modelwatch_open_alerts",
        "gauge",
        ("model", "kind", "severity", "status"),
        "Unresolved alerts (status open or acknowledged) per model, kind and severity",
        "alerts",
    ),
    _m(
        "modelwatch_retraining_triggers",
        "gauge",
        ("model", "status"),
        "Retraining triggers pending (waiting for retrain_gated) or claimed (being retrained)",
        "retraining_triggers",
    ),
    _m(
        "modelwatch_model_training_failures",
        "counter",
        ("model",),
        "Training attempts that failed (a retried job counts each failed attempt)",
        "training_job_outcomes",
    ),
    _m(
        "modelwatch_model_training_successes",
        "counter",
        ("model",),
        "Training attempts that succeeded (a candidate was registered)",
        "training_job_outcomes",
    ),
    _m(
        "modelwatch_rejected_candidates",
        "counter",
        ("model",),
        "Candidate versions rejected by the quality gates or a human (status rejected)",
        "model_versions",
    ),
    _m(
        "modelwatch_scoring_duration_seconds",
        "histogram",
        ("model", "version"),
        "Duration of a scoring batch (one symbol's data interval: champion load, features, predict, write)",
        "scoring_batches",
    ),
    _m(
        "modelwatch_scoring_rows",
        "counter",
        ("model", "version"),
        "Predictions written by the stored scoring batches",
        "scoring_batches",
    ),
    _m(
        "modelwatch_scoring_window_end_timestamp_seconds",
        "gauge",
        ("model", "version"),
        "Newest data-interval end scored, Unix seconds",
        "scoring_batches",
    ),
    _m(
        "modelwatch_scoring_last_batch_timestamp_seconds",
        "gauge",
        ("model", "version"),
        "Wall-clock time the newest scoring batch was written, Unix seconds",
        "scoring_batches",
    ),
    _m(
        "modelwatch_active_learning_items",
        "gauge",
        ("model", "status"),
        "Active-learning queue items per status (pending, labelled, skipped, processed, expired), zero-filled",
        "active_learning_queue",
    ),
    _m(
        "modelwatch_active_learning_answers",
        "counter",
        ("model",),
        "Active-learning items a person answered (labelled, skipped or processed); rate() is the labelling rate",
        "active_learning_queue",
    ),
    _m(
        "modelwatch_active_learning_processed",
        "counter",
        ("model",),
        "Labelled active-learning items a retrain used (status processed)",
        "active_learning_queue",
    ),
    _m(
        "modelwatch_active_learning_oldest_pending_age_days",
        "gauge",
        ("model",),
        "Days from the oldest pending item's bar time to the model's newest prediction's (the data's clock)",
        "active_learning_queue, predictions",
    ),
)
DOCS: dict[str, MetricDoc] = {d.name: d for d in METRICS}

#: query groups, in the order a scrape runs them (``modelwatch_scrape_query_success{query}``)
QUERIES: tuple[str, ...] = ("versions", "live_performance", "feature_psi", "concept_drift", "models", "alerts",
                            "triggers", "scoring", "active_learning")  # fmt: skip


@cache
def _sql(group: str) -> str:
    return storage.read_sql(f"dml/metrics_{group}.sql")


class _Families:
    """The families of one scrape, created from :data:`METRICS` on first use, and the scrape's model list
    (the ``models`` group runs first; alerts and triggers are zero-filled for these models)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}
        self.models: list[str] = []

    def get(self, name: str, **kwargs: Any) -> Any:
        fam = self._by_name.get(name)
        if fam is None:
            doc = DOCS[name]
            cls = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily, "histogram": HistogramMetricFamily}
            fam = cls[doc.kind](name, doc.help, labels=list(doc.labels), **kwargs)
            self._by_name[name] = fam
        return fam

    def add(self, name: str, labels: Sequence[str], value: Any) -> None:
        """Add a sample; a NULL (None) value is left out."""
        if value is None:
            return
        self.get(name).add_metric(list(labels), float(value))

    def all(self) -> list[Metric]:
        return list(self._by_name.values())


def _alias(aliases: Sequence[str] | None) -> str:
    return ",".join(sorted(aliases or ()))


def _version_labels(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(row["model_name"]), str(row["version"]), _alias(row["aliases"]))


class ModelWatchCollector(Collector):
    """Reads ModelWatch's domain state from the monitoring DB on each :meth:`collect`.

    ``uri``: the monitoring DB (default ``AIRFLOW_CONN_MONITORING_DB``, read at scrape time);
    ``opener``: returns a new DB-API connection instead (tests). Never raises from :meth:`collect`.
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        opener: Callable[[], Any] | None = None,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
        buckets: Sequence[float] = SCORING_BUCKETS,
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"scoring buckets must be strictly increasing, got {list(buckets)}")
        self.uri = uri
        self.opener = opener
        self.statement_timeout_ms = int(statement_timeout_ms)
        self.connect_timeout_s = int(connect_timeout_s)
        self.buckets = tuple(float(b) for b in buckets)

    def describe(self) -> list[Metric]:
        """Nothing: registering the collector must not touch the database (names are in :data:`METRICS`)."""
        return []

    def _open(self) -> Any:
        if self.opener is not None:
            return self.opener()
        import psycopg

        kwargs = storage.parse_conn_uri(self.uri or storage.monitoring_uri())
        kwargs.setdefault("connect_timeout", self.connect_timeout_s)
        kwargs.setdefault("application_name", "modelwatch-exporter")
        return storage.client_side(psycopg.connect(**kwargs))

    def _session(self) -> AbstractContextManager[Any]:
        return storage.session(opener=self._open)

    def collect(self) -> Iterator[Metric]:
        t0 = time.perf_counter()
        fam = _Families()
        ok: dict[str, bool] = {}
        up = 0
        try:
            with self._session() as conn:
                import psycopg

                conn.autocommit = False
                conn.read_only = True
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                storage.fetch_dicts(
                    conn,
                    "SELECT set_config('statement_timeout', %(ms)s, true)",
                    {"ms": str(self.statement_timeout_ms)},
                )
                up = 1
                for group in QUERIES:
                    try:
                        with conn.transaction():  # a savepoint: a failed query leaves the snapshot usable
                            params = {"buckets": list(self.buckets)} if group == "scoring" else None
                            rows = storage.fetch_dicts(conn, _sql(group), params)
                        getattr(self, f"_emit_{group}")(fam, rows)
                        ok[group] = True
                    except Exception as exc:  # one query group failing must not take the others down
                        log.warning("modelwatch exporter: query group %s failed: %s", group, exc)
                        ok[group] = False
                conn.rollback()
        except Exception as exc:  # the database is down or refused us: answer with database_up 0
            log.warning("modelwatch exporter: monitoring database unavailable: %s", exc)
            up = 0
        yield from fam.all()
        for group in QUERIES if up else ():
            fam.add("modelwatch_scrape_query_success", (group,), int(ok.get(group, False)))
        if up:
            yield fam.get("modelwatch_scrape_query_success")
        g = GaugeMetricFamily("modelwatch_database_up", DOCS["modelwatch_database_up"].help, value=up)
        yield g
        yield GaugeMetricFamily(
            "modelwatch_scrape_duration_seconds",
            DOCS["modelwatch_scrape_duration_seconds"].help,
            value=time.perf_counter() - t0,
        )

    # ---------------------------------------------------------------- one method per query group

    def _emit_versions(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            labels = _version_labels(r)
            for alias in r["aliases"] or ():
                fam.add("modelwatch_model_alias_info", (labels[0], labels[1], alias), 1)
            status = r["health_status"]
            if status is not None:
                fam.add("modelwatch_model_health_status", labels, HEALTH_CODES[status])
                for state in HEALTH_CODES:
                    fam.add("modelwatch_model_health_state", (*labels, state), int(state == status))
                fam.add("modelwatch_model_health_window_end_timestamp_seconds", labels, r["health_window_end"])
            fam.add("modelwatch_model_age_days", labels, r["age_days"])
            fam.add("modelwatch_model_drift_score", labels, r["drift_score"])
            fam.add("modelwatch_model_drifted_features", labels, r["n_drifted"])
            fam.add("modelwatch_drift_window_end_timestamp_seconds", labels, r["drift_window_end"])
            if r["primary_metric"] is not None:
                mlabels = (*labels, str(r["primary_metric"]))
                fam.add("modelwatch_primary_metric_live", mlabels, r["primary_live"])
                fam.add("modelwatch_primary_metric_baseline", mlabels, r["primary_baseline"])
                degraded = r["primary_degraded"]
                fam.add("modelwatch_primary_metric_degraded", mlabels, None if degraded is None else int(degraded))

    def _emit_live_performance(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            labels = (*_version_labels(r), str(r["symbol"]), str(r["timeframe"]))
            for column, name, _ in LIVE_COLUMNS:
                fam.add(name, labels, r[column])
            fam.add("modelwatch_live_performance_window_end_timestamp_seconds", labels, r["window_end"])

    def _emit_feature_psi(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            labels = (*_version_labels(r), str(r["feature"]))
            fam.add("modelwatch_psi_drift_score", labels, r["psi"])
            fam.add("modelwatch_feature_drifted", labels, int(bool(r["drifted"])))

    def _emit_concept_drift(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        by_version: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in rows:
            by_version.setdefault(_version_labels(r), []).append(r)
        for labels, group in by_version.items():
            fam.add("modelwatch_concept_drift_score", labels, max(float(r["severity"]) for r in group) / 100.0)
            fam.add("modelwatch_concept_drift_window_end_timestamp_seconds", labels, group[0]["window_end"])
            for r in group:
                if r["test"] == "auc_delta":
                    fam.add("modelwatch_auc_delta", labels, r["statistic"])
                elif r["test"] == "error_rate_delta":
                    fam.add("modelwatch_error_rate_delta", labels, r["statistic"])

    def _emit_models(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        fam.models = [str(r["model_name"]) for r in rows]
        for r in rows:
            labels = (str(r["model_name"]),)
            fam.add("modelwatch_model_training_failures", labels, r["failed"])
            fam.add("modelwatch_model_training_successes", labels, r["succeeded"])
            fam.add("modelwatch_rejected_candidates", labels, r["rejected"])

    def _emit_alerts(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        counts = {(r["model_name"], r["kind"], r["severity"], r["status"]): int(r["n"]) for r in rows}
        models = sorted(set(fam.models) | {k[0] for k in counts})
        for model in models:
            for kind in KINDS:
                for severity in SEVERITIES:
                    for status in ALERT_STATUSES:
                        n = counts.get((model, kind, severity, status), 0)
                        fam.add("modelwatch_open_alerts", (model, kind, severity, status), n)

    def _emit_triggers(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        counts = {(r["model_name"], r["status"]): int(r["n"]) for r in rows}
        models = sorted(set(fam.models) | {k[0] for k in counts})
        for model in models:
            for status in TRIGGER_STATUSES:
                fam.add("modelwatch_retraining_triggers", (model, status), counts.get((model, status), 0))

    def _emit_active_learning(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        by_model = {str(r["model_name"]): r for r in rows}
        for model in sorted(set(fam.models) | set(by_model)):
            r = by_model.get(model, {})
            for status in ACTIVE_LEARNING_STATUSES:
                fam.add("modelwatch_active_learning_items", (model, status), r.get(status, 0))
            fam.add("modelwatch_active_learning_answers", (model,), sum(int(r.get(s, 0)) for s in ANSWERED_STATUSES))
            fam.add("modelwatch_active_learning_processed", (model,), r.get("processed", 0))
            fam.add("modelwatch_active_learning_oldest_pending_age_days", (model,), r.get("oldest_pending_age_days"))

    def _emit_scoring(self, fam: _Families, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            labels = (str(r["model_name"]), str(r["version"]))
            counts = [int(c) for c in r["bucket_counts"]]
            bounds = [_le(b) for b in self.buckets]
            buckets = [*zip(bounds, counts, strict=True), ("+Inf", int(r["n"]))]
            fam.get("modelwatch_scoring_duration_seconds").add_metric(
                list(labels), [(le, float(n)) for le, n in buckets], float(r["duration_sum"])
            )
            fam.add("modelwatch_scoring_rows", labels, r["rows_scored"])
            fam.add("modelwatch_scoring_window_end_timestamp_seconds", labels, r["last_window_end"])
            fam.add("modelwatch_scoring_last_batch_timestamp_seconds", labels, r["last_scored_at"])


def _le(bound: float) -> str:
    """Prometheus' spelling of a bucket bound (``0.5``, ``1.0``, ``10.0``), as the client library writes it."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(bound)
