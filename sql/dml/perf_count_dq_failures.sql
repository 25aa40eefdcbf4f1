-- Data-quality failures of a model version in the 30 days up to the window end.
SELECT count(*) AS n FROM data_quality_results WHERE subject = %(label)s AND NOT success
    AND window_end <= %(end)s AND window_end > %(since)s;
