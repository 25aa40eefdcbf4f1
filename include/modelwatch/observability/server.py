"""The ModelWatch exporter: ``python -m include.modelwatch metrics serve`` (a small HTTP server, not the plugin).

Why not the Airflow plugin: everything under Airflow's API server (``/modelwatch`` included) needs an Airflow
JWT, which expires and which Prometheus cannot obtain (it sends a static bearer token or basic auth at
most). A separate process also keeps scrapes, and a slow monitoring database, away from the API server's
workers. The exporter binds to 127.0.0.1 by default: it has no authentication, so expose it beyond the host
only on purpose (``--host 0.0.0.0`` behind a firewall, or a TLS/auth proxy).

The registry holds the ModelWatch collector and nothing else: no ``process_*``/``python_*``/``platform``
collectors (they would describe this small process, not ModelWatch, and are unprefixed). Host CPU, memory
and disk come from prometheus-node-exporter.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from include.modelwatch.observability.collector import (
    CONNECT_TIMEOUT_S,
    SCORING_BUCKETS,
    STATEMENT_TIMEOUT_MS,
    ModelWatchCollector,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464


def make_registry(
    uri: str | None = None,
    *,
    opener: Callable[[], Any] | None = None,
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
    connect_timeout_s: int = CONNECT_TIMEOUT_S,
    buckets: Sequence[float] = SCORING_BUCKETS,
) -> CollectorRegistry:
    """A fresh registry holding only :class:`ModelWatchCollector` (registering it reads nothing)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        ModelWatchCollector(
            uri,
            opener=opener,
            statement_timeout_ms=statement_timeout_ms,
            connect_timeout_s=connect_timeout_s,
            buckets=buckets,
        )
    )
    return registry


def render(registry: CollectorRegistry) -> str:
    """One scrape in the text exposition format (what ``GET /metrics`` answers)."""
    return generate_latest(registry).decode()


def start(registry: CollectorRegistry, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> tuple[Any, Any]:
    """Serve ``registry`` on ``http://host:port/metrics`` in a daemon thread; returns (server, thread).

    Port 0 picks a free port (``server.server_address[1]``). Stop with ``server.shutdown()``.
    """
    server, thread = start_http_server(port, addr=host, registry=registry)
    return server, thread


def serve_forever(registry: CollectorRegistry, host: str, port: int, log: Callable[[str], None] = print) -> int:
    """Serve until SIGTERM or Ctrl+C, then shut the server down cleanly."""
    server, _ = start(registry, host, port)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bound_host, bound_port = server.server_address[:2]
    log(f"modelwatch exporter: http://{bound_host}:{bound_port}/metrics (Ctrl+C or SIGTERM stops it)")
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()
    log("modelwatch exporter stopped")
    return 0
