-- Prometheus exporter: the newest live_performance_daily snapshot of each active version (the version as a
-- whole, symbol/timeframe '*', and each symbol / timeframe), all rows of its newest window end.
WITH active AS (
    SELECT a.model_name, a.version, array_agg(a.alias ORDER BY a.alias) AS aliases
    FROM model_aliases a
    GROUP BY a.model_name, a.version
), latest AS (
    SELECT a.model_name, a.version, a.aliases,
           (SELECT max(l.window_end) FROM live_performance_daily l
            WHERE l.model_name = a.model_name AND l.model_version = a.version) AS window_end
    FROM active a
)
SELECT l.model_name, l.model_version AS version, t.aliases, l.symbol, l.timeframe,
       extract(epoch FROM l.window_end)::float8 AS window_end,
       l.n, l.accuracy, l.macro_precision, l.hit_rate, l.win_rate, l.profit_factor, l.avg_rr, l.sharpe,
       l.max_drawdown
FROM latest t
JOIN live_performance_daily l
  ON l.model_name = t.model_name AND l.model_version = t.version AND l.window_end = t.window_end
ORDER BY l.model_name, l.model_version, l.symbol, l.timeframe;
