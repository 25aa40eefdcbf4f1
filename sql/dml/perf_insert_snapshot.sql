-- One live-metrics snapshot of a model version (symbol/timeframe '*' = the version as a whole).
INSERT INTO live_performance_daily (model_name, model_version, window_start, window_end, symbol, timeframe,
    eval_start, eval_end, n, n_trades, n_days, accuracy, macro_precision, macro_recall, macro_f1, hit_rate, win_rate,
    profit_factor, avg_rr, sharpe, max_drawdown, brier, ece, avg_confidence, per_class, run_id)
VALUES (%(model)s, %(version)s, %(start)s, %(end)s, %(symbol)s, %(timeframe)s, %(eval_start)s, %(eval_end)s, %(n)s,
    %(n_trades)s, %(n_days)s, %(accuracy)s, %(macro_precision)s, %(macro_recall)s, %(macro_f1)s, %(hit_rate)s,
    %(win_rate)s, %(profit_factor)s, %(avg_rr)s, %(sharpe)s, %(max_drawdown)s, %(brier)s, %(ece)s,
    %(avg_confidence)s, %(per_class)s, %(run_id)s);
