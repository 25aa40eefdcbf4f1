-- One live-vs-backtest comparison of a metric; returns its id (the alert's evidence).
INSERT INTO live_vs_backtest_comparison (model_name, model_version, window_start, window_end, metric, is_primary,
    live_value, baseline_value, rel_diff, ci_low, ci_high, rel_ci_low, rel_ci_high, threshold, tolerance_rel,
    degraded, status, n_days, n, block_length, n_boot, alpha, run_id)
VALUES (%(model)s, %(version)s, %(start)s, %(end)s, %(metric)s, %(is_primary)s, %(live)s, %(baseline)s, %(rel_diff)s,
    %(ci_low)s, %(ci_high)s, %(rel_ci_low)s, %(rel_ci_high)s, %(threshold)s, %(tolerance_rel)s, %(degraded)s,
    %(status)s, %(n_days)s, %(n)s, %(block)s, %(n_boot)s, %(alpha)s, %(run_id)s)
RETURNING comparison_id;
