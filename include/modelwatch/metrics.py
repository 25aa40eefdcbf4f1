"""The one place ModelWatch emits operational metrics over statsd (``modelwatch.`` prefix).

statsd carries only what the tasks alone know: counts of what a run did and how
long it took. The domain state (drift scores, PSI, performance, health,
retraining triggers, ...) is not sent here: the Prometheus exporter
(:mod:`include.modelwatch.observability`) serves it from the monitoring database.

Settings are Airflow's own ``[metrics]`` section, so one switch turns both on.
:func:`get_metrics` reads them through Airflow's configuration (``airflow.cfg``
under ``AIRFLOW_HOME``, overridden by ``AIRFLOW__METRICS__*`` environment
variables, exactly what Airflow itself uses) when Airflow is installed, and from
the environment alone otherwise (:meth:`Metrics.from_env`). Honoured options:

* ``statsd_on``, ``statsd_host``, ``statsd_port``, ``statsd_ipv6``;
* ``metrics_allow_list`` / ``metrics_block_list`` (comma-separated regular
  expressions, searched case-insensitively as Airflow does; the allow list wins
  when both are set). They are tested against the full name including
  ``modelwatch.``, so an allow list needs an entry such as ``modelwatch`` to let
  ModelWatch's metrics through.

Not honoured: ``statsd_prefix`` (Airflow's default is ``airflow``; ModelWatch
always emits under ``modelwatch.`` so that ``observability/statsd_mapping.yml``
matches and its names never mix with Airflow's), ``stat_name_handler``, the
Datadog/InfluxDB tag options and ``statsd_custom_client_path``.

Every metric is declared in :data:`METRICS`: its dotted name below
``modelwatch.``, its statsd type, the label values that follow the name as
path segments (``modelwatch.scoring.predictions.<model>.<version>.<symbol>``), the
Prometheus name the shipped statsd_exporter mapping gives it, and its meaning.
Label values are sanitised into single dot-free path segments
(:func:`segment`); versions are the bare integer (``.3``, label ``version="3"``).
Emitting an undeclared name, a different type or a different number of label
values is a bug: it raises :class:`UndeclaredMetric` while pytest runs (and
whenever ``Metrics(strict=True)``) and is otherwise logged once per name and
dropped, so a task never fails on a metric and statsd never gets a name the
mapping does not know.

When metrics are off every call only records the packet in ``Metrics.sent``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import statsd

log = logging.getLogger(__name__)

PREFIX = "modelwatch"
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")

Kind = Literal["gauge", "counter", "timer"]
#: statsd wire type of each kind, and the ``match_metric_type`` statsd_exporter gives it
STATSD_TYPE: dict[str, str] = {"gauge": "g", "counter": "c", "timer": "ms"}
EXPORTER_TYPE: dict[str, str] = {"gauge": "gauge", "counter": "counter", "timer": "observer"}


@dataclass(frozen=True)
class MetricSpec:
    """One declared metric: ``modelwatch.<name>.<label value>...``."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    prometheus: str
    meaning: str
    source: str

    @property
    def pattern(self) -> str:
        """The statsd name shape, labels as ``<label>``."""
        return ".".join([PREFIX, self.name, *(f"<{label}>" for label in self.labels)])


def _spec(name: str, kind: Kind, labels: str, prometheus: str, meaning: str, source: str) -> MetricSpec:
    return MetricSpec(name, kind, tuple(labels.split()), prometheus, meaning, source)


