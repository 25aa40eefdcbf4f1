-- 001: core tables: model registry, alias history, predictions, outcomes.

CREATE TABLE model_versions (
    model_name          text        NOT NULL,
    version             integer     NOT NULL CHECK (version > 0),
    algorithm           text        NOT NULL,
    params              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    features            jsonb       NOT NULL DEFAULT '[]'::jsonb,   -- ordered feature names
    classes             jsonb       NOT NULL DEFAULT '["SELL","HOLD","BUY"]'::jsonb,
    horizon_days        integer,
    train_start         date,
    train_end           date,
    dataset_fingerprint text,
    metrics             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    feature_importance  jsonb,                                       -- {"feature": gain}
    reference_profile   jsonb,                                       -- drift reference, see drift.py
    artifact_path       text,
    artifact_sha256     text        CHECK (artifact_sha256 IS NULL OR artifact_sha256 ~ '^[0-9a-f]{64}$'),
    status              text        NOT NULL DEFAULT 'registered'
                                    CHECK (status IN ('registered', 'active', 'retired', 'rejected')),
    created_by_run      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);

-- Current alias -> version. The only way to change it is set_alias() in
-- registry.py, which also appends to model_alias_history in the same transaction.
CREATE TABLE model_aliases (
    model_name  text        NOT NULL,
    alias       text        NOT NULL CHECK (alias ~ '^[a-z][a-z0-9_]*$'),
    version     integer     NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (model_name, alias),
    FOREIGN KEY (model_name, version) REFERENCES model_versions (model_name, version)
);

CREATE TABLE model_alias_history (
    id            bigserial   PRIMARY KEY,
    model_name    text        NOT NULL,
    alias         text        NOT NULL,
    from_version  integer,
    to_version    integer,
    changed_at    timestamptz NOT NULL,
    reason        text        NOT NULL CHECK (length(btrim(reason)) > 0),
    run_id        text,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_alias_history_model_idx ON model_alias_history (model_name, alias, id);

CREATE FUNCTION modelwatch_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER model_alias_history_append_only
    BEFORE UPDATE OR DELETE ON model_alias_history
    FOR EACH ROW EXECUTE FUNCTION modelwatch_append_only();

CREATE TABLE predictions (
    prediction_id    bigserial        PRIMARY KEY,
    model_name       text             NOT NULL,
    model_version    integer          NOT NULL,
    ts               timestamptz      NOT NULL,       -- bar time the signal is for
    symbol           text             NOT NULL,
    timeframe        text             NOT NULL DEFAULT '1d',
    features         jsonb            NOT NULL,
    predicted_label  text             NOT NULL,
    probabilities    jsonb            NOT NULL,       -- {"SELL": p, "HOLD": p, "BUY": p}
    confidence       double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    run_id           text,
    scored_at        timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (model_name, model_version, symbol, timeframe, ts),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX predictions_ts_idx ON predictions (ts);
CREATE INDEX predictions_model_ts_idx ON predictions (model_name, model_version, ts);

CREATE TABLE outcomes (
    prediction_id    bigint           PRIMARY KEY REFERENCES predictions (prediction_id) ON DELETE CASCADE,
    realized_return  double precision NOT NULL,       -- forward log return over the horizon
    realized_label   text             NOT NULL,
    r_multiple       double precision,                -- signed trade return / risk unit; 0 for HOLD
    horizon_days     integer          NOT NULL CHECK (horizon_days > 0),
    matured_at       timestamptz      NOT NULL,       -- bar time at which the horizon closed
    run_id           text,
    recorded_at      timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX outcomes_matured_idx ON outcomes (matured_at);

-- Written by the modelwatch_healthcheck DAG: proves the monitoring DB is reachable
-- and migrated, one row per data interval.
CREATE TABLE pipeline_heartbeats (
    dag_id          text        NOT NULL,
    interval_start  timestamptz NOT NULL,
    interval_end    timestamptz NOT NULL,
    schema_version  integer     NOT NULL,
    run_id          text,
    PRIMARY KEY (dag_id, interval_start)
);
