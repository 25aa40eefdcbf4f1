-- Health rows of one window end (every version performance_daily evaluated there).
SELECT model_name, model_version, window_end, perf_rel_drop, perf_degraded, model_age_days
FROM model_health_daily WHERE window_end = %(end)s ORDER BY model_name, model_version;
