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
"""

from __future__ import annotations

import json
import time
import urllib.error
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
        if status not in (200, 201):
            raise RuntimeError(f"trigger {dag_id} {run_id} failed ({status}): {answer}")
        return "queued"

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
    for start, end in windows:
        run_id = f"{run_prefix}__{start:%Y-%m}"
        for dag_id in first:
            api.trigger(dag_id, run_id, start, end, logical=run_prefix == REPLAY_PREFIX)
        states = {dag_id: api.wait(dag_id, run_id) for dag_id in first}
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
            api.trigger(dag_id, run_id, start, end, logical=run_prefix == REPLAY_PREFIX)
            pending.append((dag_id, run_id))
        say(f"replay {start:%Y-%m}: " + " ".join(f"{d}={s}" for d, s in states.items()))
    for dag_id, run_id in pending:
        count(dag_id, api.wait(dag_id, run_id))
    return tally
