-- 006: quality-gated retraining. Training datasets (versioned by fingerprint),
-- training jobs (one per trigger and algorithm) and validation gate results.
-- No foreign keys to or from the registry tables: e2e tests truncate these
-- tables while keeping model_versions.

CREATE TABLE training_datasets (
    dataset_id      bigserial    PRIMARY KEY,
    trigger_id      bigint       NOT NULL,
    model_name      text         NOT NULL,
    fingerprint     text         NOT NULL,            -- SHA-256 of the assembled rows
    date_start      date         NOT NULL,
    date_end        date         NOT NULL,
    n_rows          integer      NOT NULL CHECK (n_rows >= 0),
    rows_per_class  jsonb        NOT NULL DEFAULT '{}'::jsonb,
    validation      jsonb        NOT NULL DEFAULT '{}'::jsonb,   -- GX result summary
    created_by_run  text,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    CHECK (date_end >= date_start),
    UNIQUE (trigger_id, fingerprint)
);

CREATE TABLE training_jobs (
    job_id          bigserial    PRIMARY KEY,
    trigger_id      bigint       NOT NULL,
    dataset_id      bigint,
    model_name      text         NOT NULL,
    algorithm       text         NOT NULL,
    retrain_mode    text         NOT NULL CHECK (retrain_mode IN ('full', 'incremental')),
    status          text         NOT NULL DEFAULT 'running'
                                 CHECK (status IN ('running', 'succeeded', 'failed')),
    params          jsonb        NOT NULL DEFAULT '{}'::jsonb,
    metrics         jsonb        NOT NULL DEFAULT '{}'::jsonb,
    candidate_version integer,                        -- set once the candidate is registered
    error           text,
    started_by_run  text,
    started_at      timestamptz  NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    duration_s      double precision,
    UNIQUE (trigger_id, algorithm)
);

CREATE TABLE quality_gate_results (
    id              bigserial    PRIMARY KEY,
    trigger_id      bigint       NOT NULL,
    job_id          bigint,
    model_name      text         NOT NULL,
    candidate_version integer,
    champion_version  integer,
    gate            text         NOT NULL,
    status          text         NOT NULL CHECK (status IN ('pass', 'borderline', 'fail')),
    value           double precision,
    threshold       double precision,
    message         text         NOT NULL DEFAULT '',
    evidence        jsonb        NOT NULL DEFAULT '{}'::jsonb,
    run_id          text,
    evaluated_at    timestamptz  NOT NULL,            -- the trigger's window end, never wall clock
    UNIQUE (trigger_id, job_id, gate)
);
CREATE INDEX quality_gate_results_model_idx ON quality_gate_results (model_name, evaluated_at);
