-- Prometheus exporter: retraining triggers waiting (pending) or being worked on (claimed), per model.
SELECT model_name, status, count(*) AS n
FROM retraining_triggers
WHERE status IN ('pending', 'claimed')
GROUP BY model_name, status
ORDER BY model_name, status;
