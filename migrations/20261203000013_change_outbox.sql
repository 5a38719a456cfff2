-- Deltas (issue 17): what each change did, so that server instances and SDKs follow changes
-- without reloading every tenant and every row. The triggers that audit and bump the change
-- version also write, in the same statement, one outbox row per thing that changed, with the
-- version it made — so raw SQL counts like any other door:
--
--   kind 'row'    a feature_flags row as it now stands (key, tenant_id NULL for the global row,
--                 enabled, excluded), or deleted = true;
--   kind 'flag'   a flag created, deleted, or whose rollout (its target) changed (flag_key);
--   kind 'tenant' a tenant created, deleted, archived or restored, or whose plan, region or tags
--                 changed (tenant_id);
--   kind 'reset'  something no row describes (a TRUNCATE): readers load everything again.
--
-- A reader at version V reads every row with version > V in one statement and applies it
-- (`store::outbox::since`). The change_version row serialises writers, so versions commit in
-- order: a reader never sees version V+2 before V+1.
--
-- Bounded: `store::outbox::prune` (run every minute by each server, `jobs::spawn_outbox_prune`)
-- deletes the versions older than the retention (TENANTRY_OUTBOX_RETENTION_SECS, default 15
-- minutes) and raises change_outbox_horizon to the newest version it deleted. A reader behind the
-- horizon cannot catch up from the outbox and loads everything instead.
CREATE TABLE change_outbox (
    seq       BIGSERIAL PRIMARY KEY,
    version   BIGINT NOT NULL,
    kind      TEXT NOT NULL CONSTRAINT change_outbox_kind CHECK (kind IN ('row', 'flag', 'tenant', 'reset')),
    flag_key  TEXT,
    tenant_id TEXT,
    enabled   BOOLEAN,
    excluded  BOOLEAN,
    deleted   BOOLEAN NOT NULL DEFAULT false,
    at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX change_outbox_version_idx ON change_outbox (version);

-- The outbox holds every change after this version (and none is missing after it).
CREATE TABLE change_outbox_horizon (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CONSTRAINT change_outbox_horizon_singleton CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO change_outbox_horizon (version) SELECT version FROM change_version;

-- feature_flags: as before (one audit row per changed row, one version bump per touched flag, one
-- change version bump and one NOTIFY per statement), plus each changed row's new state.
CREATE OR REPLACE FUNCTION feature_flags_after_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes JSONB;
    v BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(jsonb_build_object(
                   'key', n.key, 'tenant_id', n.tenant_id, 'before', NULL,
                   'after', jsonb_build_object('enabled', n.enabled, 'excluded', n.excluded)))
        INTO changes FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT jsonb_agg(jsonb_build_object(
                   'key', o.key, 'tenant_id', o.tenant_id, 'after', NULL,
                   'before', jsonb_build_object('enabled', o.enabled, 'excluded', o.excluded)))
        INTO changes FROM old_rows o;
    ELSE
        SELECT jsonb_agg(jsonb_build_object(
                   'key', n.key, 'tenant_id', n.tenant_id,
                   'before', jsonb_build_object('enabled', o.enabled, 'excluded', o.excluded),
                   'after', jsonb_build_object('enabled', n.enabled, 'excluded', n.excluded)))
        INTO changes
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (o.enabled, o.excluded) IS DISTINCT FROM (n.enabled, n.excluded)
           OR o.tenant_id IS DISTINCT FROM n.tenant_id OR o.key <> n.key;
    END IF;
    IF changes IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (actor, source, action, flag_key, tenant_id, before, after)
    SELECT rollgate_actor(), rollgate_source(), 'feature_flag.' || lower(TG_OP),
           c.key, c.tenant_id, c.before, c.after
    FROM jsonb_to_recordset(changes) AS c (key TEXT, tenant_id TEXT, before JSONB, after JSONB);
    UPDATE flags SET version = version + 1
    WHERE key IN (SELECT DISTINCT c.key FROM jsonb_to_recordset(changes) AS c (key TEXT));
    UPDATE change_version SET version = version + 1 RETURNING version INTO v;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO change_outbox (version, kind, flag_key, tenant_id, enabled, excluded, deleted)
        SELECT v, 'row', o.key, o.tenant_id, false, false, true FROM old_rows o;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO change_outbox (version, kind, flag_key, tenant_id, enabled, excluded)
        SELECT v, 'row', n.key, n.tenant_id, n.enabled, n.excluded FROM new_rows n;
    ELSE
        -- A row that moved to another flag or tenant: its old place has no row any more (written
        -- first, so that a row moving into a place another row left wins).
        INSERT INTO change_outbox (version, kind, flag_key, tenant_id, enabled, excluded, deleted)
        SELECT v, 'row', o.key, o.tenant_id, false, false, true
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.tenant_id IS DISTINCT FROM n.tenant_id OR o.key <> n.key;
        INSERT INTO change_outbox (version, kind, flag_key, tenant_id, enabled, excluded)
        SELECT v, 'row', n.key, n.tenant_id, n.enabled, n.excluded
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (o.enabled, o.excluded) IS DISTINCT FROM (n.enabled, n.excluded)
           OR o.tenant_id IS DISTINCT FROM n.tenant_id OR o.key <> n.key;
    END IF;
    PERFORM pg_notify('rollgate_changes', json_build_object('version', v, 'table', 'feature_flags')::text);
    RETURN NULL;
END $$;

-- Tenants and flag definitions: as before (one change version bump and one NOTIFY per statement;
-- for flags, only when a rollout changed, a flag was created or deleted), plus the key of each
-- flag or tenant that changed what evaluation reads. Knowing the keys takes transition tables,
-- which take one trigger per event (and no column list: UPDATE OF rollout becomes a comparison
-- of the rollouts, so the flags.version bump of every feature_flags statement still bumps
-- nothing).
CREATE OR REPLACE FUNCTION rollgate_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v BIGINT;
    changed TEXT[];
BEGIN
    IF TG_TABLE_NAME = 'flags' THEN
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(n.key) INTO changed FROM new_rows n;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT array_agg(o.key) INTO changed FROM old_rows o;
        ELSE
            SELECT array_agg(coalesce(n.key, o.key)) INTO changed
            FROM new_rows n FULL JOIN old_rows o ON o.key = n.key
            WHERE o.key IS NULL OR n.key IS NULL OR o.rollout IS DISTINCT FROM n.rollout;
            IF changed IS NULL THEN
                RETURN NULL;
            END IF;
        END IF;
    ELSIF TG_TABLE_NAME = 'tenants' THEN
        IF TG_OP = 'INSERT' THEN
            SELECT array_agg(n.id) INTO changed FROM new_rows n;
        ELSIF TG_OP = 'DELETE' THEN
            SELECT array_agg(o.id) INTO changed FROM old_rows o;
        ELSE
            SELECT array_agg(coalesce(n.id, o.id)) INTO changed
            FROM new_rows n FULL JOIN old_rows o ON o.id = n.id
            WHERE o.id IS NULL OR n.id IS NULL
               OR (o.plan, o.region, o.tags, o.archived_at IS NULL)
                  IS DISTINCT FROM (n.plan, n.region, n.tags, n.archived_at IS NULL);
        END IF;
    END IF;
    UPDATE change_version SET version = version + 1 RETURNING version INTO v;
    IF TG_TABLE_NAME = 'flags' THEN
        INSERT INTO change_outbox (version, kind, flag_key) SELECT v, 'flag', k FROM unnest(changed) AS k;
    ELSIF TG_TABLE_NAME = 'tenants' THEN
        INSERT INTO change_outbox (version, kind, tenant_id) SELECT v, 'tenant', k FROM unnest(changed) AS k;
    END IF;
    PERFORM pg_notify('rollgate_changes', json_build_object('version', v, 'table', TG_TABLE_NAME)::text);
    RETURN NULL;
END $$;

DROP TRIGGER flags_changed ON flags;
CREATE TRIGGER flags_changed_insert AFTER INSERT ON flags
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();
CREATE TRIGGER flags_changed_update AFTER UPDATE ON flags
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();
CREATE TRIGGER flags_changed_delete AFTER DELETE ON flags
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();

DROP TRIGGER tenants_changed ON tenants;
CREATE TRIGGER tenants_changed_insert AFTER INSERT ON tenants
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();
CREATE TRIGGER tenants_changed_update AFTER UPDATE ON tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();
CREATE TRIGGER tenants_changed_delete AFTER DELETE ON tenants
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();

-- A TRUNCATE fires no row trigger and no statement trigger of the others: it bumps the version,
-- notifies, and tells readers to load everything again.
CREATE FUNCTION tenantry_changes_reset() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v BIGINT;
BEGIN
    UPDATE change_version SET version = version + 1 RETURNING version INTO v;
    INSERT INTO change_outbox (version, kind) VALUES (v, 'reset');
    PERFORM pg_notify('rollgate_changes', json_build_object('version', v, 'table', TG_TABLE_NAME)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER feature_flags_truncated AFTER TRUNCATE ON feature_flags
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry_changes_reset();
CREATE TRIGGER flags_truncated AFTER TRUNCATE ON flags
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry_changes_reset();
CREATE TRIGGER tenants_truncated AFTER TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenantry_changes_reset();
