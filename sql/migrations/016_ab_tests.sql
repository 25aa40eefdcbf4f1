-- 016: champion/challenger A/B tests (include/modelwatch/ab/). One row per test; PostgreSQL allows one running
-- test per model. Each unit (symbol x session) is assigned to an arm by SHA-256 of (test id, unit) and the
-- assignment is stored; both arms score every row (the challenger's unassigned scores are shadow predictions,
-- ordinary `predictions` rows of its version). ab_daily_results keeps each evaluation day's evidence and decision.
CREATE TABLE ab_tests (
    test_id             bigserial        PRIMARY KEY,
    model_name          text             NOT NULL,
    champion_version    integer          NOT NULL,
    challenger_version  integer          NOT NULL CHECK (challenger_version <> champion_version),
    split               double precision NOT NULL CHECK (split > 0 AND split < 1),  -- challenger share of units
    -- 'fixed': the split stays; 'thompson': each evaluation day sets the next days' split to the posterior
    -- probability that the challenger is better (Thompson sampling on the assigned arms, clipped to 0.05..0.95)
    allocation          text             NOT NULL DEFAULT 'fixed' CHECK (allocation IN ('fixed', 'thompson')),
    assignment_unit     text             NOT NULL DEFAULT 'symbol_session' CHECK (assignment_unit = 'symbol_session'),
    primary_metric      text             NOT NULL DEFAULT 'accuracy' CHECK (primary_metric = 'accuracy'),
    min_samples         integer          NOT NULL CHECK (min_samples >= 1),
    max_days            integer          NOT NULL CHECK (max_days >= 1),
    alpha               double precision NOT NULL DEFAULT 0.05 CHECK (alpha > 0 AND alpha < 1),
    status              text             NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'promoted', 'stopped', 'inconclusive', 'cancelled')),
    reason              text             NOT NULL CHECK (length(btrim(reason)) > 0),  -- why it started, then why it ended
    started_at          timestamptz      NOT NULL,   -- logical time: the first session in the test
    ended_at            timestamptz,
    started_by          text             NOT NULL,
    run_id              text,                        -- the DAG run that ended it
    FOREIGN KEY (model_name, champion_version) REFERENCES model_versions (model_name, version),
    FOREIGN KEY (model_name, challenger_version) REFERENCES model_versions (model_name, version),
    CHECK ((status = 'running') = (ended_at IS NULL))
);
CREATE UNIQUE INDEX ab_tests_one_running_idx ON ab_tests (model_name) WHERE status = 'running';

CREATE TABLE ab_assignments (
    test_id       bigint      NOT NULL REFERENCES ab_tests (test_id) ON DELETE CASCADE,
    unit          text        NOT NULL,                -- '<symbol>@<session date>'
    symbol        text        NOT NULL,
    session_date  date        NOT NULL,
    arm           text        NOT NULL CHECK (arm IN ('champion', 'challenger')),
    split         double precision NOT NULL,        -- the test's split when the unit was assigned
    PRIMARY KEY (test_id, unit)
);

CREATE TABLE ab_daily_results (
    test_id             bigint           NOT NULL REFERENCES ab_tests (test_id) ON DELETE CASCADE,
    day                 date             NOT NULL,   -- the evaluation's logical day (data interval end)
    days_elapsed        integer          NOT NULL,
    matured_rows        integer          NOT NULL,   -- rows both arms scored whose outcome matured
    both_right          integer          NOT NULL,
    champion_only       integer          NOT NULL,   -- b: champion right, challenger wrong
    challenger_only     integer          NOT NULL,   -- c: challenger right, champion wrong
    both_wrong          integer          NOT NULL,
    n_champion          integer          NOT NULL,   -- assigned units (matured) per arm
    hits_champion       integer          NOT NULL,
    n_challenger        integer          NOT NULL,
    hits_challenger     integer          NOT NULL,
    z                   double precision,            -- two-proportion z-test on the assigned arms
    z_p_value           double precision,
    mcnemar_p_value     double precision,
    seq_log_lr          double precision,            -- always-valid paired test: the larger side's log LR
    seq_log_threshold   double precision,
    seq_decision        text             NOT NULL,
    srm_p_value         double precision,
    srm_mismatch        boolean          NOT NULL,
    next_split          double precision NOT NULL,   -- the split from the next session on (thompson: updated)
    arm_metrics         jsonb            NOT NULL DEFAULT '{}'::jsonb,  -- per-arm trading metrics (assigned rows)
    decision            text             NOT NULL CHECK (decision IN ('continue', 'promote', 'stop', 'inconclusive')),
    reason              text             NOT NULL,
    run_id              text,
    PRIMARY KEY (test_id, day)
);

-- The signal each (model, symbol, bar) actually received: the predictions as scored, minus the shadow scores of
-- A/B tests (for an assigned unit, the prediction of the version of the other arm).
CREATE VIEW served_signals AS
SELECT p.*
FROM predictions p
WHERE NOT EXISTS (
    SELECT 1
    FROM ab_assignments a
    JOIN ab_tests t ON t.test_id = a.test_id
    WHERE t.model_name = p.model_name AND a.symbol = p.symbol
      AND a.session_date = (p.ts AT TIME ZONE 'UTC')::date
      AND p.model_version IN (t.champion_version, t.challenger_version)
      AND p.model_version <> CASE a.arm WHEN 'champion' THEN t.champion_version ELSE t.challenger_version END
);
