-- Prometheus exporter: per model, the counts behind the counters (finished training attempts from the
-- append-only training_job_outcomes, rejected candidates from the registry); also the list of models
-- the alert and trigger gauges are reported for (with zeros).
WITH v AS (
    SELECT model_name, count(*) FILTER (WHERE status = 'rejected') AS rejected
    FROM model_versions GROUP BY model_name
), t AS (
    SELECT model_name,
           count(*) FILTER (WHERE status = 'failed')    AS failed,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded
    FROM training_job_outcomes GROUP BY model_name
)
SELECT model_name, coalesce(v.rejected, 0) AS rejected, coalesce(t.failed, 0) AS failed,
       coalesce(t.succeeded, 0) AS succeeded
FROM v FULL JOIN t USING (model_name)
ORDER BY model_name;
