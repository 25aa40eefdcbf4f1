SELECT p.features, p.probabilities, p.confidence, p.predicted_label, o.realized_label
FROM predictions p
LEFT JOIN outcomes o ON o.prediction_id = p.prediction_id AND o.matured_at < %s
WHERE p.model_name = %s AND p.model_version = %s AND p.ts >= %s AND p.ts < %s
ORDER BY p.ts, p.symbol
