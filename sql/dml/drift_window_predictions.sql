-- Predictions of a drift window with their outcomes matured before the window end.
-- Params: model, version, start, end; every (1 = every row, k = every k-th prediction by id, a
-- deterministic sample of a large window for the data-quality checks).
SELECT p.features, p.probabilities, p.confidence, p.predicted_label, o.realized_label
FROM predictions p
LEFT JOIN outcomes o ON o.prediction_id = p.prediction_id AND o.matured_at < %(end)s
WHERE p.model_name = %(model)s AND p.model_version = %(version)s AND p.ts >= %(start)s AND p.ts < %(end)s
  AND mod(p.prediction_id, %(every)s) = 0
ORDER BY p.ts, p.symbol
