-- 007: the rest of the closed loop. Automated response rules (seeded with the
-- predecessor's defaults), the audit of every automated decision, and the
-- feedback of completed retrains into per-rule precision.

CREATE TABLE automated_response_rules (
    rule_name       text             PRIMARY KEY CHECK (length(btrim(rule_name)) > 0),
    metric          text             NOT NULL CHECK (metric IN ('drift_score', 'performance_drop', 'model_age_days', 'risk_score')),
    operator        text             NOT NULL DEFAULT '>' CHECK (operator IN ('>', '>=')),
    threshold       double precision NOT NULL CHECK (threshold >= 0 AND threshold < 'Infinity'::float8),
    retrain_mode    text             NOT NULL CHECK (retrain_mode IN ('full', 'incremental')),
    priority        text             NOT NULL CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    cooldown_hours  double precision NOT NULL CHECK (cooldown_hours >= 0 AND cooldown_hours < 'Infinity'::float8),
    enabled         boolean          NOT NULL DEFAULT true,
    model_overrides jsonb            NOT NULL DEFAULT '{}'::jsonb,   -- {"model": {"threshold": 0.4, ...}}
    description     text,
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    updated_by      text
);

-- A rule changed by plain SQL is checked like one changed by the CLI: the
-- threshold range of its metric and every per-model override. A bad statement
-- fails with the field named and changes nothing.
CREATE FUNCTION modelwatch_check_rule(metric text, threshold float8, operator text, retrain_mode text,
                                      priority text, cooldown float8, prefix text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    hi float8 := CASE metric WHEN 'drift_score' THEN 1 WHEN 'performance_drop' THEN 1
                             WHEN 'risk_score' THEN 100 ELSE 'Infinity'::float8 END;
BEGIN
    IF threshold IS NULL OR threshold <> threshold OR threshold < 0 OR threshold > hi OR threshold = 'Infinity'::float8 THEN
        RAISE EXCEPTION '%threshold: % out of range [0, %] for metric %', prefix, threshold, hi, metric
            USING ERRCODE = 'check_violation';
    END IF;
    IF operator NOT IN ('>', '>=') THEN
        RAISE EXCEPTION '%operator: unknown operator %', prefix, operator USING ERRCODE = 'check_violation';
    END IF;
    IF retrain_mode NOT IN ('full', 'incremental') THEN
        RAISE EXCEPTION '%retrain_mode: unknown retrain mode %', prefix, retrain_mode USING ERRCODE = 'check_violation';
    END IF;
    IF priority NOT IN ('low', 'medium', 'high', 'critical') THEN
        RAISE EXCEPTION '%priority: unknown priority %', prefix, priority USING ERRCODE = 'check_violation';
    END IF;
    IF cooldown IS NULL OR cooldown < 0 OR cooldown = 'Infinity'::float8 THEN
        RAISE EXCEPTION '%cooldown_hours: must be a finite number >= 0, got %', prefix, cooldown
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE FUNCTION modelwatch_validate_rule() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m text;
    o jsonb;
    k text;
    p text;
BEGIN
    PERFORM modelwatch_check_rule(NEW.metric, NEW.threshold, NEW.operator, NEW.retrain_mode, NEW.priority,
                                  NEW.cooldown_hours, '');
    IF jsonb_typeof(NEW.model_overrides) <> 'object' THEN
        RAISE EXCEPTION 'model_overrides: must be a JSON object of model -> overrides' USING ERRCODE = 'check_violation';
    END IF;
    FOR m, o IN SELECT key, value FROM jsonb_each(NEW.model_overrides) LOOP
        p := format('model_overrides[%L].', m);
        IF length(btrim(m)) = 0 THEN
            RAISE EXCEPTION 'model_overrides: model name must be non-empty' USING ERRCODE = 'check_violation';
        END IF;
        IF jsonb_typeof(o) <> 'object' THEN
            RAISE EXCEPTION '%: must be an object of field -> value', rtrim(p, '.') USING ERRCODE = 'check_violation';
        END IF;
        FOR k IN SELECT jsonb_object_keys(o) LOOP
            IF k NOT IN ('threshold', 'enabled', 'cooldown_hours', 'operator', 'retrain_mode', 'priority') THEN
                RAISE EXCEPTION '%: cannot be overridden', p || k USING ERRCODE = 'check_violation';
            END IF;
        END LOOP;
        IF o ? 'threshold' AND jsonb_typeof(o -> 'threshold') <> 'number' THEN
            RAISE EXCEPTION '%threshold: must be a number', p USING ERRCODE = 'check_violation';
        END IF;
        IF o ? 'cooldown_hours' AND jsonb_typeof(o -> 'cooldown_hours') <> 'number' THEN
            RAISE EXCEPTION '%cooldown_hours: must be a number', p USING ERRCODE = 'check_violation';
        END IF;
        IF o ? 'enabled' AND jsonb_typeof(o -> 'enabled') <> 'boolean' THEN
            RAISE EXCEPTION '%enabled: must be true or false', p USING ERRCODE = 'check_violation';
        END IF;
        PERFORM modelwatch_check_rule(NEW.metric,
                                      coalesce((o ->> 'threshold')::float8, NEW.threshold),
                                      coalesce(o ->> 'operator', NEW.operator),
                                      coalesce(o ->> 'retrain_mode', NEW.retrain_mode),
                                      coalesce(o ->> 'priority', NEW.priority),
                                      coalesce((o ->> 'cooldown_hours')::float8, NEW.cooldown_hours), p);
    END LOOP;
    RETURN NEW;
END $$;

CREATE TRIGGER automated_response_rules_validate BEFORE INSERT OR UPDATE ON automated_response_rules
    FOR EACH ROW EXECUTE FUNCTION modelwatch_validate_rule();

-- The predecessor's defaults (seed 001/004). Cooldowns are ours, see rules.py.
INSERT INTO automated_response_rules (rule_name, metric, operator, threshold, retrain_mode, priority, cooldown_hours, description, updated_by) VALUES
    ('drift_full_retrain',      'drift_score',      '>', 0.25, 'full',        'high',     24,  'model drift score above 0.25: full retrain', 'migration 007'),
    ('performance_incremental', 'performance_drop', '>', 0.10, 'incremental', 'medium',   24,  'live performance more than 10% below the backtest: incremental retrain', 'migration 007'),
    ('age_incremental',         'model_age_days',   '>', 30,   'incremental', 'low',      168, 'champion trained on data more than 30 days old: incremental retrain', 'migration 007'),
    ('risk_full_retrain',       'risk_score',       '>', 80,   'full',        'critical', 6,   'risk score above 80: full retrain', 'migration 007');

-- Every automated decision of the loop, one row per (model, source, evaluation
-- time, rule, action); evaluated_at is the logical time (window end), never the
-- wall clock, so a re-run of a window finds its earlier decisions.
CREATE TABLE closed_loop_actions (
    action_id      bigserial        PRIMARY KEY,
    model_name     text             NOT NULL,
    model_version  integer,
    source         text             NOT NULL CHECK (source IN ('drift', 'performance', 'schedule', 'manual')),
    rule_name      text             NOT NULL,
    action         text             NOT NULL CHECK (action IN ('fire', 'upgrade', 'suppressed_cooldown',
                                                               'suppressed_episode', 'no_change', 'disabled', 'cancelled')),
    trigger_id     bigint           REFERENCES retraining_triggers (trigger_id),
    alert_id       bigint           REFERENCES alerts (alert_id),
    metric         text,
    observed       double precision,
    threshold      double precision,
    reason         text             NOT NULL,
    evidence       jsonb            NOT NULL DEFAULT '{}'::jsonb,
    evaluated_at   timestamptz      NOT NULL,
    run_id         text,
    recorded_at    timestamptz      NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX closed_loop_actions_once ON closed_loop_actions (model_name, source, evaluated_at, rule_name, action);
CREATE INDEX closed_loop_actions_fired_idx ON closed_loop_actions (model_name, rule_name, evaluated_at)
    WHERE action IN ('fire', 'upgrade');

-- One row per completed trigger: live performance of the champion before the
-- retrain and of the champion after it. improved is NULL until the new
-- champion has enough matured outcomes; a rejected or failed retrain did not
-- improve the model.
CREATE TABLE feedback_loop_metrics (
    trigger_id      bigint           PRIMARY KEY REFERENCES retraining_triggers (trigger_id),
    model_name      text             NOT NULL,
    rule_name       text,
    trigger_type    text             NOT NULL,
    outcome         text             NOT NULL,
    completed_at    timestamptz      NOT NULL,
    version_before  integer,
    version_after   integer,
    metric          text             NOT NULL DEFAULT 'accuracy',
    before_value    double precision,
    after_value     double precision,
    n_before        integer,
    n_after         integer,
    improved        boolean,
    evaluated_at    timestamptz      NOT NULL,
    run_id          text
);

-- Per rule: how often it fired, how often it was held back, and its precision
-- (share of its judged retrains that improved the model).
CREATE VIEW feedback_loop_rule_stats AS
SELECT r.rule_name,
       r.metric,
       r.enabled,
       coalesce(a.fired, 0)      AS fired,
       coalesce(a.upgraded, 0)   AS upgraded,
       coalesce(a.suppressed, 0) AS suppressed,
       coalesce(f.completed, 0)  AS retrains_completed,
       coalesce(f.judged, 0)     AS retrains_judged,
       coalesce(f.improved, 0)   AS retrains_improved,
       f.improved::float8 / nullif(f.judged, 0) AS precision
FROM (SELECT rule_name, metric, enabled FROM automated_response_rules
      UNION ALL SELECT 'manual', NULL, true) r
LEFT JOIN (SELECT rule_name,
                  count(*) FILTER (WHERE action = 'fire')                                         AS fired,
                  count(*) FILTER (WHERE action = 'upgrade')                                      AS upgraded,
                  count(*) FILTER (WHERE action IN ('suppressed_cooldown', 'suppressed_episode')) AS suppressed
           FROM closed_loop_actions GROUP BY rule_name) a USING (rule_name)
LEFT JOIN (SELECT rule_name,
                  count(*)                                  AS completed,
                  count(improved)                           AS judged,
                  count(*) FILTER (WHERE improved)          AS improved
           FROM feedback_loop_metrics GROUP BY rule_name) f USING (rule_name);
