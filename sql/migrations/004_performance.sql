-- 004: live performance tracking (performance_daily DAG): snapshots, live vs
-- backtest comparison, label-free estimates with their realized values, model
-- health and the interpretability log. Every table is keyed on the run's
-- window end ("as of"), so re-running a window replaces its rows.

-- Live metrics over the trailing evaluation period ending at window_end, from
-- predictions whose outcome matured before window_end. symbol / timeframe '*'
-- is the model version as a whole.
CREATE TABLE live_performance_daily (
    model_name      text             NOT NULL,
    model_version   integer          NOT NULL,
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,       -- as of
    symbol          text             NOT NULL DEFAULT '*',
    timeframe       text             NOT NULL DEFAULT '*',
    eval_start      date,                            -- first entry day in the evaluation period
    eval_end        date,                            -- last entry day
    n               integer          NOT NULL,       -- matured predictions
    n_trades        integer          NOT NULL,
    n_days          integer          NOT NULL,
    accuracy        double precision,
    macro_precision double precision,
    macro_recall    double precision,
    macro_f1        double precision,
    hit_rate        double precision,
    win_rate        double precision,
    profit_factor   double precision,
    avg_rr          double precision,
    sharpe          double precision,                -- annualized: mean/sd of daily cohort returns * sqrt(252/horizon)
    max_drawdown    double precision,
    brier           double precision,
    ece             double precision,
    avg_confidence  double precision,
    per_class       jsonb            NOT NULL DEFAULT '{}'::jsonb,  -- precision/recall/f1/support per class
    run_id          text,
    PRIMARY KEY (model_name, model_version, window_end, symbol, timeframe),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);

CREATE TABLE live_vs_backtest_comparison (
    comparison_id   bigserial        PRIMARY KEY,
    model_name      text             NOT NULL,
    model_version   integer          NOT NULL,
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,
    metric          text             NOT NULL,
    is_primary      boolean          NOT NULL DEFAULT false,   -- the metric that drives the performance alert
    live_value      double precision,
    baseline_value  double precision,
    rel_diff        double precision,               -- (live - baseline) / |baseline|
    ci_low          double precision,               -- block-bootstrap CI of the live value
    ci_high         double precision,
    rel_ci_low      double precision,
    rel_ci_high     double precision,
    threshold       double precision,               -- baseline - tolerance * |baseline|
    tolerance_rel   double precision NOT NULL,
    degraded        boolean,                        -- NULL: undecidable (too few days / no baseline)
    status          text             NOT NULL CHECK (status IN ('ok', 'degraded', 'insufficient_data', 'no_baseline')),
    n_days          integer          NOT NULL,
    n               integer          NOT NULL,
    block_length    integer          NOT NULL,
    n_boot          integer          NOT NULL,
    alpha           double precision NOT NULL,
    run_id          text,
    UNIQUE (model_name, model_version, window_end, metric),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);

-- Label-free (confidence-based) estimate for the window's predictions whose
-- outcome had not matured at window_end; a later run fills realized once all
-- of them matured, so the estimator's error is auditable.
CREATE TABLE performance_estimates (
    model_name      text             NOT NULL,
    model_version   integer          NOT NULL,
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,
    metric          text             NOT NULL CHECK (metric IN ('accuracy', 'macro_f1')),
    n_predictions   integer          NOT NULL,
    prediction_ids  bigint[]         NOT NULL,
    estimate        double precision,               -- NULL when the calibration check failed
    estimate_unchecked double precision,            -- the calibrated number even when withheld: audits the check itself
    status          text             NOT NULL CHECK (status IN ('ok', 'unreliable', 'empty')),
    reason          text             NOT NULL DEFAULT '',
    calibration     jsonb            NOT NULL DEFAULT '{}'::jsonb,  -- check result: ece, null q95, n ...
    realized        double precision,
    abs_error       double precision,               -- |estimate - realized|
    abs_error_unchecked double precision,           -- |estimate_unchecked - realized|
    realized_n      integer,
    realized_as_of  timestamptz,                    -- window end of the run that filled realized
    run_id          text,
    PRIMARY KEY (model_name, model_version, window_end, metric),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX performance_estimates_open_idx ON performance_estimates (model_name, model_version) WHERE realized IS NULL;

CREATE TABLE model_health_daily (
    model_name      text             NOT NULL,
    model_version   integer          NOT NULL,
    window_end      timestamptz      NOT NULL,
    status          text             NOT NULL CHECK (status IN ('healthy', 'warning', 'critical')),
    reasons         jsonb            NOT NULL DEFAULT '[]'::jsonb,
    drift_score     double precision,
    perf_metric     text,
    perf_rel_drop   double precision,               -- positive = live below baseline
    perf_degraded   boolean,
    dq_failures     integer          NOT NULL DEFAULT 0,
    model_age_days  integer,
    run_id          text,
    PRIMARY KEY (model_name, model_version, window_end),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);

-- Latest health per model version, with its aliases: what a dashboard reads.
CREATE VIEW model_health_current AS
SELECT DISTINCT ON (h.model_name, h.model_version)
       h.model_name, h.model_version, h.window_end AS as_of, h.status, h.reasons, h.drift_score,
       h.perf_metric, h.perf_rel_drop, h.perf_degraded, h.dq_failures, h.model_age_days,
       (SELECT array_agg(a.alias ORDER BY a.alias) FROM model_aliases a
         WHERE a.model_name = h.model_name AND a.version = h.model_version) AS aliases
FROM model_health_daily h
ORDER BY h.model_name, h.model_version, h.window_end DESC;

-- Per model version and window: global gain importance of the model and mean
-- |SHAP| of the window's predictions, per feature (trend views).
CREATE TABLE interpretability_log (
    model_name      text             NOT NULL,
    model_version   integer          NOT NULL,
    window_start    timestamptz      NOT NULL,
    window_end      timestamptz      NOT NULL,
    feature         text             NOT NULL,
    importance_gain double precision,               -- share of total gain (sums to 1)
    mean_abs_shap   double precision,
    shap_rank       integer,
    n_predictions   integer          NOT NULL,
    run_id          text,
    PRIMARY KEY (model_name, model_version, window_end, feature),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
