-- 021: results of the policy replay (dags/policy_replay.py, include/tasks/policy.py): one row per replayed
-- (model, policy, period), replaced when the same replay runs again. The replay itself writes to schemas of its
-- own (policy_<model>_<policy>); only this summary lands in the live schema.
CREATE TABLE policy_replay_results (
    model_name      text         NOT NULL,
    policy          text         NOT NULL,
    replay_start    date         NOT NULL,
    replay_end      date         NOT NULL,
    eval_start      date         NOT NULL,
    eval_end        date         NOT NULL,
    schedule_rules  boolean      NOT NULL,
    result          jsonb        NOT NULL,
    run_id          text,
    recorded_at     timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, policy, replay_start, replay_end, eval_start, eval_end, schedule_rules),
    CHECK (replay_end > replay_start AND eval_end > eval_start)
);
