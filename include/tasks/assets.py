"""Airflow Assets shared by DAGs (data-aware scheduling).

``RETRAINING_TRIGGERS`` is updated by every task that evaluates the response
rules (``drift_hourly``, ``performance_daily``, a manual trigger) and schedules
``retrain_gated``.
"""

from __future__ import annotations

from airflow.sdk import Asset

RETRAINING_TRIGGERS = Asset(name="modelwatch_retraining_triggers", uri="modelwatch://monitoring_db/retraining_triggers")
