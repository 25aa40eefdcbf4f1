-- 022: the two fastest-growing tables are partitioned by month (PostgreSQL declarative RANGE partitioning on
-- window_start, UTC months), keeping every existing row:
--   drift_results        one row per (model version, hourly window, feature, test): features x tests x 24 a day
--   data_quality_results one row per (hourly drift window, expectation, column)
-- Both primary keys already hold window_start, so they stay as they were; nothing writes them with ON CONFLICT
-- on a key without it (drift_results: delete + insert per window; data_quality_results: ON CONFLICT DO NOTHING,
-- no target). drift_results keeps its foreign key to drift_windows (ON DELETE CASCADE): a partitioned table may
-- reference a plain one. No foreign key references either table.
--
-- Left unpartitioned (README "Retention"): predictions (its primary key prediction_id is referenced by outcomes
-- and active_learning_queue; a partitioned key would have to include ts, which those foreign keys cannot name),
-- drift_windows (referenced by drift_results and kept in full: drift_windows_daily is recomputed from it by
-- triggers), notifications (dedupe_key must stay unique on its own: it is what makes an announcement happen once).
--
-- Partitions are <table>_pYYYYMM for [month, next month) and <table>_default for anything else;
-- modelwatch_ensure_month_partition() adds a month (maintenance_daily creates the coming months ahead), moving
-- rows the default partition holds for that month into it.

CREATE FUNCTION modelwatch_ensure_month_partition(parent regclass, month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo      timestamptz := (date_trunc('month', month::timestamp) AT TIME ZONE 'UTC');
    hi      timestamptz := ((date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC');
    base    text;
    part    text;
    keycol  text;
BEGIN
    SELECT c.relname INTO base FROM pg_class c WHERE c.oid = parent;
    SELECT a.attname INTO keycol
    FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = parent;
    IF keycol IS NULL THEN
        RAISE EXCEPTION 'modelwatch_ensure_month_partition: % is not a partitioned table', base;
    END IF;
    part := format('%s_p%s', base, to_char(lo AT TIME ZONE 'UTC', 'YYYYMM'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- a standalone table first: rows the default partition holds for this month move into it, then it is attached
    -- (attaching checks that the default partition no longer holds any)
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   parent, keycol, keycol, part) USING lo, hi;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    RETURN true;
END;
$$;

-- drift_results ---------------------------------------------------------------------------------------------
ALTER TABLE drift_results RENAME TO drift_results_pre022;
ALTER TABLE drift_results_pre022 DROP CONSTRAINT drift_results_pkey;
DROP INDEX drift_results_feature_idx;
DROP INDEX drift_results_concept_idx;

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
    CONSTRAINT drift_results_pkey PRIMARY KEY (model_name, model_version, window_start, feature, test),
    CONSTRAINT drift_results_model_name_model_version_window_start_fkey FOREIGN KEY (model_name, model_version, window_start)
        REFERENCES drift_windows (model_name, model_version, window_start) ON DELETE CASCADE
) PARTITION BY RANGE (window_start);
CREATE TABLE drift_results_default PARTITION OF drift_results DEFAULT;

SELECT modelwatch_ensure_month_partition('drift_results', m::date)
FROM (SELECT DISTINCT date_trunc('month', window_start AT TIME ZONE 'UTC') AS m FROM drift_results_pre022) months
ORDER BY m;

INSERT INTO drift_results (model_name, model_version, window_start, window_end, kind, feature, test, statistic,
                           p_value, severity, drifted, n_current, details)
SELECT model_name, model_version, window_start, window_end, kind, feature, test, statistic, p_value, severity,
       drifted, n_current, details
FROM drift_results_pre022;
DROP TABLE drift_results_pre022;

CREATE INDEX drift_results_feature_idx ON drift_results (model_name, feature, window_start);
CREATE INDEX drift_results_concept_idx ON drift_results (model_name, model_version, window_start DESC)
    WHERE kind = 'concept';

-- data_quality_results --------------------------------------------------------------------------------------
ALTER TABLE data_quality_results RENAME TO data_quality_results_pre022;
ALTER TABLE data_quality_results_pre022 DROP CONSTRAINT data_quality_results_pkey;

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
    CONSTRAINT data_quality_results_pkey PRIMARY KEY (source, subject, window_start, expectation, column_name)
) PARTITION BY RANGE (window_start);
CREATE TABLE data_quality_results_default PARTITION OF data_quality_results DEFAULT;

SELECT modelwatch_ensure_month_partition('data_quality_results', m::date)
FROM (SELECT DISTINCT date_trunc('month', window_start AT TIME ZONE 'UTC') AS m FROM data_quality_results_pre022) months
ORDER BY m;

INSERT INTO data_quality_results (source, subject, window_start, window_end, expectation, column_name, success,
                                  observed, run_id)
SELECT source, subject, window_start, window_end, expectation, column_name, success, observed, run_id
FROM data_quality_results_pre022;
DROP TABLE data_quality_results_pre022;
