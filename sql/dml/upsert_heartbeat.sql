INSERT INTO pipeline_heartbeats (dag_id, interval_start, interval_end, schema_version, run_id)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (dag_id, interval_start) DO UPDATE
SET interval_end = EXCLUDED.interval_end,
    schema_version = EXCLUDED.schema_version,
    run_id = EXCLUDED.run_id
