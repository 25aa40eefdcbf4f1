INSERT INTO predictions (model_name, model_version, ts, symbol, timeframe, features,
                         predicted_label, probabilities, confidence, data_quality, missing_features, run_id)
VALUES (%(model_name)s, %(model_version)s, %(ts)s, %(symbol)s, %(timeframe)s, %(features)s,
        %(predicted_label)s, %(probabilities)s, %(confidence)s, %(data_quality)s, %(missing_features)s::text[], %(run_id)s)
ON CONFLICT (model_name, model_version, symbol, timeframe, ts) DO UPDATE
SET features = EXCLUDED.features, predicted_label = EXCLUDED.predicted_label,
    probabilities = EXCLUDED.probabilities, confidence = EXCLUDED.confidence,
    data_quality = EXCLUDED.data_quality, missing_features = EXCLUDED.missing_features,
    run_id = EXCLUDED.run_id, scored_at = now()
RETURNING prediction_id
