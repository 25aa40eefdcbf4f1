-- 005: closed loop. Retraining triggers (written by the response rules or by
-- hand, claimed by retrain_gated). More closed-loop tables follow below.

CREATE TABLE retraining_triggers (
    trigger_id      bigserial    PRIMARY KEY,
    model_name      text         NOT NULL,
    model_version   integer,                       -- the version the evidence is about (the champion then)
    trigger_type    text         NOT NULL CHECK (trigger_type IN ('drift', 'degradation', 'age', 'risk', 'manual')),
    retrain_mode    text         NOT NULL CHECK (retrain_mode IN ('full', 'incremental')),
    priority        text         NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    rule_name       text,                          -- NULL or 'manual' for manual triggers
    reason          text         NOT NULL CHECK (length(btrim(reason)) > 0),
    evidence        jsonb        NOT NULL DEFAULT '{}'::jsonb,
    status          text         NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'claimed', 'done', 'failed', 'cancelled')),
    window_start    timestamptz,                   -- data window the evidence covers
    window_end      timestamptz,
    triggered_at    timestamptz  NOT NULL,         -- logical time of the evaluation (a window end), never wall clock
    created_by      text,                          -- run id or 'cli:<user>'
    claimed_at      timestamptz,
    claimed_by      text,                          -- run id of the retrain_gated run
    completed_at    timestamptz,
    outcome         text,                          -- deployed / rejected / awaiting_approval / failed: <why> ...
    result          jsonb        NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz  NOT NULL DEFAULT now()
);
-- At most one pending and one claimed trigger per model, enforced by the database.
CREATE UNIQUE INDEX retraining_triggers_one_pending ON retraining_triggers (model_name) WHERE status = 'pending';
CREATE UNIQUE INDEX retraining_triggers_one_claimed ON retraining_triggers (model_name) WHERE status = 'claimed';
CREATE INDEX retraining_triggers_model_idx ON retraining_triggers (model_name, triggered_at);
