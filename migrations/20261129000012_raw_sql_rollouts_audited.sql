-- A rollout changed by raw SQL (`UPDATE flags SET rollout = …`) is audited like one changed by
-- Rollgate: a `rollout.apply` row with the rollout before and after, the database user as actor
-- and `sql` as source. Rollgate's own writes record their actor first and audit themselves, so
-- only writes without an actor are audited here (no row twice). The phase clock of the gates
-- reads these rows too.
CREATE FUNCTION flags_rollout_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF rollgate_source() = 'sql' THEN
        INSERT INTO audit_log (actor, source, action, flag_key, before, after)
        VALUES (rollgate_actor(), 'sql', 'rollout.apply', NEW.key, OLD.rollout, NEW.rollout);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER flags_rollout_audited AFTER UPDATE OF rollout ON flags
    FOR EACH ROW WHEN (OLD.rollout IS DISTINCT FROM NEW.rollout)
    EXECUTE FUNCTION flags_rollout_audit();
