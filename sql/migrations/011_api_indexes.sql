-- 011: indexes for the monitoring API's lists (include/modelwatch/api/queries_monitoring.py), measured by
-- `python -m bench.api_latency` on a year of history (20 versions x 8,760 hourly windows, 8.76M drift results).
--
-- Each list is ordered newest window first with a total order; an index in exactly that order lets
-- PostgreSQL read a page (with or without a model filter) without sorting the table, and, because it holds
-- the table's key, lets a deep page (offset > 0) find its rows with an index-only scan before reading them
-- (queries_common.fetch_page). It also answers the lists' count(*) with an index-only scan.
-- Without them: sort of every row per request (interpretability, 350k rows: 330 ms at offset 100,000;
-- comparisons, 95k rows: 120 ms at offset 20,000, 29 ms for the model page's first 500).

-- /drift/windows: ORDER BY window_end DESC, window_start DESC, model_name, model_version DESC
CREATE INDEX drift_windows_list_idx
    ON drift_windows (window_end DESC, window_start DESC, model_name, model_version DESC);

-- /performance: ORDER BY window_end DESC, model_name, model_version DESC, is_primary DESC, metric
CREATE INDEX live_vs_backtest_comparison_list_idx
    ON live_vs_backtest_comparison (window_end DESC, model_name, model_version DESC, is_primary DESC, metric);

-- /estimates: ORDER BY window_end DESC, model_name, model_version DESC, metric
CREATE INDEX performance_estimates_list_idx
    ON performance_estimates (window_end DESC, model_name, model_version DESC, metric);

-- /interpretability: ORDER BY window_end DESC, model_name, model_version DESC, shap_rank NULLS LAST, feature
CREATE INDEX interpretability_log_list_idx
    ON interpretability_log (window_end DESC, model_name, model_version DESC, shap_rank NULLS LAST, feature);

-- The run links (/runs/{dag_id}/{run_id}, include/modelwatch/api/queries_links.py): what one DAG run wrote,
-- by the run_id its tasks record. Without an index, a sequential scan of a year of windows (27 ms) and
-- comparisons (22 ms) per click, growing with the history.
CREATE INDEX drift_windows_run_idx ON drift_windows (run_id);
CREATE INDEX live_vs_backtest_comparison_run_idx ON live_vs_backtest_comparison (run_id);
