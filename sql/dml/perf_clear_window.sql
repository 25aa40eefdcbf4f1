-- Remove a version's previous results for one window end (re-runs replace, never duplicate).
-- performance_estimates is upserted instead (its realized value survives a re-run).
DELETE FROM live_performance_daily WHERE model_name = %(model)s AND model_version = %(version)s AND window_end = %(end)s;
DELETE FROM live_vs_backtest_comparison WHERE model_name = %(model)s AND model_version = %(version)s AND window_end = %(end)s;
DELETE FROM model_health_daily WHERE model_name = %(model)s AND model_version = %(version)s AND window_end = %(end)s;
DELETE FROM interpretability_log WHERE model_name = %(model)s AND model_version = %(version)s AND window_end = %(end)s;
