-- 014: the notification outbox (include/modelwatch/notify/). A row is written in the same transaction as the
-- change it announces (an alert opened, escalated or resolved; a retraining outcome) and sent after commit by
-- include/tasks/notify.py. dedupe_key names the transition (alert:<id>:opened, alert:<id>:escalated:critical,
-- alert:<id>:resolved, retrain:<trigger_id>:<outcome>): a re-run of a window inserts nothing new
-- (ON CONFLICT DO NOTHING), so a transition is announced once, never once per window.
CREATE TABLE notifications (
    id            bigserial    PRIMARY KEY,
    kind          text         NOT NULL CHECK (kind IN ('alert', 'retrain')),
    dedupe_key    text         NOT NULL UNIQUE,
    model_name    text         NOT NULL,
    model_version integer,
    subject       text         NOT NULL,
    body          text         NOT NULL,
    recipients    text[]       NOT NULL DEFAULT '{}',   -- filled when sent (from the modelwatch_smtp connection)
    created_at    timestamptz  NOT NULL,                -- logical time of the transition, never wall clock
    status        text         NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
    attempts      integer      NOT NULL DEFAULT 0,
    sent_at       timestamptz,                          -- wall clock of the delivery attempt that settled it
    error         text
);
CREATE INDEX notifications_pending_idx ON notifications (model_name, id) WHERE status IN ('pending', 'failed');
