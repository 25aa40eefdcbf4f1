-- One label-free estimate per (version, window end, metric). A re-run replaces
-- it; a realized value already filled in is kept while the estimate still
-- covers the same predictions.
INSERT INTO performance_estimates (model_name, model_version, window_start, window_end, metric, n_predictions,
                                   prediction_ids, estimate, estimate_unchecked, status, reason, calibration, run_id)
VALUES (%(model)s, %(version)s, %(start)s, %(end)s, %(metric)s, %(n)s, %(ids)s::bigint[], %(estimate)s, %(estimate_unchecked)s, %(status)s,
        %(reason)s, %(calibration)s, %(run_id)s)
ON CONFLICT (model_name, model_version, window_end, metric) DO UPDATE SET
    window_start = EXCLUDED.window_start,
    n_predictions = EXCLUDED.n_predictions,
    estimate = EXCLUDED.estimate,
    estimate_unchecked = EXCLUDED.estimate_unchecked,
    status = EXCLUDED.status,
    reason = EXCLUDED.reason,
    calibration = EXCLUDED.calibration,
    run_id = EXCLUDED.run_id,
    realized = CASE WHEN performance_estimates.prediction_ids = EXCLUDED.prediction_ids THEN performance_estimates.realized END,
    realized_n = CASE WHEN performance_estimates.prediction_ids = EXCLUDED.prediction_ids THEN performance_estimates.realized_n END,
    realized_as_of = CASE WHEN performance_estimates.prediction_ids = EXCLUDED.prediction_ids THEN performance_estimates.realized_as_of END,
    abs_error = CASE WHEN performance_estimates.prediction_ids = EXCLUDED.prediction_ids AND performance_estimates.realized IS NOT NULL
                     THEN abs(EXCLUDED.estimate - performance_estimates.realized) END,
    abs_error_unchecked = CASE WHEN performance_estimates.prediction_ids = EXCLUDED.prediction_ids AND performance_estimates.realized IS NOT NULL
                     THEN abs(EXCLUDED.estimate_unchecked - performance_estimates.realized) END,
    prediction_ids = EXCLUDED.prediction_ids
