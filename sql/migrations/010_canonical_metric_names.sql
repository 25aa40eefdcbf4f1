-- 011: one name per metric. Backtest baselines written before training.classification_metrics
-- used the canonical names stored the macro metrics as f1_macro / precision_macro / recall_macro;
-- rename them to macro_f1 / macro_precision / macro_recall (the names live metrics, the comparison
-- and the dashboards use). Where both names exist for a version, the canonical row is kept.
DELETE FROM backtest_baseline old
USING backtest_baseline canon
WHERE canon.model_name = old.model_name AND canon.model_version = old.model_version
  AND (old.metric, canon.metric) IN (('f1_macro', 'macro_f1'), ('precision_macro', 'macro_precision'),
                                     ('recall_macro', 'macro_recall'));
UPDATE backtest_baseline SET metric = CASE metric
    WHEN 'f1_macro' THEN 'macro_f1'
    WHEN 'precision_macro' THEN 'macro_precision'
    WHEN 'recall_macro' THEN 'macro_recall' END
WHERE metric IN ('f1_macro', 'precision_macro', 'recall_macro');
