-- Prometheus exporter: per feature, the PSI of each active version's newest evaluated drift window and whether
-- ModelWatch judged the feature drifted there (drift_results kind 'feature', test 'psi'; the drift score above
-- reads the same window).
WITH active AS (
    SELECT a.model_name, a.version, array_agg(a.alias ORDER BY a.alias) AS aliases
    FROM model_aliases a
    GROUP BY a.model_name, a.version
), latest AS (
    SELECT a.model_name, a.version, a.aliases, w.window_start
    FROM active a
    CROSS JOIN LATERAL (
        SELECT window_start FROM drift_windows
        WHERE model_name = a.model_name AND model_version = a.version AND status = 'evaluated'
              AND drift_score IS NOT NULL
        ORDER BY window_start DESC LIMIT 1
    ) w
)
SELECT r.model_name, r.model_version AS version, t.aliases, r.feature, r.statistic AS psi, r.drifted
FROM latest t
JOIN drift_results r
  ON r.model_name = t.model_name AND r.model_version = t.version AND r.window_start = t.window_start
WHERE r.kind = 'feature' AND r.test = 'psi' AND r.statistic IS NOT NULL
ORDER BY r.model_name, r.model_version, r.feature;
