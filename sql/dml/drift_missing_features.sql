-- Predictions of a drift window scored with missing features (a bad bar, data_quality =
-- 'missing_features', migration 009): one row per missing feature with its row count, plus
-- the '' row holding the number of such predictions. Params: model, version, start, end.
WITH w AS (
    SELECT missing_features FROM predictions
    WHERE model_name = %(model)s AND model_version = %(version)s AND ts >= %(start)s AND ts < %(end)s
      AND data_quality = 'missing_features'
)
SELECT '' AS feature, count(*) AS n FROM w
UNION ALL
SELECT f.feature, count(*) FROM w CROSS JOIN LATERAL unnest(w.missing_features) AS f(feature) GROUP BY f.feature
ORDER BY feature
