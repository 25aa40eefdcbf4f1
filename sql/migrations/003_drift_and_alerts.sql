-- 003: drift evaluation results, data-quality results and alerts.

-- One row per (model version, window): what happened to the window as a whole.
CREATE TABLE drift_windows (
    model_name     text             NOT NULL,
    model_version  integer          NOT NULL,
    window_start   timestamptz      NOT NULL,
    window_end     timestamptz      NOT NULL CHECK (window_end >= window_start),
    status         text             NOT NULL CHECK (status IN ('evaluated', 'empty', 'data_quality_failed')),
    n_rows         integer          NOT NULL,
    drift_score    double precision,           -- 0..1, importance-weighted
    level          text             CHECK (level IN ('none', 'warning', 'critical')),
    n_drifted      integer          NOT NULL DEFAULT 0,
    drifted        boolean          NOT NULL DEFAULT false,
    alert_state    text,                       -- hysteresis state after this window
    summary        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    run_id         text,
    PRIMARY KEY (model_name, model_version, window_start),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX drift_windows_end_idx ON drift_windows (window_end);

CREATE TABLE drift_results (
    model_name     text             NOT NULL,
    model_version  integer          NOT NULL,
    window_start   timestamptz      NOT NULL,
    window_end     timestamptz      NOT NULL,
    kind           text             NOT NULL CHECK (kind IN ('feature', 'prediction', 'concept')),
    feature        text             NOT NULL,
    test           text             NOT NULL,
    statistic      double precision,
    p_value        double precision,
    severity       double precision NOT NULL DEFAULT 0 CHECK (severity BETWEEN 0 AND 100),
    drifted        boolean          NOT NULL DEFAULT false,
    n_current      integer,
    details        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (model_name, model_version, window_start, feature, test),
    FOREIGN KEY (model_name, model_version, window_start)
        REFERENCES drift_windows (model_name, model_version, window_start) ON DELETE CASCADE
);
CREATE INDEX drift_results_feature_idx ON drift_results (model_name, feature, window_start);

CREATE TABLE data_quality_results (
    source         text        NOT NULL,      -- 'drift_window' | 'training_dataset' | ...
    subject        text        NOT NULL,      -- e.g. 'spx_signal v1' or a dataset fingerprint
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    expectation    text        NOT NULL,
    column_name    text        NOT NULL DEFAULT '',
    success        boolean     NOT NULL,
    observed       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    run_id         text,
    PRIMARY KEY (source, subject, window_start, expectation, column_name)
);

-- Alerts from every source share one lifecycle: open -> acknowledged -> resolved.
-- At most one unresolved alert per (model, kind): a repeat updates it.
CREATE TABLE alerts (
    alert_id        bigserial        PRIMARY KEY,
    model_name      text             NOT NULL,
    model_version   integer,
    kind            text             NOT NULL CHECK (kind IN ('drift', 'performance', 'data_quality', 'age', 'risk')),
    status          text             NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    severity        text             NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    score           double precision,
    title           text             NOT NULL,
    message         text             NOT NULL,
    evidence        jsonb            NOT NULL DEFAULT '{}'::jsonb,
    first_window    timestamptz      NOT NULL,
    last_window     timestamptz      NOT NULL,
    occurrences     integer          NOT NULL DEFAULT 1,
    opened_at       timestamptz      NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolution      text,
    run_id          text
);
CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (model_name, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_model_idx ON alerts (model_name, opened_at);
