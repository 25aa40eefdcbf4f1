-- The performance inputs of a version's health for one window end; status and the drift / data-quality
-- inputs are (re)computed by perf_update_health.sql whenever a monitor of the window finished.
INSERT INTO model_health_daily (model_name, model_version, window_end, status, reasons, drift_score, perf_metric,
    perf_rel_drop, perf_degraded, dq_failures, model_age_days, run_id)
VALUES (%(model)s, %(version)s, %(end)s, %(status)s, %(reasons)s, %(drift_score)s, %(perf_metric)s, %(perf_rel_drop)s,
    %(perf_degraded)s, %(dq_failures)s, %(model_age_days)s, %(run_id)s);
