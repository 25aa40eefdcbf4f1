"""Which ModelWatch page shows what one DAG run wrote: the run-link route (a tab on every Airflow DAG run page)
answers with these. Keyed on the ``run_id`` column the tasks record in their rows."""

from __future__ import annotations

from dataclasses import dataclass

from include.modelwatch.api import urls
from include.modelwatch.api.auth import AB_DAG, DRIFT_DAG, MAINTENANCE_DAG, PERFORMANCE_DAG, RETRAIN_DAG, ROLLBACK_DAG
from include.modelwatch.api.queries_common import run, text


@dataclass(frozen=True)
class RunTarget:
    label: str
    path: str


def _drift(conn, run_id: str) -> list[RunTarget]:
    rows = run(
        conn,
        text(
            "SELECT model_name, model_version, window_start, window_end, level FROM drift_windows "
            "WHERE run_id = %(run_id)s ORDER BY model_name, model_version, window_start"
        ),
        {"run_id": run_id},
    )
    return [
        RunTarget(
            f"{r['model_name']} v{r['model_version']}: drift window {urls.window_key(r['window_start'])} to "
            f"{urls.window_key(r['window_end'])} (level {r['level'] or '-'})",
            urls.drift_window_path(r["model_name"], r["model_version"], r["window_start"]),
        )
        for r in rows
    ]


def _models(conn, statement: str, run_id: str, section: str, what: str) -> list[RunTarget]:
    rows = run(conn, text(statement), {"run_id": run_id})
    return [RunTarget(f"{r['model_name']}: {what}", urls.model_path(r["model_name"], section)) for r in rows]


def _ab(conn, run_id: str) -> list[RunTarget]:
    """The tests a run of ``ab_test_daily`` evaluated (its daily rows) or ended."""
    rows = run(
        conn,
        text(
            "SELECT t.test_id, t.model_name, t.champion_version, t.challenger_version, t.status FROM ab_tests t "
            "WHERE t.run_id = %(run_id)s OR EXISTS (SELECT 1 FROM ab_daily_results d WHERE d.test_id = t.test_id "
            "AND d.run_id = %(run_id)s) ORDER BY t.test_id"
        ),
        {"run_id": run_id},
    )
    return [
        RunTarget(
            f"{r['model_name']}: A/B test {r['test_id']}, champion v{r['champion_version']} against challenger "
            f"v{r['challenger_version']} ({r['status']})",
            urls.ab_test_path(r["test_id"]),
        )
        for r in rows
    ]


def _maintenance(conn, run_id: str) -> list[RunTarget]:
    """A ``maintenance_daily`` run: one page, its rows of the maintenance table (none yet: nothing)."""
    rows = run(
        conn,
        text(
            "SELECT count(*) AS n, coalesce(sum(rows_affected), 0) AS affected, max(interval_end) AS interval_end "
            "FROM maintenance_runs WHERE run_id = %(run_id)s"
        ),
        {"run_id": run_id},
    )
    r = rows[0]
    if not r["n"]:
        return []
    return [
        RunTarget(
            f"maintenance of the interval ending {urls.window_key(r['interval_end'])}: {r['n']} table action(s), "
            f"{r['affected']} row(s) removed or changed",
            urls.maintenance_path(run_id),
        )
    ]


def run_targets(conn, dag_id: str, run_id: str) -> list[RunTarget] | None:
    """The pages of what run ``run_id`` of ``dag_id`` wrote (empty: nothing yet); None if ModelWatch has no page
    for that DAG's runs."""
    if dag_id == DRIFT_DAG:
        return _drift(conn, run_id)
    if dag_id == PERFORMANCE_DAG:
        return _models(
            conn,
            "SELECT DISTINCT model_name FROM live_vs_backtest_comparison WHERE run_id = %(run_id)s ORDER BY 1",
            run_id,
            "timeline",
            "live vs backtest",
        )
    if dag_id == RETRAIN_DAG:
        return _models(
            conn,
            "SELECT DISTINCT model_name FROM retraining_triggers WHERE claimed_by = %(run_id)s ORDER BY 1",
            run_id,
            "jobs",
            "training jobs and their quality gates",
        )
    if dag_id == AB_DAG:
        return _ab(conn, run_id)
    if dag_id == ROLLBACK_DAG:
        return _models(
            conn,
            "SELECT DISTINCT model_name FROM model_alias_history WHERE run_id = %(run_id)s ORDER BY 1",
            run_id,
            "aliases",
            "alias history",
        )
    if dag_id == MAINTENANCE_DAG:
        return _maintenance(conn, run_id)
    return None


__all__ = ["RunTarget", "run_targets"]
