-- 009: data-quality status of a prediction (issue 12, defect 7).
--
-- A bar whose features are partly NaN (e.g. IXIC 2015-05-12: volume 0, so
-- volume_z_20 is NaN) is scored anyway: LightGBM and XGBoost route missing
-- values natively. The prediction says so: data_quality = 'missing_features'
-- and missing_features names the NaN features (stored as JSON null in
-- predictions.features). Complete rows are 'ok' with missing_features NULL.
-- Existing rows were all scored from complete features, so the default is right for them.
ALTER TABLE predictions
    ADD COLUMN data_quality text NOT NULL DEFAULT 'ok'
        CHECK (data_quality IN ('ok', 'missing_features')),
    ADD COLUMN missing_features text[];

ALTER TABLE predictions
    ADD CONSTRAINT predictions_missing_features_consistent CHECK (
        (data_quality = 'ok' AND missing_features IS NULL)
        OR (data_quality = 'missing_features' AND cardinality(missing_features) > 0)
    );
