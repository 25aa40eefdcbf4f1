"""Historical replay through the real DAGs, over Airflow's REST API.

Market history (2007-2008 by default) is replayed as an *accelerated clock*:
one DAG run per calendar month of market time, triggered through
``POST /api/v2/dags/{dag_id}/dagRuns`` with an explicit data interval
``[month start, next month start)``. Every DAG keys its work on its data
interval, so a replayed run does exactly what the scheduled run for that month
would have done; runs show in the UI with their real market-time intervals and
``replay__YYYY-MM`` run ids. Months run in order (a month's outcomes need the
next month's bars), and each month's monitoring DAGs run after its scoring.
Re-running the replay re-uses finished runs: nothing is duplicated.

Re-running a window: a DAG has one run per logical date, so triggering the month again with its logical date
answers HTTP 409. ``replay --window 2008-10 --rerun`` clears each DAG's existing run of that month instead
(``POST /api/v2/dags/{dag_id}/dagRuns/{run_id}/clear``: its tasks run again, in the same run) and triggers only the
DAGs that have no run for it yet (:func:`rerun_plan`). The same can be done in the UI (the run's "Clear" button) or
with a run without a logical date whose ``window_start`` / ``window_end`` params name the window (``--run-prefix``).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

TERMINAL = {"success", "failed"}
#: run ids of the replay that ``make run`` performs: ``replay__YYYY-MM``
REPLAY_PREFIX = "replay"


def month_windows(start: date, end: date) -> list[tuple[datetime, datetime]]:
    """Calendar-month windows [m, m+1) covering start <= m < end, in UTC."""
    out: list[tuple[datetime, datetime]] = []
    y, m = start.year, start.month
    while date(y, m, 1) < end:
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append((datetime(y, m, 1, tzinfo=UTC), datetime(ny, nm, 1, tzinfo=UTC)))
        y, m = ny, nm
    return out


@dataclass(frozen=True)
class RerunStep:
    """What ``--rerun`` does for one DAG of a window: ``clear`` its existing run ``run_id``, or ``trigger`` it."""

    dag_id: str
    action: str
    run_id: str


def rerun_plan(dag_ids: Sequence[str], run_id: str, existing: dict[str, str | None]) -> list[RerunStep]:
    """For each DAG: clear the run of the window it has (``existing[dag_id]``: its run id, found by run id or by
    the window's logical date), else trigger ``run_id``."""
    return [
        RerunStep(d, "clear", found) if (found := existing.get(d)) else RerunStep(d, "trigger", run_id) for d in dag_ids
    ]


#: seconds a REST API call may take; attempts of a GET before the replay gives up, READ_BACKOFF s, 2x... apart
REQUEST_TIMEOUT, READ_ATTEMPTS, READ_BACKOFF = 30.0, 5, 5.0


@dataclass
class AirflowApi:
    base_url: str
    username: str
    password: str
    _token: str | None = None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        if self._token is None and not path.startswith("/auth"):
            self._login()
        req = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self._token}"} if self._token else {}),
            },
        )
        # a read is retried when the API server does not answer in time (an overloaded machine: the replay must not
        # die of one slow answer while its runs go on); a write is not, so that a trigger is never sent twice
        attempts = READ_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as resp:
                    return resp.status, json.loads(resp.read() or b"null")
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read() or b"null")
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                if attempt == attempts:
                    raise RuntimeError(
                        f"{method} {self.base_url}{path}: no answer after {attempts} attempts: {exc}"
                    ) from exc
                time.sleep(READ_BACKOFF * attempt)
        raise AssertionError("unreachable")

    def _login(self) -> None:
        status, body = self._request("POST", "/auth/token", {"username": self.username, "password": self.password})
        if status not in (200, 201):
            raise RuntimeError(f"login to {self.base_url} failed ({status}): {body}")
        self._token = body["access_token"]

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = self._request("GET", f"/api/v2/dags/{dag_id}")
            if status == 200:
                self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return
            time.sleep(2)
        raise RuntimeError(f"DAG {dag_id} did not appear in Airflow within {timeout:.0f}s (import error?)")

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        status, body = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return body.get("state") if status == 200 else None

    def trigger(
        self,
        dag_id: str,
        run_id: str,
        start: datetime,
        end: datetime,
        conf: dict[str, Any] | None = None,
        *,
        logical: bool = True,
    ) -> str:
        """Trigger a run with an explicit data interval unless it already exists. ``logical=False``: a run without
        a logical date (a DAG has one run per logical date) whose window comes from its ``window_start`` /
        ``window_end`` params, as the trigger form's "re-run another window" does."""
        state = self.run_state(dag_id, run_id)
        if state is not None:
            return state
        body: dict[str, Any] = {"dag_run_id": run_id, "conf": conf or {}}
        if logical:
            body.update(
                logical_date=start.isoformat(), data_interval_start=start.isoformat(), data_interval_end=end.isoformat()
            )
        else:
            body.update(
                logical_date=None,
                conf={**body["conf"], "window_start": start.isoformat(), "window_end": end.isoformat()},
            )
        body["note"] = "historical replay (accelerated clock: one run per market month)"
        status, answer = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        if status == 409:
            raise RuntimeError(
                f"trigger {dag_id} {run_id} refused (409): {dag_id} already has a run for logical date "
                f"{start.isoformat()}; re-run it with `replay --window {start:%Y-%m} --rerun` (clears that run) or "
                "another --run-prefix (a run with the window in its params)"
            )
        if status not in (200, 201):
            raise RuntimeError(f"trigger {dag_id} {run_id} failed ({status}): {answer}")
        return "queued"

    def existing_run(self, dag_id: str, run_id: str, start: datetime) -> str | None:
        """The run id of ``dag_id``'s run for this window: ``run_id`` if it exists, else a run whose logical date is
        the window's start (e.g. a scheduled or manual one); None when there is none."""
        if self.run_state(dag_id, run_id) is not None:
            return run_id
        stamp = urllib.parse.quote(start.isoformat())
        status, body = self._request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns?logical_date_gte={stamp}&logical_date_lte={stamp}&limit=1"
        )
        if status != 200:
            raise RuntimeError(f"listing the runs of {dag_id} failed ({status}): {body}")
        runs = body.get("dag_runs") or []
        return str(runs[0]["dag_run_id"]) if runs else None

    def clear(self, dag_id: str, run_id: str) -> str:
        """Clear every task of run ``run_id`` (not a dry run): the run is queued again and its tasks re-run."""
        status, answer = self._request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/clear", {"dry_run": False, "only_failed": False}
        )
        if status != 200:
            raise RuntimeError(f"clear {dag_id} {run_id} failed ({status}): {answer}")
        return str(answer.get("state", "queued")) if isinstance(answer, dict) else "queued"

    def rerun(self, dag_id: str, run_id: str, start: datetime, end: datetime, *, logical: bool = True) -> RerunStep:
        """Re-run the window: clear the DAG's existing run of it, or trigger ``run_id`` when it has none."""
        found = self.existing_run(dag_id, run_id, start) if logical else self.run_state(dag_id, run_id) and run_id
        (step,) = rerun_plan([dag_id], run_id, {dag_id: found or None})
        if step.action == "clear":
            self.clear(dag_id, step.run_id)
        else:
            self.trigger(dag_id, run_id, start, end, logical=logical)
        return step

    def wait(self, dag_id: str, run_id: str, timeout: float = 900) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL:
                return state
            time.sleep(1.0)
        raise RuntimeError(f"{dag_id} {run_id} did not finish in {timeout:.0f}s")


