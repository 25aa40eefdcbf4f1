"""Who may call the ModelWatch API: Airflow's own authentication and DAG authorization, reused.

Airflow does not protect a plugin's FastAPI app, so every route depends on one of the dependencies below.
They call Airflow's core API security code (``airflow.api_fastapi.core_api.security``): the user comes from
the same JWT the UI uses (``Authorization: Bearer <token>`` or the UI's ``_token`` cookie), validated by the
configured auth manager (no JWT decoding here), and access is the auth manager's ``is_authorized_dag``
answer for the ModelWatch DAG that owns the data. Missing token -> 401, invalid token or no access -> 403,
exactly as Airflow's own ``/api/v2`` answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, Request

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

# the DAG whose permissions guard each kind of monitoring data (read = GET, change = PUT)
DRIFT_DAG = "drift_hourly"
PERFORMANCE_DAG = "performance_daily"
RETRAIN_DAG = "retrain_gated"
SCORING_DAG = "score_signals"
ROLLBACK_DAG = "rollback_model"
LABEL_DAG = "label_queue"  # the active-learning queue: its labelling requests (HITL) and the labelling page
INGEST_DAG = "ingest_predictions"  # external models: their batches, and registering them
AB_DAG = "ab_test_daily"  # A/B tests: their daily evidence and decisions, the A/B pages
MAINTENANCE_DAG = "maintenance_daily"  # retention and partitions: what each run removed or created

# alerts are changed with the rights on the DAG that raises them
ALERT_KIND_DAG = {
    "drift": DRIFT_DAG,
    "data_quality": DRIFT_DAG,
    "performance": PERFORMANCE_DAG,
    "artifact_integrity": SCORING_DAG,
}


def alert_dag(kind: str) -> str:
    """The DAG that raises alerts of ``kind`` (age/risk alerts come with the daily performance run)."""
    return ALERT_KIND_DAG.get(kind, PERFORMANCE_DAG)


def check_dag_access(request: Request, user: BaseUser, method: Literal["GET", "PUT"], dag_id: str) -> None:
    """Raise 403 unless the auth manager lets ``user`` do ``method`` on ``dag_id`` (Airflow's own check)."""
    requires_access_dag(method, param_dag_id=dag_id)(request, user)


def dag_access(method: Literal["GET", "PUT"], dag_id: str) -> Callable[..., BaseUser]:
    """Dependency: the authenticated user, provided they may do ``method`` on ``dag_id``."""

    def dependency(request: Request, user: GetUserDep) -> BaseUser:
        check_dag_access(request, user, method, dag_id)
        return user

    dependency.__name__ = f"{method.lower()}_{dag_id}"
    return dependency


# route dependencies: the user, checked for read access to that data / for changing retraining
DriftReader = Annotated["BaseUser", Depends(dag_access("GET", DRIFT_DAG))]
PerformanceReader = Annotated["BaseUser", Depends(dag_access("GET", PERFORMANCE_DAG))]
RetrainReader = Annotated["BaseUser", Depends(dag_access("GET", RETRAIN_DAG))]
ScoringReader = Annotated["BaseUser", Depends(dag_access("GET", SCORING_DAG))]
RetrainEditor = Annotated["BaseUser", Depends(dag_access("PUT", RETRAIN_DAG))]
LabelReader = Annotated["BaseUser", Depends(dag_access("GET", LABEL_DAG))]
LabelEditor = Annotated["BaseUser", Depends(dag_access("PUT", LABEL_DAG))]
ABReader = Annotated["BaseUser", Depends(dag_access("GET", AB_DAG))]
IngestReader = Annotated["BaseUser", Depends(dag_access("GET", INGEST_DAG))]
IngestEditor = Annotated["BaseUser", Depends(dag_access("PUT", INGEST_DAG))]
MaintenanceReader = Annotated["BaseUser", Depends(dag_access("GET", MAINTENANCE_DAG))]


__all__ = [
    "AB_DAG",
    "DRIFT_DAG",
    "LABEL_DAG",
    "PERFORMANCE_DAG",
    "RETRAIN_DAG",
    "ROLLBACK_DAG",
    "SCORING_DAG",
    "GetUserDep",
    "alert_dag",
    "check_dag_access",
    "dag_access",
    "DriftReader",
    "PerformanceReader",
    "RetrainReader",
    "ScoringReader",
    "RetrainEditor",
    "LabelReader",
    "LabelEditor",
    "ABReader",
    "INGEST_DAG",
    "IngestReader",
    "IngestEditor",
    "MAINTENANCE_DAG",
    "MaintenanceReader",
]