_MV = "model version"
_TIMER = "(statsd timer in ms; the exporter observes seconds)"
#: The catalogue: every metric ModelWatch emits (README table, mapping file and tests follow it). Operational
#: counts and timings only: the domain state (drift scores, PSI, performance, health, triggers, ...) is served
#: from the monitoring database by the Prometheus exporter (:mod:`include.modelwatch.observability`).
METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        _spec(
            "scoring.predictions",
            "counter",
            "model version symbol",
            "modelwatch_scoring_predictions_total",
            "predictions written by scoring runs of the champion (each run adds its count)",
            "score_signals",
        ),
        _spec(
            "scoring.missing_feature_rows",
            "counter",
            "model version symbol",
            "modelwatch_scoring_missing_feature_rows_total",
            "rows scored with NaN features, data_quality=missing_features (each run adds its count)",
            "score_signals",
        ),
        _spec(
            "data_quality.failures",
            "counter",
            _MV,
            "modelwatch_data_quality_failures_total",
            "failed data-quality checks (each failed drift window adds its number of failed checks)",
            "drift_hourly",
        ),
        _spec(
            "drift.evaluate_seconds",
            "timer",
            _MV,
            "modelwatch_drift_evaluate_seconds",
            "time to evaluate one drift window: read (or bin in PostgreSQL) its rows, run the feature and "
            f"concept drift tests {_TIMER}",
            "drift_hourly",
        ),
        _spec(
            "loop.actions",
            "counter",
            "model source action",
            "modelwatch_loop_actions_total",
            "response-rule outcomes (fire, upgrade, suppressed_cooldown, ...) by alert source",
            "respond_to_alerts",
        ),
        _spec(
            "ingest.batches",
            "counter",
            "model kind status",
            "modelwatch_ingest_batches_total",
            "external models' batch files handled, by kind (predictions, outcomes) and status (loaded, quarantined)",
            "ingest_predictions",
        ),
        _spec(
            "retrain.train_seconds",
            "timer",
            "model algorithm",
            "modelwatch_retrain_train_seconds",
            f"candidate training time {_TIMER}",
            "retrain_gated",
        ),
        _spec(
            "health.schema_version",
            "gauge",
            "",
            "modelwatch_health_schema_version",
            "highest applied monitoring-DB migration",
            "modelwatch_healthcheck",
        ),
    )
}


class UndeclaredMetric(ValueError):
    """A metric name, type or label count that :data:`METRICS` does not declare."""


class AirflowConf(Protocol):
    """What :meth:`Metrics.from_airflow` needs of Airflow's ``conf``."""

    def get(self, section: str, key: str, *args: object, **kwargs: object) -> str | None: ...
    def getboolean(self, section: str, key: str, *args: object, **kwargs: object) -> bool: ...
    def getint(self, section: str, key: str, *args: object, **kwargs: object) -> int: ...


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on", "t", "y"}


def _patterns(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in (value or "").split(",") if p.strip())


def segment(value: object) -> str:
    """Make one metric path segment out of a model, feature or symbol name."""
    text = _SEGMENT.sub("_", str(value)).strip("_")
    return text or "unknown"


def _under_pytest() -> bool:
    return "PYTEST_CURRENT_TEST" in os.environ


_warned: set[str] = set()


