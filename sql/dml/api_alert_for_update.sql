-- The alert an API write (acknowledge / resolve) acts on, locked for the transaction.
SELECT alert_id, model_name, kind, status
FROM alerts
WHERE alert_id = %(alert_id)s
FOR UPDATE
