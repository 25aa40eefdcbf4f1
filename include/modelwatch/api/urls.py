"""Paths of the ModelWatch pages, in one place: the pages link with them, the run-link route redirects to them
and the DAG tasks end their logs with them. Import-light (standard library only), so task code can use it.

Paths are relative to the Airflow API server's root; the app is mounted at :data:`PREFIX`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

PREFIX = "/modelwatch"
#: Airflow's own fallback for ``[api] base_url`` in its log links; page URLs in task logs and mails use the same
DEFAULT_BASE_URL = "http://localhost:8080/"


def part(value: object) -> str:
    """One URL path segment (everything quoted, ``/`` included)."""
    return quote(str(value), safe="")


def window_key(start: datetime) -> str:
    """A window start as the pages' path segment: ISO 8601 UTC with ``Z``."""
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fleet_path() -> str:
    return f"{PREFIX}/"


def model_path(
    model: str, section: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> str:
    """The model page; ``section``: ``timeline``, ``jobs`` (training jobs and gates) or ``aliases``; ``start`` /
    ``end``: the timeline's range (default: the model's whole life)."""
    query = "&".join(f"{k}={part(window_key(v))}" for k, v in (("start", start), ("end", end)) if v is not None)
    return f"{PREFIX}/models/{part(model)}" + (f"?{query}" if query else "") + (f"#{section}" if section else "")


def drift_window_path(model: str, version: int, start: datetime) -> str:
    return f"{PREFIX}/drift/{part(model)}/{int(version)}/{part(window_key(start))}"


def alerts_path() -> str:
    return f"{PREFIX}/alerts-and-triggers"


def labelling_path(model: str | None = None) -> str:
    """The labelling page: the active-learning queue's pending items (of ``model``, default every model)."""
    return f"{PREFIX}/labelling" + (f"?model={part(model)}" if model else "")


def maintenance_path(run_id: str | None = None) -> str:
    """The maintenance page: what ``maintenance_daily`` did, newest interval first (only run ``run_id``'s rows)."""
    return f"{PREFIX}/maintenance" + (f"?run_id={part(run_id)}" if run_id else "")


def ab_tests_path(model: str | None = None, status: str | None = None) -> str:
    """The A/B testing page: every champion/challenger test (of ``model``, in ``status``), newest first. Its own
    name, as the other list pages have: ``/ab-tests`` is the JSON list."""
    query = "&".join(f"{k}={part(v)}" for k, v in (("model", model), ("status", status)) if v)
    return f"{PREFIX}/ab-testing" + (f"?{query}" if query else "")


def ab_test_path(test_id: int) -> str:
    """One A/B test's page (settings, daily results, charts); under the JSON list, as the model page is under
    ``/models``, next to its JSON ``compare`` and ``traffic``."""
    return f"{PREFIX}/ab-tests/{int(test_id)}"


def run_path(dag_id: str, run_id: str) -> str:
    """The run-link route: redirects to the page of what that DAG run wrote."""
    return f"{PREFIX}/runs/{part(dag_id)}/{part(run_id)}"


def airflow_task_path(dag_id: str, run_id: str, task_id: str, tab: str | None = None) -> str:
    """A task instance's page in the Airflow UI (``tab``: e.g. ``required_actions``, where a HITL request is
    answered)."""
    return f"/dags/{part(dag_id)}/runs/{part(run_id)}/tasks/{part(task_id)}" + (f"/{tab}" if tab else "")


def absolute(base_url: str, path: str) -> str:
    """``path`` under the Airflow base URL (``[api] base_url``), for task logs."""
    return base_url.rstrip("/") + path


__all__ = [
    "DEFAULT_BASE_URL",
    "PREFIX",
    "ab_test_path",
    "ab_tests_path",
    "absolute",
    "airflow_task_path",
    "alerts_path",
    "drift_window_path",
    "fleet_path",
    "labelling_path",
    "model_path",
    "part",
    "run_path",
    "window_key",
]
