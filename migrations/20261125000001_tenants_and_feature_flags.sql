-- Rollgate core schema: tenants, flag definitions, the seed's feature_flags table, the audit log
-- and the change version that every snapshot carries.

-- Tenants of the SaaS. Archived tenants are unknown to evaluation (fail closed).
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY
                CONSTRAINT tenants_id_format CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name        TEXT NOT NULL
                CONSTRAINT tenants_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    plan        TEXT NOT NULL DEFAULT 'starter'
                CONSTRAINT tenants_plan_known CHECK (plan IN ('free', 'starter', 'pro', 'enterprise')),
    region      TEXT NOT NULL DEFAULT 'eu-west'
                CONSTRAINT tenants_region_format CHECK (region ~ '^[a-z0-9-]{1,32}$'),
    tags        TEXT[] NOT NULL DEFAULT '{}',
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    archived_at TIMESTAMPTZ
);
CREATE INDEX tenants_name_lower_idx ON tenants (lower(name));
CREATE INDEX tenants_plan_region_idx ON tenants (plan, region);

-- One row per flag: what it is and the rollout target that produced its tenant rows.
CREATE TABLE flags (
    key         TEXT PRIMARY KEY
                CONSTRAINT flags_key_format CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
    description TEXT NOT NULL DEFAULT '',
    target      JSONB,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The seed's table: the effective state. One global row per key (tenant_id IS NULL) and one row
-- per tenant with an explicit state. ON for T <=> global enabled OR T's row enabled, unless T's
-- row is excluded (quarantined).
CREATE TABLE feature_flags (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT NOT NULL REFERENCES flags (key) ON DELETE CASCADE,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    enabled    BOOLEAN NOT NULL DEFAULT false,
    excluded   BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by TEXT NOT NULL DEFAULT current_user,
    CONSTRAINT feature_flags_key_tenant_unique UNIQUE NULLS NOT DISTINCT (key, tenant_id),
    CONSTRAINT feature_flags_global_not_excluded CHECK (tenant_id IS NOT NULL OR NOT excluded)
);
CREATE INDEX feature_flags_tenant_idx ON feature_flags (tenant_id);

-- Every change, whoever made it: the UI, the REST API, the CLI or a DBA's raw SQL.
CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor     TEXT NOT NULL,
    source    TEXT NOT NULL,
    action    TEXT NOT NULL,
    flag_key  TEXT,
    tenant_id TEXT,
    before    JSONB,
    after     JSONB,
    reason    TEXT
);
CREATE INDEX audit_log_flag_at_idx ON audit_log (flag_key, at);
CREATE INDEX audit_log_tenant_at_idx ON audit_log (tenant_id, at);
CREATE INDEX audit_log_at_idx ON audit_log (at);

-- The version every snapshot carries: bumped in the same transaction as each change, so a
-- snapshot read in one transaction always pairs its data with its version.
CREATE TABLE change_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CONSTRAINT change_version_singleton CHECK (singleton),
    version   BIGINT NOT NULL
);
INSERT INTO change_version (version) VALUES (1);

-- Who is acting: the application sets rollgate.actor / rollgate.source with SET LOCAL; raw SQL
-- falls back to the database user and the source 'sql'.
CREATE FUNCTION rollgate_actor() RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('rollgate.actor', true), ''), session_user::text)
$$;
CREATE FUNCTION rollgate_source() RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('rollgate.source', true), ''), 'sql')
$$;

-- A global row inserted by raw SQL defines its flag.
CREATE FUNCTION feature_flags_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.tenant_id IS NULL THEN
        INSERT INTO flags (key) VALUES (NEW.key) ON CONFLICT (key) DO NOTHING;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.enabled, NEW.excluded) IS NOT DISTINCT FROM (OLD.enabled, OLD.excluded)
       AND NEW.key = OLD.key AND NEW.tenant_id IS NOT DISTINCT FROM OLD.tenant_id THEN
        RETURN NEW;
    END IF;
    NEW.updated_at := now();
    NEW.updated_by := rollgate_actor();
    RETURN NEW;
END $$;
CREATE TRIGGER feature_flags_before_write BEFORE INSERT OR UPDATE ON feature_flags
    FOR EACH ROW EXECUTE FUNCTION feature_flags_before_write();

-- After each statement: one audit row per changed row, one version bump per touched flag, one
-- change version bump and one NOTIFY for the whole statement.
CREATE FUNCTION feature_flags_after_statement() RETURNS trigger LANGUAGE plpgsql AS $$
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
    PERFORM pg_notify('rollgate_changes', json_build_object('version', v, 'table', 'feature_flags')::text);
    RETURN NULL;
END $$;
CREATE TRIGGER feature_flags_after_insert AFTER INSERT ON feature_flags
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feature_flags_after_statement();
CREATE TRIGGER feature_flags_after_update AFTER UPDATE ON feature_flags
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feature_flags_after_statement();
CREATE TRIGGER feature_flags_after_delete AFTER DELETE ON feature_flags
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION feature_flags_after_statement();

-- Tenants and flag definitions change what evaluation knows: bump the version and notify.
CREATE FUNCTION rollgate_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v BIGINT;
BEGIN
    UPDATE change_version SET version = version + 1 RETURNING version INTO v;
    PERFORM pg_notify('rollgate_changes', json_build_object('version', v, 'table', TG_TABLE_NAME)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();
CREATE TRIGGER flags_changed AFTER INSERT OR DELETE OR UPDATE OF target ON flags
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();
