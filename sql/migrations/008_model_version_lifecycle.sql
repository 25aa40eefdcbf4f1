-- Model version lifecycle, enforced here (not only in Python):
--   candidate -> active    (deployed: holds the champion or challenger alias)
--   candidate -> rejected  (failed its gates, not approved, or another candidate of its trigger won)
--   active    -> retired   (replaced: holds no alias any more)
--   retired   -> active    (rollback restores it)
-- A new version starts as 'candidate' (a retrain) or 'active' (the bootstrap champion).
-- Any other change of status is refused.

ALTER TABLE model_versions DROP CONSTRAINT IF EXISTS model_versions_status_check;

-- existing rows: what holds an alias is active; a former champion is retired; a registered
-- version whose trigger rejected it is rejected; any other registered version is a candidate
UPDATE model_versions v SET status = CASE
    WHEN EXISTS (SELECT 1 FROM model_aliases a WHERE a.model_name = v.model_name AND a.version = v.version)
        THEN 'active'
    WHEN v.status = 'active'
        OR EXISTS (SELECT 1 FROM model_alias_history h WHERE h.model_name = v.model_name AND h.to_version = v.version)
        THEN 'retired'
    WHEN EXISTS (SELECT 1 FROM retraining_triggers t WHERE t.model_name = v.model_name AND t.outcome LIKE 'rejected%'
                 AND (t.result ->> 'candidate_version') = v.version::text)
        THEN 'rejected'
    ELSE 'candidate' END;

ALTER TABLE model_versions ALTER COLUMN status SET DEFAULT 'candidate';
ALTER TABLE model_versions ADD CONSTRAINT model_versions_status_check
    CHECK (status IN ('candidate', 'active', 'retired', 'rejected'));

CREATE FUNCTION modelwatch_version_lifecycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('candidate', 'active') THEN
            RAISE EXCEPTION 'model % v%: a new version starts as candidate or active, not %',
                NEW.model_name, NEW.version, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.status IS NOT DISTINCT FROM OLD.status
       OR (OLD.status, NEW.status) IN (('candidate', 'active'), ('candidate', 'rejected'),
                                       ('active', 'retired'), ('retired', 'active')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'model % v%: illegal status transition % -> % (allowed: candidate -> active|rejected, '
                    'active -> retired, retired -> active)', OLD.model_name, OLD.version, OLD.status, NEW.status
        USING ERRCODE = 'check_violation';
END;
$$;

CREATE TRIGGER model_versions_lifecycle
    BEFORE INSERT OR UPDATE OF status ON model_versions
    FOR EACH ROW EXECUTE FUNCTION modelwatch_version_lifecycle();
