-- 020: the model-age rule becomes a yearly full retrain. The predecessor's 30 days / incremental fired every month
-- in the policy replay (README, "Does the closed loop pay off?") and every such retrain failed: a champion a month
-- old leaves too few sessions out of its sample to judge a candidate, and an incremental training set (from the
-- champion's last training day) is below the minimum rows. Now: a full retrain once the champion's data is a year
-- old, re-fired every 180 days (not weekly: after a rejection that is a monthly retrain again) while no candidate
-- beats it. A rule a user changed is left as it is.
UPDATE automated_response_rules
SET rule_name = 'age_full_retrain',
    threshold = 365,
    retrain_mode = 'full',
    cooldown_hours = 4320,
    description = 'champion trained on data more than 365 days old: full retrain',
    updated_at = now(),
    updated_by = 'migration 020'
WHERE rule_name = 'age_incremental'
  AND threshold = 30
  AND retrain_mode = 'incremental'
  AND operator = '>'
  AND cooldown_hours = 168
  AND model_overrides = '{}'::jsonb
  AND updated_by = 'migration 007';
