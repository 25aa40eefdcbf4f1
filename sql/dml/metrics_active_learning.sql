-- Prometheus exporter: the active-learning queue (migration 017) per model that has items: items per status,
-- and the age in days of the oldest pending item measured against the model's newest prediction (bar time, the
-- data's clock, as the queue's expiry in active_learning/store.py: a replay reads like live data). The newest
-- prediction is one index probe per version (predictions_model_ts_idx), and only for models with pending items.
WITH q AS (
    SELECT model_name,
           count(*) FILTER (WHERE status = 'pending')   AS pending,
           count(*) FILTER (WHERE status = 'labelled')  AS labelled,
           count(*) FILTER (WHERE status = 'skipped')   AS skipped,
           count(*) FILTER (WHERE status = 'processed') AS processed,
           count(*) FILTER (WHERE status = 'expired')   AS expired,
           min(ts) FILTER (WHERE status = 'pending')    AS oldest_pending
    FROM active_learning_queue
    GROUP BY model_name
)
SELECT q.model_name, q.pending, q.labelled, q.skipped, q.processed, q.expired,
       -- NULL (left out) without a pending item or a prediction; never negative (a deleted newest prediction)
       CASE WHEN n.newest_ts IS NOT NULL
            THEN greatest(extract(epoch FROM n.newest_ts - q.oldest_pending)::float8 / 86400, 0)
       END AS oldest_pending_age_days
FROM q
LEFT JOIN LATERAL (
    SELECT max(p.ts) AS newest_ts
    FROM model_versions v
    CROSS JOIN LATERAL (
        SELECT ts FROM predictions
        WHERE model_name = v.model_name AND model_version = v.version
        ORDER BY ts DESC LIMIT 1
    ) p
    WHERE v.model_name = q.model_name
) n ON q.oldest_pending IS NOT NULL
ORDER BY q.model_name;
