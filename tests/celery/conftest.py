"""Fixtures of ``make celery`` (tests/celery; collected only when named, like tests/browser): ``stack``, one
CeleryExecutor stack per session (see test_celery_stack.py), started and stopped with the helpers of
``tests/browser/conftest.py``."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.modelwatch.ops import celery_stack, devstack
from tests.browser.conftest import Stack, StackWaiter, free_port, stack_env, start_dev_run, stop_stack

ROOT = Path(__file__).resolve().parents[2]
REPLAY_START, REPLAY_END = "2008-06-01", "2009-01-01"
REPLAY_MONTHS = 7
#: what the session reports at its end: timings, task instances per worker, what had to be killed
REPORT: list[str] = []


@dataclass
class CeleryStack(Stack):
    redis_port: int = 0

    def airflow_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of the Airflow metadata database (``airflow`` on the stack's embedded PostgreSQL)."""
        import psycopg
        from psycopg.rows import dict_row

        from include.modelwatch.ops import pgembed

        with psycopg.connect(pgembed.dsn(self.socket_dir, "airflow"), row_factory=dict_row) as conn:
            return list(conn.execute(sql, params or {}).fetchall())


def _attached(timeout: float) -> CeleryStack | None:
    """The stack named by ``MODELWATCH_CELERY_HOME`` + ``MODELWATCH_CELERY_PORT`` + ``MODELWATCH_CELERY_REDIS_PORT``
    (started by this fixture or by hand as it does), waited for but neither started nor stopped."""
    home, port, redis_port = (os.environ.get(f"MODELWATCH_CELERY_{k}") for k in ("HOME", "PORT", "REDIS_PORT"))
    if not (home and port and redis_port):
        return None
    st = CeleryStack(f"http://127.0.0.1:{int(port)}", Path(home).resolve(), int(port), redis_port=int(redis_port))
    waiter = StackWaiter(st, None, time.monotonic() + timeout)
    waiter.until("the replay to finish", waiter.replay_done)
    waiter.until("the retrain_gated run of the drift trigger", waiter.retrain_done)
    REPORT.append(f"attached to the celery stack {st.base_url} (home {st.home}); not stopped")
    return st


@pytest.fixture(scope="session")
def stack() -> Iterator[CeleryStack]:
    assert Path(celery_stack.REDIS_BINARY).exists(), "redis-server is missing: `make celery` installs it"
    timeout = float(os.environ.get("MODELWATCH_CELERY_TIMEOUT", "3600"))
    attached = _attached(timeout)
    if attached is not None:
        yield attached
        return
    home = Path(tempfile.mkdtemp(prefix="mwc-", dir="/tmp"))
    (home / "logs").mkdir()
    port = free_port()
    st = CeleryStack(f"http://127.0.0.1:{port}", home, port, redis_port=free_port())
    env = stack_env(home, port)
    env.update(
        {
            celery_stack.REDIS_PORT_ENV: str(st.redis_port),
            celery_stack.LOG_PORTS_ENV: f"{free_port()},{free_port()}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
    )
    t0 = time.monotonic()
    proc = start_dev_run(st, env, "--executor", "celery", "--replay-start", REPLAY_START, "--replay-end", REPLAY_END)
    ok = False
    try:
        waiter = StackWaiter(st, proc, t0 + timeout)
        waiter.until("the replay to finish", waiter.replay_done)
        t_replay = time.monotonic() - t0
        waiter.until("the retrain_gated run of the drift trigger", waiter.retrain_done)
        REPORT.append(
            f"celery stack {st.base_url} (home {home}): up and replayed {REPLAY_START}..{REPLAY_END} in "
            f"{t_replay:.0f}s, drift trigger's retrain done at {time.monotonic() - t0:.0f}s"
        )
        yield st
        ok = True
    finally:
        killed = stop_stack(proc, home)
        left = devstack.processes_of(home)
        REPORT.append(f"stack stopped; killed {killed or 'nothing'}; still running: {left or 'nothing'}")
        if ok and not os.environ.get("MODELWATCH_CELERY_KEEP"):
            shutil.rmtree(home, ignore_errors=True)
        else:
            REPORT.append(f"kept the stack's home with its logs: {home}")


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT:
        terminalreporter.section("celery stack")
        for line in REPORT:
            terminalreporter.write_line(line)
