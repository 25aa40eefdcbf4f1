INSERT INTO predictions (model_name, model_version, ts, symbol, timeframe, features,
                         predicted_label, probabilities, confidence, run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (model_name, model_version, symbol, timeframe, ts) DO UPDATE
SET features = EXCLUDED.features, predicted_label = EXCLUDED.predicted_label,
    probabilities = EXCLUDED.probabilities, confidence = EXCLUDED.confidence,
    run_id = EXCLUDED.run_id, scored_at = now()
RETURNING prediction_id
