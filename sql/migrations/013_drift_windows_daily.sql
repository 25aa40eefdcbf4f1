-- 013: a daily rollup of drift windows for the model page's whole-life timeline
-- (include/modelwatch/api/queries_pages.py). A year of hourly windows of 20 versions is 175,200 rows; the page
-- summarises them per (version, multi-day bucket), and aggregating them per request cost ~85 ms of the page's
-- 300 ms budget (`python -m bench.api_latency`). This table holds one row per (model, version, UTC day of the
-- window start) with what the page draws, kept exact by statement-level triggers on drift_windows: any insert,
-- update or delete (a re-run clears and rewrites its window; COPY fires once per statement) recomputes the
-- affected days from drift_windows itself. Only scored windows (drift_score not null) count.
CREATE TABLE drift_windows_daily (
    model_name         text             NOT NULL,
    model_version      integer          NOT NULL,
    day                date             NOT NULL,
    n_windows          integer          NOT NULL CHECK (n_windows > 0),
    n_rows             bigint           NOT NULL,
    max_drift_score    double precision NOT NULL,
    level_rank         integer          NOT NULL CHECK (level_rank BETWEEN 0 AND 2),  -- none 0, warning 1, critical 2
    max_n_drifted      integer          NOT NULL,
    any_drifted        boolean          NOT NULL,
    first_window_start timestamptz      NOT NULL,
    last_window_end    timestamptz      NOT NULL,
    PRIMARY KEY (model_name, model_version, day),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX drift_windows_daily_end_idx ON drift_windows_daily (model_name, last_window_end);

-- recompute the given (model, version, day) keys from drift_windows: upsert days that still have scored windows,
-- delete the others
CREATE FUNCTION modelwatch_refresh_drift_days(keys jsonb) RETURNS void LANGUAGE sql AS $$
    WITH k AS (
        SELECT DISTINCT x->>'m' AS model_name, (x->>'v')::int AS model_version, (x->>'d')::date AS day
        FROM jsonb_array_elements(keys) AS x
    ), agg AS (
        SELECT w.model_name, w.model_version, (w.window_start AT TIME ZONE 'UTC')::date AS day,
               count(*) AS n_windows, sum(w.n_rows) AS n_rows, max(w.drift_score) AS max_drift_score,
               max(CASE w.level WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END) AS level_rank,
               max(w.n_drifted) AS max_n_drifted, bool_or(w.drifted) AS any_drifted,
               min(w.window_start) AS first_window_start, max(w.window_end) AS last_window_end
        FROM drift_windows w
        JOIN k ON k.model_name = w.model_name AND k.model_version = w.model_version
              AND w.window_start >= (k.day::timestamp AT TIME ZONE 'UTC')
              AND w.window_start < ((k.day + 1)::timestamp AT TIME ZONE 'UTC')
        WHERE w.drift_score IS NOT NULL
        GROUP BY 1, 2, 3
    ), gone AS (
        DELETE FROM drift_windows_daily d USING k
        WHERE d.model_name = k.model_name AND d.model_version = k.model_version AND d.day = k.day
          AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.model_name = d.model_name
                          AND agg.model_version = d.model_version AND agg.day = d.day)
    )
    INSERT INTO drift_windows_daily SELECT * FROM agg
    ON CONFLICT (model_name, model_version, day) DO UPDATE SET
        n_windows = EXCLUDED.n_windows, n_rows = EXCLUDED.n_rows, max_drift_score = EXCLUDED.max_drift_score,
        level_rank = EXCLUDED.level_rank, max_n_drifted = EXCLUDED.max_n_drifted,
        any_drifted = EXCLUDED.any_drifted, first_window_start = EXCLUDED.first_window_start,
        last_window_end = EXCLUDED.last_window_end;
$$;

CREATE FUNCTION modelwatch_drift_days_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys jsonb := '[]'::jsonb;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        keys := keys || coalesce((SELECT jsonb_agg(DISTINCT jsonb_build_object('m', model_name, 'v', model_version,
            'd', (window_start AT TIME ZONE 'UTC')::date)) FROM new_rows), '[]'::jsonb);
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        keys := keys || coalesce((SELECT jsonb_agg(DISTINCT jsonb_build_object('m', model_name, 'v', model_version,
            'd', (window_start AT TIME ZONE 'UTC')::date)) FROM old_rows), '[]'::jsonb);
    END IF;
    PERFORM modelwatch_refresh_drift_days(keys);
    RETURN NULL;
END;
$$;

CREATE TRIGGER drift_windows_daily_insert AFTER INSERT ON drift_windows
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION modelwatch_drift_days_changed();
CREATE TRIGGER drift_windows_daily_update AFTER UPDATE ON drift_windows
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION modelwatch_drift_days_changed();
CREATE TRIGGER drift_windows_daily_delete AFTER DELETE ON drift_windows
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION modelwatch_drift_days_changed();

-- the windows written before this migration
SELECT modelwatch_refresh_drift_days(coalesce(jsonb_agg(DISTINCT jsonb_build_object('m', model_name,
    'v', model_version, 'd', (window_start AT TIME ZONE 'UTC')::date)), '[]'::jsonb))
FROM drift_windows WHERE drift_score IS NOT NULL;

-- The performance series of the same page reads the primary metric's comparisons only (1 row in 13).
CREATE INDEX live_vs_backtest_comparison_primary_idx ON live_vs_backtest_comparison (model_name, window_end)
    WHERE is_primary;
