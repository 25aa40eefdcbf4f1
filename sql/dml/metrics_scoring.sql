-- Prometheus exporter: the scoring batches (migration 012) per model version as a histogram of their
-- durations: cumulative counts at each upper bound of the buckets parameter (le, inclusive, ascending), count, sum;
-- and the rows scored, the newest batch's data-interval end and when the newest batch was written.
WITH per_bound AS (
    SELECT s.model_name, s.model_version, b.i, count(*) FILTER (WHERE s.duration_s <= b.le) AS n_le
    FROM scoring_batches s
    CROSS JOIN unnest(%(buckets)s::float8[]) WITH ORDINALITY AS b(le, i)
    GROUP BY s.model_name, s.model_version, b.i
), totals AS (
    SELECT model_name, model_version, count(*) AS n, sum(duration_s) AS duration_sum, sum(n_rows) AS rows_scored,
           extract(epoch FROM max(window_end))::float8 AS last_window_end,
           extract(epoch FROM max(scored_at))::float8 AS last_scored_at
    FROM scoring_batches
    GROUP BY model_name, model_version
)
SELECT t.model_name, t.model_version AS version, t.n, t.duration_sum, t.rows_scored, t.last_window_end,
       t.last_scored_at,
       (SELECT array_agg(p.n_le ORDER BY p.i) FROM per_bound p
        WHERE p.model_name = t.model_name AND p.model_version = t.model_version) AS bucket_counts
FROM totals t
ORDER BY t.model_name, t.model_version;
