-- Predicted-label counts of a drift window (the categorical side of binned mode).
SELECT predicted_label, count(*) AS n FROM predictions
WHERE model_name = %(model)s AND model_version = %(version)s AND ts >= %(start)s AND ts < %(end)s
GROUP BY 1
