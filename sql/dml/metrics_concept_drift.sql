-- Prometheus exporter: the concept-drift rows (tests 'auc_delta', 'error_rate_delta'; see
-- include/modelwatch/monitoring/drift/concept.py) of each active version's newest window that has any.
-- A window has them only once outcomes matured; auc_delta needs 30 matured rows.
WITH active AS (
    SELECT a.model_name, a.version, array_agg(a.alias ORDER BY a.alias) AS aliases
    FROM model_aliases a
    GROUP BY a.model_name, a.version
), latest AS (
    SELECT a.model_name, a.version, a.aliases, c.window_start
    FROM active a
    CROSS JOIN LATERAL (
        SELECT window_start FROM drift_results
        WHERE model_name = a.model_name AND model_version = a.version AND kind = 'concept'
        ORDER BY window_start DESC LIMIT 1
    ) c
)
SELECT r.model_name, r.model_version AS version, t.aliases, r.test, r.statistic, r.severity, r.drifted,
       extract(epoch FROM r.window_end)::float8 AS window_end
FROM latest t
JOIN drift_results r
  ON r.model_name = t.model_name AND r.model_version = t.version AND r.window_start = t.window_start
WHERE r.kind = 'concept'
ORDER BY r.model_name, r.model_version, r.test;
