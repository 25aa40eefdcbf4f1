"""Prometheus exposition of ModelWatch's domain state, read from the monitoring database (no Airflow).

* :mod:`.collector`: :class:`~.collector.ModelWatchCollector` and the table of exported names
  (:data:`~.collector.METRICS`);
* :mod:`.server`: the registry and HTTP server behind ``python -m include.modelwatch metrics serve``.
"""

from include.modelwatch.observability.collector import METRICS, ModelWatchCollector
from include.modelwatch.observability.server import make_registry, render, start

__all__ = ["METRICS", "ModelWatchCollector", "make_registry", "render", "start"]
