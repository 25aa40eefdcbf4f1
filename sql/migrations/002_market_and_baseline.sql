-- 002: market data and the backtest baseline of each model version.

CREATE TABLE market_bars (
    symbol      text             NOT NULL,
    bar_date    date             NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL CHECK (volume >= 0),
    source      text             NOT NULL DEFAULT 'arch',
    PRIMARY KEY (symbol, bar_date),
    CHECK (high >= low AND close BETWEEN low AND high AND open BETWEEN low AND high)
);
CREATE INDEX market_bars_date_idx ON market_bars (bar_date);

-- Held-out (walk-forward, purged) metrics of a model version: the yardstick that
-- live performance is compared with.
CREATE TABLE backtest_baseline (
    model_name     text             NOT NULL,
    model_version  integer          NOT NULL,
    metric         text             NOT NULL,
    value          double precision,
    period_start   date             NOT NULL,
    period_end     date             NOT NULL,
    n_predictions  integer          NOT NULL,
    details        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (model_name, model_version, metric),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
