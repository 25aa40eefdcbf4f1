-- Predictions of one model version in [start, end) with their outcome when it
-- matured before end (the run's "as of"); unmatured ones have NULL outcome columns.
-- Features (for the SHAP log) only from the run's own window start on.
SELECT p.prediction_id, p.ts, p.symbol, p.timeframe,
       CASE WHEN p.ts >= %(window_start)s THEN p.features END AS features, p.probabilities, p.confidence,
       p.predicted_label, o.realized_label, o.realized_return, o.r_multiple, o.horizon_days, o.matured_at
FROM predictions p
LEFT JOIN outcomes o ON o.prediction_id = p.prediction_id AND o.matured_at < %(end)s
WHERE p.model_name = %(model)s AND p.model_version = %(version)s AND p.ts >= %(start)s AND p.ts < %(end)s
ORDER BY p.ts, p.symbol, p.timeframe
