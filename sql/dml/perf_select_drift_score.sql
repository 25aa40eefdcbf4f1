-- The drift score of the newest evaluated drift window ending at or before the window end.
SELECT drift_score FROM drift_windows WHERE model_name = %(model)s AND model_version = %(version)s
    AND window_end <= %(end)s AND status = 'evaluated' ORDER BY window_end DESC LIMIT 1;
