-- Active learning: a queue of predictions the model could not decide, labelled by people, that reach retraining.
--
-- Decision confidence of a three-class prediction: the share of the top class among the top two,
-- p1 / (p1 + p2), in [0.5, 1]. On a binary model it is max(p, 1 - p), so the predecessor's bands on the BUY
-- probability (0.45-0.55, 0.46-0.54, 0.48-0.52) map onto it as <= 0.55 (priority 1), <= 0.54 (2), <= 0.52 (3).

CREATE TABLE active_learning_settings (
    model_name            text             PRIMARY KEY CHECK (length(btrim(model_name)) > 0),
    enabled               boolean          NOT NULL DEFAULT true,
    band_max              double precision NOT NULL DEFAULT 0.55,
    priority2_max         double precision NOT NULL DEFAULT 0.54,
    priority3_max         double precision NOT NULL DEFAULT 0.52,
    label_weight          double precision NOT NULL DEFAULT 2.0 CHECK (label_weight > 0 AND label_weight <= 100),
    on_disagreement       text             NOT NULL DEFAULT 'human' CHECK (on_disagreement IN ('human', 'outcome', 'drop')),
    expire_after_days     integer          NOT NULL DEFAULT 90 CHECK (expire_after_days > 0),
    batch_size            integer          NOT NULL DEFAULT 10 CHECK (batch_size BETWEEN 1 AND 200),
    updated_by            text,
    updated_at            timestamptz      NOT NULL DEFAULT now(),
    CHECK (0.5 < priority3_max AND priority3_max <= priority2_max AND priority2_max <= band_max AND band_max <= 1)
);

CREATE TABLE active_learning_queue (
    item_id              bigserial        PRIMARY KEY,
    -- the prediction; a re-scored window re-links its items (and a deleted prediction leaves the item's copy)
    prediction_id        bigint           UNIQUE REFERENCES predictions (prediction_id) ON DELETE SET NULL,
    model_name           text             NOT NULL,
    model_version        integer          NOT NULL,
    symbol               text             NOT NULL,
    ts                   timestamptz      NOT NULL,
    features             jsonb            NOT NULL,
    probabilities        jsonb            NOT NULL,
    predicted_label      text             NOT NULL CHECK (predicted_label IN ('BUY', 'SELL', 'HOLD')),
    confidence           double precision NOT NULL CHECK (confidence >= 0.5 AND confidence <= 1),
    priority             smallint         NOT NULL CHECK (priority IN (1, 2, 3)),
    status               text             NOT NULL DEFAULT 'pending'
                                          CHECK (status IN ('pending', 'labelled', 'skipped', 'processed', 'expired')),
    manual_label         text             CHECK (manual_label IN ('BUY', 'SELL', 'HOLD')),
    labelled_by          text,
    labelled_at          timestamptz,
    notes                text,
    realized_label       text             CHECK (realized_label IN ('BUY', 'SELL', 'HOLD')),
    realized_return      double precision,
    captured_run_id      text,
    captured_at          timestamptz      NOT NULL DEFAULT now(),
    expired_at           timestamptz,
    training_dataset_id  bigint           REFERENCES training_datasets (dataset_id),
    processed_at         timestamptz,
    UNIQUE (model_name, model_version, symbol, ts),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version),
    -- a label exactly on labelled and processed items; who and when on every answered item
    CHECK ((manual_label IS NOT NULL) = (status IN ('labelled', 'processed'))),
    CHECK ((status IN ('labelled', 'processed', 'skipped')) = (labelled_by IS NOT NULL AND labelled_at IS NOT NULL)),
    CHECK ((status = 'processed') = (training_dataset_id IS NOT NULL))
);
CREATE INDEX active_learning_queue_status_idx ON active_learning_queue (status);
CREATE INDEX active_learning_queue_priority_idx ON active_learning_queue (priority DESC, ts);
CREATE INDEX active_learning_queue_confidence_idx ON active_learning_queue (confidence);
CREATE INDEX active_learning_queue_model_idx ON active_learning_queue (model_name, status);

-- The allowed transitions, checked by PostgreSQL whoever writes: pending -> labelled | skipped | expired,
-- labelled -> processed. Everything else (labelling an item twice, an expired or processed one) is refused.
CREATE FUNCTION active_learning_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status AND NEW.status = 'pending' THEN
        RETURN NEW;  -- a re-scored window refreshes a pending item
    END IF;
    IF NEW.status = OLD.status AND NEW.manual_label IS NOT DISTINCT FROM OLD.manual_label
       AND NEW.labelled_by IS NOT DISTINCT FROM OLD.labelled_by THEN
        RETURN NEW;  -- outcome or link updates of an answered item
    END IF;
    IF (OLD.status = 'pending' AND NEW.status IN ('labelled', 'skipped', 'expired'))
       OR (OLD.status = 'labelled' AND NEW.status = 'processed') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'active learning item %: % -> % is not allowed (it was % by % at %)',
        OLD.item_id, OLD.status, NEW.status, OLD.status, coalesce(OLD.labelled_by, 'nobody'), OLD.labelled_at
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER active_learning_queue_transition BEFORE UPDATE ON active_learning_queue
    FOR EACH ROW EXECUTE FUNCTION active_learning_transition();

ALTER TABLE training_datasets ADD COLUMN human_labels integer NOT NULL DEFAULT 0 CHECK (human_labels >= 0);

-- the response rule on accumulated labels, its trigger type and the labelling source of its decisions
ALTER TABLE automated_response_rules DROP CONSTRAINT IF EXISTS automated_response_rules_metric_check;
ALTER TABLE automated_response_rules ADD CONSTRAINT automated_response_rules_metric_check
    CHECK (metric IN ('drift_score', 'performance_drop', 'model_age_days', 'risk_score', 'new_labels'));
ALTER TABLE retraining_triggers DROP CONSTRAINT IF EXISTS retraining_triggers_trigger_type_check;
ALTER TABLE retraining_triggers ADD CONSTRAINT retraining_triggers_trigger_type_check
    CHECK (trigger_type IN ('drift', 'degradation', 'age', 'risk', 'manual', 'active_learning'));
ALTER TABLE closed_loop_actions DROP CONSTRAINT IF EXISTS closed_loop_actions_source_check;
ALTER TABLE closed_loop_actions ADD CONSTRAINT closed_loop_actions_source_check
    CHECK (source IN ('drift', 'performance', 'schedule', 'manual', 'labelling'));

INSERT INTO automated_response_rules (rule_name, metric, operator, threshold, retrain_mode, priority, cooldown_hours, description, updated_by) VALUES
    ('active_learning_retrain', 'new_labels', '>=', 50, 'full', 'medium', 72,
     'at least 50 human labels not yet used by a retrain: full retrain with them', 'migration 017');
