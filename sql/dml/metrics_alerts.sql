-- Prometheus exporter: unresolved alerts (open or acknowledged) per model, kind, severity and status.
SELECT model_name, kind, severity, status, count(*) AS n
FROM alerts
WHERE status <> 'resolved'
GROUP BY model_name, kind, severity, status
ORDER BY model_name, kind, severity, status;
