-- Matured outcomes of a drift window (concept drift in binned mode): labels and
-- probabilities only, no features.
SELECT p.probabilities, p.predicted_label, o.realized_label
FROM predictions p
JOIN outcomes o ON o.prediction_id = p.prediction_id AND o.matured_at < %(end)s
WHERE p.model_name = %(model)s AND p.model_version = %(version)s AND p.ts >= %(start)s AND p.ts < %(end)s
