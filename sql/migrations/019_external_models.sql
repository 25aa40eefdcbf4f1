-- 019: models ModelWatch did not train. Their registration (owner, feature schema with the ranges batches are
-- validated against), the prediction feeds' ingestion log (what was loaded, what was quarantined and why), and the
-- trigger status of a retrain that goes to the model's owner instead of retrain_gated.

-- One row per monitored model: 'native' (ModelWatch trains it) or 'external' (registered from a reference frame).
CREATE TABLE monitored_models (
    model_name     text        PRIMARY KEY CHECK (model_name ~ '^[A-Za-z][A-Za-z0-9_.-]*$'),
    origin         text        NOT NULL CHECK (origin IN ('native', 'external')),
    owner          text,                                    -- who gets an external model's retrain requests
    description    text,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    registered_by  text
);
INSERT INTO monitored_models (model_name, origin, registered_by)
SELECT DISTINCT model_name, 'native', 'migration 019' FROM model_versions ON CONFLICT DO NOTHING;

-- The columns an external version's prediction batches must carry, each with its kind and allowed range or
-- levels: [{"name", "kind": "numeric"|"categorical", "min", "max", "levels", "max_null_share"}]. NULL for
-- native versions (their features are computed by ModelWatch).
ALTER TABLE model_versions ADD COLUMN feature_schema jsonb;

-- A fired rule of an external model is recorded with this status (and its owner notified): nothing claims it.
ALTER TABLE retraining_triggers DROP CONSTRAINT IF EXISTS retraining_triggers_status_check;
ALTER TABLE retraining_triggers ADD CONSTRAINT retraining_triggers_status_check
    CHECK (status IN ('pending', 'claimed', 'done', 'failed', 'cancelled', 'external_retrain_requested'));

-- Every batch ingest_predictions looked at, loaded or quarantined. A batch is identified by its name and content:
-- the same file dropped again is recognised (and loaded again idempotently), a corrected file is a new batch.
CREATE TABLE ingest_batches (
    batch_id        bigserial   PRIMARY KEY,
    source          text        NOT NULL CHECK (source IN ('folder', 'table')),
    kind            text        NOT NULL CHECK (kind IN ('predictions', 'outcomes')),
    name            text        NOT NULL,                   -- file name in the drop folder
    sha256          text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    model_name      text,
    model_version   integer,
    status          text        NOT NULL CHECK (status IN ('loaded', 'quarantined')),
    n_rows          integer     NOT NULL DEFAULT 0 CHECK (n_rows >= 0),
    n_written       integer     NOT NULL DEFAULT 0 CHECK (n_written >= 0),
    interval_start  timestamptz,                            -- [first ts, last ts] of the batch's rows
    interval_end    timestamptz,
    error           text,                                   -- why it was quarantined: file, row, column
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    run_id          text,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'quarantined') = (error IS NOT NULL)),
    UNIQUE (source, kind, name, sha256)
);
CREATE INDEX ingest_batches_model_idx ON ingest_batches (model_name, batch_id);

-- An external model's outcome is its realized class; a return is optional (trading metrics need it).
ALTER TABLE outcomes ALTER COLUMN realized_return DROP NOT NULL;

-- The second shape of the feed: the platform INSERTs a batch's rows here in one transaction, all with the same
-- `batch` key; ingest_predictions takes each (batch, kind) whole, validates it like a dropped file, loads or
-- quarantines it (the quarantined rows are kept as a Parquet file in the inbox's quarantine folder) and deletes
-- its rows here in the same transaction as the load or the quarantine record.
CREATE TABLE ingest_staging (
    staged_id        bigserial        PRIMARY KEY,
    batch            text             NOT NULL CHECK (length(btrim(batch)) > 0),
    kind             text             NOT NULL CHECK (kind IN ('predictions', 'outcomes')),
    model_name       text             NOT NULL,
    model_version    integer,                       -- default: the model's champion
    ts               timestamptz      NOT NULL,
    symbol           text             NOT NULL,
    timeframe        text,                          -- default '1d'
    features         jsonb,                         -- predictions: {"feature": value}
    probabilities    jsonb,                         -- predictions: {"class": p}
    predicted_label  text,                          -- predictions, optional
    realized_label   text,                          -- outcomes
    realized_return  double precision,              -- outcomes, optional
    matured_at       timestamptz,                   -- outcomes, optional (default ts + horizon_days)
    staged_at        timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX ingest_staging_batch_idx ON ingest_staging (batch, kind, staged_id);
