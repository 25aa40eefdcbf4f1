"""The one place ModelWatch emits domain metrics (statsd, ``modelwatch.`` prefix).

Configured exactly like Airflow's own ``[metrics]`` section, from the same
settings, so one switch turns both on::

    AIRFLOW__METRICS__STATSD_ON=True
    AIRFLOW__METRICS__STATSD_HOST=localhost
    AIRFLOW__METRICS__STATSD_PORT=8125

When metrics are off every call is a no-op. Metric names are dotted paths
below ``modelwatch.``; model names and feature names are sanitised into path
segments (``modelwatch.drift.score.spx_signal.v3``), so that a mapping of your
statsd exporter can turn them into labels (ModelWatch ships no such mapping).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import statsd

PREFIX = "modelwatch"
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")


def _truthy(value: str | None) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def segment(value: object) -> str:
    """Make one metric path segment out of a model, feature or symbol name."""
    text = _SEGMENT.sub("_", str(value)).strip("_")
    return text or "unknown"


@dataclass
class Metrics:
    """A statsd client under the ``modelwatch`` prefix; no-op when disabled."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 8125
    prefix: str = PREFIX
    sent: list[str] = field(default_factory=list, repr=False)  # last packets, for task logs and tests
    _client: statsd.StatsClient | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Metrics:
        env = os.environ if env is None else env
        return cls(
            enabled=_truthy(env.get("AIRFLOW__METRICS__STATSD_ON", "False")),
            host=env.get("AIRFLOW__METRICS__STATSD_HOST", "localhost"),
            port=int(env.get("AIRFLOW__METRICS__STATSD_PORT", "8125")),
        )

    def _name(self, *parts: object) -> str:
        return ".".join([self.prefix, *(segment(p) if i else str(p) for i, p in enumerate(parts))])

    def _send(self, kind: str, name: str, value: float) -> None:
        self.sent.append(f"{name}:{value:g}|{kind}")
        del self.sent[:-200]
        if not self.enabled:
            return
        if self._client is None:
            import statsd

            self._client = statsd.StatsClient(self.host, self.port)
        client = self._client
        try:
            if kind == "g":
                client.gauge(name, value)
            elif kind == "c":
                client.incr(name, int(value))
            else:
                client.timing(name, value)
        except OSError:
            pass  # metrics never fail a task

    def gauge(self, metric: str, value: float | None, *labels: object) -> None:
        """``modelwatch.<metric>.<label>...`` = value (skipped when value is None)."""
        if value is None:
            return
        self._send("g", self._name(metric, *labels), float(value))

    def incr(self, metric: str, *labels: object, count: int = 1) -> None:
        self._send("c", self._name(metric, *labels), count)

    def timing(self, metric: str, millis: float, *labels: object) -> None:
        self._send("ms", self._name(metric, *labels), float(millis))

    def close(self) -> None:
        """Close the UDP socket (a later send opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None


_default: Metrics | None = None


def get_metrics() -> Metrics:
    """Process-wide metrics client configured from the environment."""
    global _default
    if _default is None:
        _default = Metrics.from_env()
    return _default
