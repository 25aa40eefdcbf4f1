-- 012: what the Prometheus exporter (include/modelwatch/observability/) needs that was not stored yet.
--
-- scoring_batches: one row per scoring batch, i.e. one score_signals `score_symbol` task: a model version
-- scoring one symbol's bars of one data interval. duration_s is the batch's wall time from the start of the
-- task body (champion load and hash check, bar read, features, predict) through writing its predictions;
-- the row is written in the same transaction as the predictions. Keyed like the predictions it replaces,
-- so a re-run of the interval replaces its row (latest duration, row count and run id) instead of adding one.
-- Read by modelwatch_scoring_duration_seconds (histogram) and the scoring staleness gauges.
CREATE TABLE scoring_batches (
    model_name          text             NOT NULL,
    model_version       integer          NOT NULL,
    symbol              text             NOT NULL,
    timeframe           text             NOT NULL DEFAULT '1d',
    window_start        timestamptz      NOT NULL,
    window_end          timestamptz      NOT NULL CHECK (window_end >= window_start),
    n_rows              integer          NOT NULL CHECK (n_rows >= 0),
    n_missing_features  integer          NOT NULL DEFAULT 0 CHECK (n_missing_features >= 0 AND n_missing_features <= n_rows),
    duration_s          double precision NOT NULL CHECK (duration_s >= 0 AND duration_s < 'Infinity'::float8),
    run_id              text,
    scored_at           timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, model_version, symbol, timeframe, window_start, window_end),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);

-- training_job_outcomes: one row per finished attempt of a training job. training_jobs keeps only a job's
-- latest state (a retried job goes failed -> running -> succeeded), so counting its failed rows could go
-- down, which Prometheus reads as a counter reset. This append-only log, filled by a trigger on
-- training_jobs (retrain.py is unchanged), makes modelwatch_model_training_failures_total monotonic.
CREATE TABLE training_job_outcomes (
    id           bigserial    PRIMARY KEY,
    job_id       bigint       NOT NULL,
    trigger_id   bigint       NOT NULL,
    model_name   text         NOT NULL,
    algorithm    text         NOT NULL,
    status       text         NOT NULL CHECK (status IN ('succeeded', 'failed')),
    finished_at  timestamptz,
    recorded_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX training_job_outcomes_model_idx ON training_job_outcomes (model_name, status);

CREATE TRIGGER training_job_outcomes_append_only
    BEFORE UPDATE OR DELETE ON training_job_outcomes
    FOR EACH ROW EXECUTE FUNCTION modelwatch_append_only();

CREATE FUNCTION modelwatch_log_training_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'failed') AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status) THEN
        INSERT INTO training_job_outcomes (job_id, trigger_id, model_name, algorithm, status, finished_at)
        VALUES (NEW.job_id, NEW.trigger_id, NEW.model_name, NEW.algorithm, NEW.status, NEW.finished_at);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER training_jobs_log_outcome
    AFTER INSERT OR UPDATE OF status ON training_jobs
    FOR EACH ROW EXECUTE FUNCTION modelwatch_log_training_outcome();

-- jobs finished before this migration: one attempt each (their earlier failed attempts are not known)
INSERT INTO training_job_outcomes (job_id, trigger_id, model_name, algorithm, status, finished_at)
SELECT job_id, trigger_id, model_name, algorithm, status, finished_at
FROM training_jobs WHERE status IN ('succeeded', 'failed') ORDER BY job_id;

-- The exporter's concept-drift gauges read each active version's newest window with concept rows; without
-- this (small: a few rows per window) index that search walks every feature row of the version's windows
-- back to the last one with matured outcomes.
CREATE INDEX drift_results_concept_idx ON drift_results (model_name, model_version, window_start DESC)
    WHERE kind = 'concept';
