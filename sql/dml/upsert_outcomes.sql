INSERT INTO outcomes (prediction_id, realized_return, realized_label, r_multiple, horizon_days, matured_at, run_id)
VALUES (%(prediction_id)s, %(realized_return)s, %(realized_label)s, %(r_multiple)s, %(horizon_days)s,
        %(matured_at)s, %(run_id)s)
ON CONFLICT (prediction_id) DO UPDATE
SET realized_return = EXCLUDED.realized_return, realized_label = EXCLUDED.realized_label,
    r_multiple = EXCLUDED.r_multiple, horizon_days = EXCLUDED.horizon_days,
    matured_at = EXCLUDED.matured_at, run_id = EXCLUDED.run_id, recorded_at = now()
