-- 024: an alert kind for model artifacts that fail their SHA-256 check (or are missing) when scoring loads them
-- (issue 20: artifacts live in a shared object store; scoring refuses a corrupted one and alerts, critical).
-- model_versions.artifact_path now holds the artifact's URL (file:///... locally, s3://..., gs://...); rows
-- registered before keep their plain local path, which the registry reads as a local file: no data change.
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('drift', 'performance', 'data_quality', 'age', 'risk', 'artifact_integrity'));
COMMENT ON COLUMN model_versions.artifact_path IS
    'URL of the artifact (file:///..., s3://conn@bucket/..., any fsspec URL); a plain path is a local file';
