-- In-database binning for large drift windows: only counts leave PostgreSQL.
-- Every numeric value of the window (features, class probabilities with a
-- "p_" prefix, confidence) is bucketed with width_bucket against the
-- feature's stored fine reference edges (same convention as
-- drift.bin_index); non-numbers (JSON null) count as NULL bucket.
-- Params: edges (jsonb [{"feature": ..., "edges": [...]}]), model, version, start, end.
WITH e AS (
    SELECT feature, edges FROM jsonb_to_recordset(%(edges)s::jsonb) AS x(feature text, edges float8[])
), w AS (
    SELECT features, probabilities, confidence FROM predictions
    WHERE model_name = %(model)s AND model_version = %(version)s AND ts >= %(start)s AND ts < %(end)s
), v AS (
    SELECT f.key AS feature, f.value AS value FROM w CROSS JOIN LATERAL jsonb_each(w.features) f
    UNION ALL
    SELECT 'p_' || f.key, f.value FROM w CROSS JOIN LATERAL jsonb_each(w.probabilities) f
    UNION ALL
    SELECT 'confidence', to_jsonb(w.confidence) FROM w
)
SELECT v.feature,
       CASE WHEN jsonb_typeof(v.value) = 'number' THEN width_bucket(v.value::float8, e.edges) END AS bucket,
       count(*) AS n
FROM v JOIN e USING (feature)
GROUP BY 1, 2