@dataclass
class Metrics:
    """A statsd client under the ``modelwatch`` prefix; no-op when disabled."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 8125
    ipv6: bool = False
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    strict: bool = field(default_factory=_under_pytest)
    sent: list[str] = field(default_factory=list, repr=False)  # last packets, for task logs and tests
    _client: statsd.StatsClient | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Metrics:
        """Settings from ``AIRFLOW__METRICS__*`` variables only (use outside Airflow)."""
        env = os.environ if env is None else env

        def opt(key: str, default: str) -> str:
            return env.get(f"AIRFLOW__METRICS__{key.upper()}", default)

        return cls(
            enabled=_truthy(opt("statsd_on", "False")),
            host=opt("statsd_host", "localhost"),
            port=int(opt("statsd_port", "8125")),
            ipv6=_truthy(opt("statsd_ipv6", "False")),
            allow=_patterns(opt("metrics_allow_list", "")),
            block=_patterns(opt("metrics_block_list", "")),
        )

    @classmethod
    def from_airflow(cls, conf: AirflowConf | None = None) -> Metrics | None:
        """Settings from Airflow's configuration (``airflow.cfg`` + environment);
        None when Airflow is not installed."""
        if conf is None:
            try:
                from airflow.sdk.configuration import conf as airflow_conf
            except ImportError:
                return None
            conf = airflow_conf
        return cls(
            enabled=conf.getboolean("metrics", "statsd_on", fallback=False),
            host=conf.get("metrics", "statsd_host", fallback="localhost") or "localhost",
            port=conf.getint("metrics", "statsd_port", fallback=8125),
            ipv6=conf.getboolean("metrics", "statsd_ipv6", fallback=False),
            allow=_patterns(conf.get("metrics", "metrics_allow_list", fallback="")),
            block=_patterns(conf.get("metrics", "metrics_block_list", fallback="")),
        )

    def _allowed(self, name: str) -> bool:
        low = name.lower()
        if self.allow:
            return any(re.search(p, low) for p in self.allow)
        return not any(re.search(p, low) for p in self.block)

    def _check(self, metric: str, kind: Kind, labels: tuple[object, ...]) -> bool:
        spec = METRICS.get(metric)
        if spec is not None and spec.kind == kind and len(spec.labels) == len(labels):
            return True
        if spec is None:
            problem = f"undeclared metric {metric!r}"
        else:
            declared = f"a {spec.kind} with labels {spec.labels}"
            problem = f"metric {metric!r} is {declared}, emitted as {kind} with {len(labels)} labels"
        if self.strict:
            raise UndeclaredMetric(f"{problem}: declare it in include/modelwatch/metrics.py METRICS")
        if metric not in _warned:
            _warned.add(metric)
            log.warning("%s; not sent (declare it in METRICS)", problem)
        return False

    def _send(self, kind: Kind, metric: str, labels: tuple[object, ...], value: float) -> None:
        if not self._check(metric, kind, labels):
            return
        name = ".".join([PREFIX, metric, *(segment(v) for v in labels)])
        if not self._allowed(name):
            return
        self.sent.append(f"{name}:{value:g}|{STATSD_TYPE[kind]}")
        del self.sent[:-200]
        if not self.enabled:
            return
        try:
            if self._client is None:
                import statsd

                self._client = statsd.StatsClient(self.host, self.port, ipv6=self.ipv6)  # resolves the host
            client = self._client
            if kind == "gauge":
                client.gauge(name, value)
            elif kind == "counter":
                client.incr(name, int(value))
            else:
                client.timing(name, value)
        except OSError as exc:  # metrics never fail a task (unresolvable host, no route, ...)
            where = f"{self.host}:{self.port}"
            if where not in _warned:
                _warned.add(where)
                log.warning("statsd %s unusable (%s); ModelWatch metrics are not sent there", where, exc)

    def gauge(self, metric: str, value: float | None, *labels: object) -> None:
        """``modelwatch.<metric>.<label>...`` = value (skipped when value is None)."""
        if value is None:
            return
        self._send("gauge", metric, labels, float(value))

    def incr(self, metric: str, *labels: object, count: int = 1) -> None:
        """Add ``count`` (default 1) to the counter ``modelwatch.<metric>.<label>...``; a run's count of
        things, e.g. ``incr("scoring.predictions", model, version, symbol, count=n)``. 0 is sent too, so
        the series exists from the first run."""
        self._send("counter", metric, labels, int(count))

    def timing(self, metric: str, millis: float, *labels: object) -> None:
        """A statsd timer: ``millis`` in milliseconds (statsd_exporter turns it into seconds)."""
        self._send("timer", metric, labels, float(millis))

    def close(self) -> None:
        """Close the UDP socket (a later send opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None


def catalogue_markdown() -> str:
    """The README table of :data:`METRICS`."""
    rows = [
        "| statsd name | type | Prometheus name (statsd_exporter mapping) | labels | meaning | from |",
        "|---|---|---|---|---|---|",
    ]
    for s in METRICS.values():
        kind = {"gauge": "gauge", "counter": "counter", "timer": "timer (ms) -> histogram (s)"}[s.kind]
        labels = ", ".join(f"`{label}`" for label in s.labels) or "-"
        rows.append(f"| `{s.pattern}` | {kind} | `{s.prometheus}` | {labels} | {s.meaning} | `{s.source}` |")
    return "\n".join(rows)


_default: Metrics | None = None
_muted: ContextVar[bool] = ContextVar("modelwatch_metrics_muted", default=False)


@contextmanager
def muted() -> Iterator[None]:
    """No metric is sent in the block (a policy replay's task bodies must not move the live series)."""
    token = _muted.set(True)
    try:
        yield
    finally:
        _muted.reset(token)


def get_metrics() -> Metrics:
    """Process-wide metrics client: Airflow's ``[metrics]`` settings, or the environment without Airflow; a disabled
    one inside :func:`muted`."""
    global _default
    if _muted.get():
        return Metrics(enabled=False)
    if _default is None:
        _default = Metrics.from_airflow() or Metrics.from_env()
    return _default