def replay(
    api: AirflowApi,
    windows: Sequence[tuple[datetime, datetime]],
    stages: Sequence[Sequence[str]],
    say: Callable[[str], None] = print,
    run_prefix: str = REPLAY_PREFIX,
    *,
    rerun: bool = False,
) -> dict[str, dict[str, int]]:
    """Run each window through ``stages`` in order of windows, as runs ``<run_prefix>__YYYY-MM`` (a run that
    exists is not triggered again). The default prefix's runs carry the month as logical date and data interval;
    another prefix re-runs the months (e.g. after an A/B test started) as runs without a logical date whose
    window is in their params.

    The first stage (scoring) runs strictly month after month; the DAGs of
    later stages are triggered once their month is scored, and a month's
    monitoring starts only after the previous month's finished.
    """
    for stage in stages:
        for dag_id in stage:
            api.wait_for_dag(dag_id)
    tally: dict[str, dict[str, int]] = {}
    pending: list[tuple[str, str]] = []

    def count(dag_id: str, state: str) -> None:
        tally.setdefault(dag_id, {}).setdefault(state, 0)
        tally[dag_id][state] += 1

    first, later = list(stages[0]), [d for stage in stages[1:] for d in stage]
    logical = run_prefix == REPLAY_PREFIX

    def start_run(dag_id: str, run_id: str, start: datetime, end: datetime) -> str:
        """Trigger the run (or re-use it); with ``rerun``: clear the existing one. Returns the run id to wait for."""
        if not rerun:
            api.trigger(dag_id, run_id, start, end, logical=logical)
            return run_id
        step = api.rerun(dag_id, run_id, start, end, logical=logical)
        say(
            f"re-run {start:%Y-%m} {dag_id}: "
            + (f"cleared its run {step.run_id}" if step.action == "clear" else f"no run yet, triggered {run_id}")
        )
        return step.run_id

    for start, end in windows:
        run_id = f"{run_prefix}__{start:%Y-%m}"
        ids = {dag_id: start_run(dag_id, run_id, start, end) for dag_id in first}
        states = {dag_id: api.wait(dag_id, ids[dag_id]) for dag_id in first}
        for dag_id, state in states.items():
            count(dag_id, state)
        # monitoring of month m runs while month m+1 is scored: it reads only
        # month m's predictions and outcomes matured before the month's end.
        # Month m-1's monitoring finishes first: hysteresis and the response
        # rules build on the previous windows' results.
        for dag_id, prev in pending:
            count(dag_id, api.wait(dag_id, prev))
        pending.clear()
        for dag_id in later:
            pending.append((dag_id, start_run(dag_id, run_id, start, end)))
        say(f"replay {start:%Y-%m}: " + " ".join(f"{d}={s}" for d, s in states.items()))
    for dag_id, run_id in pending:
        count(dag_id, api.wait(dag_id, run_id))
    return tally
