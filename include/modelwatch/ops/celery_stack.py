"""The CeleryExecutor option of the local stack: ``make run EXECUTOR=celery`` (``dev run --executor celery``).

What it adds to :mod:`include.modelwatch.ops.devstack` (which asks this module for its environment and its extra
components and otherwise starts the stack as usual):

* a Redis broker, the Debian ``redis-server`` (``make run EXECUTOR=celery`` installs it with apt when missing), bound
  to 127.0.0.1 on ``$MODELWATCH_REDIS_PORT`` (default :data:`DEFAULT_REDIS_PORT`, not 6379, so that a system Redis is
  never touched), its data (append-only file) in ``<state dir>/redis``;
* :data:`WORKERS` Celery workers (``airflow celery worker``) on this machine, each with its own Celery
  hostname, its own log server port (``$MODELWATCH_CELERY_LOG_PORTS``, default ``8795,8796``: Airflow's
  triggerer takes 8794) and ``$MODELWATCH_CELERY_CONCURRENCY`` task slots (default 2: four in all, Airflow's
  parallelism of the local stack; fewer than the ``training`` pool's 3 slots per worker, so three trainings at once
  span both workers);
* ``AIRFLOW__CORE__EXECUTOR=CeleryExecutor``, the broker ``redis://127.0.0.1:<port>/0`` and the Airflow metadata
  PostgreSQL as Celery's result backend (``db+postgresql...``).

Each worker records its own name as the task instances' ``hostname`` (``[core] hostname_callable`` is
:func:`worker_hostname`, which reads ``MODELWATCH_CELERY_WORKER``): two workers on one machine would otherwise both
report the machine's name, and ``task_instance.hostname`` could not tell which worker ran a task. Both workers write
task logs into the stack's one log folder, which the API server reads; the workers' log servers are only asked for
the log of a task still running (names such as ``celery1.modelwatch`` do not resolve, so the UI shows such a log from
the shared folder and notes that the log server was not reachable).

This module imports nothing heavy at import time: the workers import it for the hostname callable.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REDIS_BINARY = "/usr/bin/redis-server"
REDIS_PORT_ENV = "MODELWATCH_REDIS_PORT"
DEFAULT_REDIS_PORT = 6380
LOG_PORTS_ENV = "MODELWATCH_CELERY_LOG_PORTS"
DEFAULT_LOG_PORTS = (8795, 8796)
CONCURRENCY_ENV = "MODELWATCH_CELERY_CONCURRENCY"
DEFAULT_CONCURRENCY = 2
#: the workers' names: their Celery hostname ``<name>@<machine>`` and the task instances' ``hostname``
WORKERS = ("celery1.modelwatch", "celery2.modelwatch")
WORKER_ENV = "MODELWATCH_CELERY_WORKER"
HOSTNAME_CALLABLE = f"{__name__}.worker_hostname"
EXECUTORS = ("local", "celery")


@dataclass(frozen=True)
class Component:
    """A process the stack starts beside Airflow's own: ``name`` (its log is ``<state dir>/logs/<name>.log``),
    its command line and the environment variables it gets on top of the stack's."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    #: the TCP ports on 127.0.0.1 it listens on (checked free before it starts)
    ports: tuple[int, ...] = ()
    #: started once the API server is healthy (a worker's task calls the execution API at once: a task received
    #: before the API server listens fails with "connection refused" and waits out its retry delay)
    after_api: bool = False


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the Celery workers: the worker's name from ``$MODELWATCH_CELERY_WORKER``
    (the machine's FQDN outside a worker of this stack)."""
    return os.environ.get(WORKER_ENV) or socket.getfqdn()


def _int_env(name: str, default: int, env: dict[str, str] | None = None) -> int:
    raw = (env if env is not None else os.environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: not an integer") from None
    if value < 1:
        raise SystemExit(f"{name}={raw!r}: must be at least 1")
    return value


def redis_port(env: dict[str, str] | None = None) -> int:
    """``$MODELWATCH_REDIS_PORT`` or :data:`DEFAULT_REDIS_PORT`."""
    value = _int_env(REDIS_PORT_ENV, DEFAULT_REDIS_PORT, env)
    if value > 65535:
        raise SystemExit(f"{REDIS_PORT_ENV}={value}: a port is 1..65535")
    return value


def log_ports(env: dict[str, str] | None = None) -> tuple[int, ...]:
    """One log server port per worker: ``$MODELWATCH_CELERY_LOG_PORTS`` (comma-separated) or the defaults."""
    raw = (env if env is not None else os.environ).get(LOG_PORTS_ENV, "").strip()
    if not raw:
        return DEFAULT_LOG_PORTS
    try:
        ports = tuple(int(p) for p in raw.split(","))
    except ValueError:
        raise SystemExit(f"{LOG_PORTS_ENV}={raw!r}: expected {len(WORKERS)} comma-separated ports") from None
    if len(ports) != len(WORKERS) or len(set(ports)) != len(ports) or not all(1 <= p <= 65535 for p in ports):
        raise SystemExit(f"{LOG_PORTS_ENV}={raw!r}: expected {len(WORKERS)} distinct ports in 1..65535")
    return ports


def broker_url(env: dict[str, str] | None = None) -> str:
    return f"redis://{HOST}:{redis_port(env)}/0"


def result_backend(metadata_uri: str) -> str:
    """Celery's result backend: the Airflow metadata database (SQLAlchemy URI) with Celery's ``db+`` prefix."""
    if not metadata_uri.startswith("postgresql"):
        raise SystemExit(f"the Celery result backend needs the PostgreSQL metadata database, got {metadata_uri!r}")
    return f"db+{metadata_uri}"


def env_overrides(metadata_uri: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The Airflow settings every process of a Celery stack shares (scheduler, API server, workers, CLI calls)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url(env),
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend(metadata_uri),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(_int_env(CONCURRENCY_ENV, DEFAULT_CONCURRENCY, env)),
    }


def components(home: Path, env: dict[str, str]) -> list[Component]:
    """Redis (before Airflow: the scheduler sends to it), then the workers (``after_api``: once the API server is
    healthy; until then the tasks wait in Redis)."""
    if not Path(REDIS_BINARY).exists():
        raise SystemExit(
            f"{REDIS_BINARY} missing: install the Debian package redis-server (make run EXECUTOR=celery does)"
        )
    data = home / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = redis_port(env)
    redis = Component(
        "redis",
        [
            REDIS_BINARY,
            "--bind",
            HOST,
            "--port",
            str(port),
            "--protected-mode",
            "yes",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ],
        ports=(port,),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    machine = socket.gethostname()
    workers = [
        Component(
            name.split(".")[0],
            [
                airflow,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@{machine}",
                "--concurrency",
                env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", str(DEFAULT_CONCURRENCY)),
                # its log server would listen on every interface; on one machine the API server reads the files
                "--skip-serve-logs",
            ],
            {
                WORKER_ENV: name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            },
            ports=(log_port,),
            after_api=True,
        )
        for name, log_port in zip(WORKERS, log_ports(env), strict=True)
    ]
    return [redis, *workers]


def wait_redis(env: dict[str, str], timeout: float = 20.0) -> None:
    """Until Redis answers PING on the broker port."""
    import redis

    client = redis.Redis(host=HOST, port=redis_port(env), socket_connect_timeout=1)
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return
        except redis.exceptions.ConnectionError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise SystemExit(f"redis-server did not answer on {HOST}:{redis_port(env)} in {timeout:.0f}s: {last}")


def ping_workers(env: dict[str, str], timeout: float = 2.0) -> list[str]:
    """Celery hostnames of the workers answering a broadcast ping on this stack's broker."""
    from celery import Celery

    app = Celery(broker=env["AIRFLOW__CELERY__BROKER_URL"])
    try:
        replies = app.control.ping(timeout=timeout) or []
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply)


def wait_workers(env: dict[str, str], timeout: float = 120.0) -> list[str]:
    """Until every worker of :data:`WORKERS` answers a ping; returns their Celery hostnames."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        seen = ping_workers(env)
        if all(any(s.startswith(f"{w}@") for s in seen) for w in WORKERS):
            return seen
        time.sleep(1.0)
    raise SystemExit(f"the Celery workers did not answer in {timeout:.0f}s (answered: {seen or 'none'})")
