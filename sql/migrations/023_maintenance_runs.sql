-- 023: what the maintenance_daily DAG (include/modelwatch/ops/retention.py) did, one row per (data interval end,
-- table, action): the retention policy applied (the Variable and its value in days), the cutoff derived from the
-- interval end (never wall clock), and the rows it removed, rolled up or stripped, or the partitions it created.
-- Written in the same transaction as the change it reports, so a failed run leaves no row and changes nothing.
-- A re-run of the interval adds what it did (0 once applied: retention is idempotent), so rows_affected stays the
-- total the interval's maintenance changed; runs counts the attempts that committed.
CREATE TABLE maintenance_runs (
    interval_end    timestamptz      NOT NULL,
    table_name      text             NOT NULL,
    action          text             NOT NULL CHECK (action IN ('rollup', 'delete', 'strip_features', 'partitions')),
    policy_variable text,                                -- NULL for 'partitions'
    retention_days  integer          CHECK (retention_days IS NULL OR retention_days > 0),
    cutoff          timestamptz,                         -- rows older than this were in scope
    rows_affected   bigint           NOT NULL DEFAULT 0 CHECK (rows_affected >= 0),  -- rows removed / changed
    rows_written    bigint           NOT NULL DEFAULT 0 CHECK (rows_written >= 0),   -- roll-up rows written
    partitions      text[]           NOT NULL DEFAULT '{}',                          -- partitions created
    runs            integer          NOT NULL DEFAULT 1 CHECK (runs > 0),
    duration_s      double precision NOT NULL DEFAULT 0 CHECK (duration_s >= 0),     -- of the latest run
    run_id          text,
    PRIMARY KEY (interval_end, table_name, action)
);
CREATE INDEX maintenance_runs_table_idx ON maintenance_runs (table_name, interval_end DESC);
