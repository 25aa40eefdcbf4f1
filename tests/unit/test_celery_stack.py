"""The CeleryExecutor option's settings and command lines (include/modelwatch/ops/celery_stack.py); the stack itself
runs in tests/celery (make celery)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from include.modelwatch.ops import celery_stack, cli

METADATA = "postgresql+psycopg2://postgres@/airflow?host=/tmp/x/pgdata"


def test_env_overrides_select_celery_with_the_local_redis_and_the_metadata_db_as_result_backend():
    env = celery_stack.env_overrides(METADATA, {"MODELWATCH_REDIS_PORT": "6390", "MODELWATCH_CELERY_CONCURRENCY": "3"})
    assert env == {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6390/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + METADATA,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "3",
    }
    assert celery_stack.env_overrides(METADATA, {})["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6380/0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODELWATCH_REDIS_PORT": "redis"}, "MODELWATCH_REDIS_PORT='redis': not an integer"),
        ({"MODELWATCH_REDIS_PORT": "70000"}, "MODELWATCH_REDIS_PORT=70000: a port is 1..65535"),
        ({"MODELWATCH_CELERY_CONCURRENCY": "0"}, "MODELWATCH_CELERY_CONCURRENCY='0': must be at least 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env, message):
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(".", r"\.")):
        celery_stack.env_overrides(METADATA, env)


def test_the_result_backend_needs_postgresql():
    with pytest.raises(SystemExit, match="needs the PostgreSQL metadata database"):
        celery_stack.result_backend("sqlite:////tmp/airflow.db")


@pytest.mark.parametrize("raw", ["8264", "8264,8264", "8264,x", "8264,99999"])
def test_log_ports_are_one_distinct_port_per_worker(raw):
    with pytest.raises(SystemExit, match="MODELWATCH_CELERY_LOG_PORTS"):
        celery_stack.log_ports({"MODELWATCH_CELERY_LOG_PORTS": raw})


def test_components_redis_first_then_two_workers_after_the_api(tmp_path: Path):
    if not Path(celery_stack.REDIS_BINARY).exists():
        pytest.fail(f"{celery_stack.REDIS_BINARY} missing: make run EXECUTOR=celery (or make celery) installs it")
    env = {"MODELWATCH_REDIS_PORT": "6390", "MODELWATCH_CELERY_LOG_PORTS": "8264,8265"}
    env.update(celery_stack.env_overrides(METADATA, env))
    redis, *workers = celery_stack.components(tmp_path, env)
    assert redis.name == "redis" and not redis.after_api and redis.ports == (6390,)
    args = redis.args
    assert args[args.index("--bind") + 1] == "127.0.0.1" and args[args.index("--dir") + 1] == str(tmp_path / "redis")
    assert (tmp_path / "redis").is_dir()
    assert [w.name for w in workers] == ["celery1", "celery2"] and all(w.after_api for w in workers)
    machine = socket.gethostname()
    for worker, name, port in zip(workers, celery_stack.WORKERS, (8264, 8265), strict=True):
        assert worker.args[1:] == [
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@{machine}",
            "--concurrency",
            "2",
            "--skip-serve-logs",
        ]
        assert worker.env == {
            "MODELWATCH_CELERY_WORKER": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "include.modelwatch.ops.celery_stack.worker_hostname",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port),
        }
        assert worker.ports == (port,)


def test_worker_hostname_is_the_workers_name(monkeypatch):
    monkeypatch.setenv("MODELWATCH_CELERY_WORKER", "celery2.modelwatch")
    assert celery_stack.worker_hostname() == "celery2.modelwatch"
    monkeypatch.delenv("MODELWATCH_CELERY_WORKER")
    assert celery_stack.worker_hostname() == socket.getfqdn()


def test_dev_run_takes_the_executor():
    parser = cli.build_parser()
    assert parser.parse_args(["dev", "run"]).executor == "local"
    assert parser.parse_args(["dev", "run", "--executor", "celery"]).executor == "celery"
    with pytest.raises(SystemExit):
        parser.parse_args(["dev", "run", "--executor", "kubernetes"])
