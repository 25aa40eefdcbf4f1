-- Prometheus exporter (include/modelwatch/observability): one row per model version that holds an alias
-- (an active version), with its aliases and its latest state: health, drift score, primary live-vs-backtest
-- comparison, model age. Every lookup is the newest row by the table's key (index scans, no sort).
WITH active AS (
    SELECT a.model_name, a.version, array_agg(a.alias ORDER BY a.alias) AS aliases
    FROM model_aliases a
    GROUP BY a.model_name, a.version
)
SELECT a.model_name, a.version, a.aliases,
       (now() AT TIME ZONE 'UTC')::date - v.train_end       AS age_days,
       h.status                                             AS health_status,
       extract(epoch FROM h.window_end)::float8             AS health_window_end,
       d.drift_score,
       d.n_drifted,
       extract(epoch FROM w.window_end)::float8             AS drift_window_end,
       c.metric                                             AS primary_metric,
       c.live_value                                         AS primary_live,
       c.baseline_value                                     AS primary_baseline,
       c.degraded                                           AS primary_degraded
FROM active a
JOIN model_versions v ON v.model_name = a.model_name AND v.version = a.version
LEFT JOIN LATERAL (
    SELECT status, window_end FROM model_health_daily
    WHERE model_name = a.model_name AND model_version = a.version
    ORDER BY window_end DESC LIMIT 1
) h ON true
LEFT JOIN LATERAL (
    SELECT drift_score, n_drifted FROM drift_windows
    WHERE model_name = a.model_name AND model_version = a.version AND status = 'evaluated' AND drift_score IS NOT NULL
    ORDER BY window_start DESC LIMIT 1
) d ON true
LEFT JOIN LATERAL (
    SELECT window_end FROM drift_windows
    WHERE model_name = a.model_name AND model_version = a.version
    ORDER BY window_start DESC LIMIT 1
) w ON true
LEFT JOIN LATERAL (
    SELECT metric, live_value, baseline_value, degraded FROM live_vs_backtest_comparison
    WHERE model_name = a.model_name AND model_version = a.version AND is_primary
    ORDER BY window_end DESC LIMIT 1
) c ON true
ORDER BY a.model_name, a.version;
