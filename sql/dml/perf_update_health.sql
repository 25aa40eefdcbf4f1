UPDATE model_health_daily SET status = %(status)s, reasons = %(reasons)s, drift_score = %(drift_score)s,
    dq_failures = %(dq_failures)s
WHERE model_name = %(model)s AND model_version = %(version)s AND window_end = %(end)s;
