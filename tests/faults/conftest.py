"""The fault-injection suite's stack (``make faults``; not part of ``make test``).

One real stack for the whole suite, as ``make run`` starts it but isolated: ``python -m include.modelwatch dev run
--replay-start 2008-09-01 --replay-end 2008-10-01`` (one replayed month) with ``MODELWATCH_HOME`` a fresh
``/tmp/mwf-*``, free ports (or ``MODELWATCH_FAULTS_PORT`` and the two next ones), retries after 2 s
(``MODELWATCH_RETRY_DELAY_SECONDS``) and ``[scheduler] use_job_schedule = False``: only the runs a case starts
run (today's scheduled runs would change the tables between a case's snapshots). Real scheduler, LocalExecutor
workers, embedded PostgreSQL.

``MODELWATCH_FAULTS_HOME`` + ``MODELWATCH_FAULTS_PORT``: use a stack already running there (started as above, with
``AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False``) instead of starting one. ``MODELWATCH_FAULTS_KEEP=1`` keeps the
home. Each case's measured outcome is printed at the end of the session and written to
``$MODELWATCH_FAULTS_REPORT`` (default ``<home>/faults.json``, kept).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from include.modelwatch.ops import pgembed
from include.modelwatch.ops.replay import AirflowApi
from tests.browser.conftest import Stack, StackWaiter, free_port, stack_env, start_dev_run, stop_stack

ROOT = Path(__file__).resolve().parents[2]
REPLAY_START, REPLAY_END = "2008-09-01", "2008-10-01"
RESULTS: list[dict[str, Any]] = []
#: suffix of this session's run ids (an attached stack keeps the runs of earlier sessions)
SESSION = time.strftime("%H%M%S")
REPORT: list[str] = []


@dataclass
class FaultStack:
    stack: Stack
    api: AirflowApi

    @property
    def dsn(self) -> str:
        return self.stack.dsn

    @property
    def airflow_dsn(self) -> str:
        return pgembed.dsn(self.stack.socket_dir, "airflow")

    @property
    def env(self) -> dict[str, str]:
        """Environment of a CLI call against this stack's monitoring DB."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MODELWATCH_"))}
        env["AIRFLOW_CONN_MONITORING_DB"] = self.stack.monitoring_uri
        return env


def _env(home: Path, port: int) -> dict[str, str]:
    env = stack_env(home, port)
    env.update(
        MODELWATCH_RETRY_DELAY_SECONDS="2",
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(port + 1),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(port + 2),
    )
    return env


@pytest.fixture(scope="session")
def fstack() -> Iterator[FaultStack]:
    attach_home, attach_port = os.environ.get("MODELWATCH_FAULTS_HOME"), os.environ.get("MODELWATCH_FAULTS_PORT")
    if attach_home:
        port = int(attach_port or 8080)
        st = Stack(f"http://127.0.0.1:{port}", Path(attach_home).resolve(), port)
        waiter = StackWaiter(st, None, time.monotonic() + float(os.environ.get("MODELWATCH_FAULTS_TIMEOUT", "900")))
        waiter.until("the attached stack's replay to finish (its logs/devstack.log)", waiter.replay_done)
        yield FaultStack(st, AirflowApi(st.base_url, "admin", "admin"))
        _write_report(st.home)
        return
    home = Path(tempfile.mkdtemp(prefix="mwf-", dir="/tmp"))
    (home / "logs").mkdir()
    port = int(attach_port) if attach_port else free_port()
    st = Stack(f"http://127.0.0.1:{port}", home, port)
    t0 = time.monotonic()
    proc = start_dev_run(st, _env(home, port), "--replay-start", REPLAY_START, "--replay-end", REPLAY_END)
    ok = False
    try:
        waiter = StackWaiter(st, proc, t0 + float(os.environ.get("MODELWATCH_FAULTS_TIMEOUT", "900")))
        waiter.until("the replay to finish", waiter.replay_done)
        took = time.monotonic() - t0
        REPORT.append(f"stack {st.base_url} (home {home}): up and replayed {REPLAY_START} in {took:.0f}s")
        yield FaultStack(st, AirflowApi(st.base_url, "admin", "admin"))
        ok = True
    finally:
        killed = stop_stack(proc, home)
        REPORT.append("stack stopped" + (f"; killed leftovers {killed}" if killed else "; nothing left running"))
        _write_report(home)
        if ok and not os.environ.get("MODELWATCH_FAULTS_KEEP"):
            for sub in ("pgdata", "airflow", "artifacts"):
                shutil.rmtree(home / sub, ignore_errors=True)
        else:
            REPORT.append(f"kept the stack's home with its logs: {home}")


def _write_report(home: Path) -> None:
    path = Path(os.environ.get("MODELWATCH_FAULTS_REPORT") or home / "faults.json")
    path.write_text(json.dumps(RESULTS, indent=2, default=str))
    REPORT.append(f"results of {len(RESULTS)} cases in {path}")


def pytest_terminal_summary(terminalreporter) -> None:
    if RESULTS or REPORT:
        terminalreporter.section("fault-injection results")
        head = f"{'fault':<58}{'outcome':<34}{'lost':>5}{'dup':>5}{'tries':>7}{'recovery s':>12}"
        terminalreporter.write_line(head)
        for r in RESULTS:
            terminalreporter.write_line(
                f"{r['fault']:<58}{r['outcome']:<34}{r['rows_lost']:>5}{r['rows_duplicated']:>5}"
                f"{str(r.get('tries', '-')):>7}{r.get('recovery_s', '-'):>12}"
            )
        for line in REPORT:
            terminalreporter.write_line(line)
