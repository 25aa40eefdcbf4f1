-- Earlier estimates of a model version still waiting for their realized value,
-- with how many of their predictions have a matured outcome as of %(end)s.
SELECT e.window_end, e.metric, e.n_predictions, e.prediction_ids, count(o.prediction_id) AS n_matured
FROM performance_estimates e
LEFT JOIN outcomes o ON o.prediction_id = ANY (e.prediction_ids) AND o.matured_at < %(end)s
WHERE e.model_name = %(model)s AND e.model_version = %(version)s AND e.realized IS NULL
  AND e.window_end < %(end)s
GROUP BY e.window_end, e.metric, e.n_predictions, e.prediction_ids
ORDER BY e.window_end, e.metric
