"""Airflow-side task bodies: they read the run's context, connections and
variables, call the Airflow-free domain library in ``include.modelwatch`` and
write results. DAG files import these lazily, inside their tasks."""
