-- Level counts of a drift window's category features (an external model's text-valued features), the
-- categorical side of binned mode beside drift_label_counts.sql; a non-text value (JSON null) is a NULL level.
-- Params: model, version, start, end, features (text[]).
SELECT f.key AS feature, CASE WHEN jsonb_typeof(f.value) = 'string' THEN f.value #>> '{}' END AS level, count(*) AS n
FROM predictions p CROSS JOIN LATERAL jsonb_each(p.features) f
WHERE p.model_name = %(model)s AND p.model_version = %(version)s AND p.ts >= %(start)s AND p.ts < %(end)s
  AND f.key = ANY(%(features)s)
GROUP BY 1, 2
