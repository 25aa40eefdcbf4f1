-- Both one-sided statistics of the A/B sequential test and the units they ran on, per day (the pages draw them;
-- before, only the larger side was kept). NULL on rows evaluated before this migration. A side that underflows
-- a double is stored as -Infinity.
ALTER TABLE ab_daily_results
    ADD COLUMN seq_unit text CHECK (seq_unit IN ('row', 'session')),
    ADD COLUMN seq_champion_wins integer CHECK (seq_champion_wins >= 0),
    ADD COLUMN seq_challenger_wins integer CHECK (seq_challenger_wins >= 0),
    ADD COLUMN seq_log_lr_challenger double precision,
    ADD COLUMN seq_log_lr_champion double precision;
