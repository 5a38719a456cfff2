-- Rollouts (phase, pilots, constraints) replace the bare target, and machine tokens.

-- The rollout a flag is in: {"phase": "off"|"pilot"|"N%"|"100%", "pilots": [...], "constraints": [...]}.
ALTER TABLE flags RENAME COLUMN target TO rollout;
UPDATE flags SET rollout = '{"phase": "off", "pilots": [], "constraints": []}' WHERE rollout IS NULL;
ALTER TABLE flags ALTER COLUMN rollout SET DEFAULT '{"phase": "off", "pilots": [], "constraints": []}';
ALTER TABLE flags ALTER COLUMN rollout SET NOT NULL;
ALTER TABLE flags ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();

DROP TRIGGER flags_changed ON flags;
CREATE TRIGGER flags_changed AFTER INSERT OR DELETE OR UPDATE OF rollout ON flags
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_bump_version();

-- Machine tokens. Only a SHA-256 of the secret is stored; the secret is shown once.
CREATE TABLE api_tokens (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL CONSTRAINT api_tokens_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    scope       TEXT NOT NULL CONSTRAINT api_tokens_scope_known CHECK (scope IN ('admin', 'server', 'tenant')),
    tenant_id   TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash  BYTEA NOT NULL CONSTRAINT api_tokens_hash_unique UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  TEXT NOT NULL,
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    CONSTRAINT api_tokens_tenant_scope CHECK ((scope = 'tenant') = (tenant_id IS NOT NULL))
);
CREATE UNIQUE INDEX api_tokens_live_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE FUNCTION rollgate_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rollgate_tokens', TG_OP);
    RETURN NULL;
END $$;
CREATE TRIGGER api_tokens_changed AFTER INSERT OR UPDATE OR DELETE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION rollgate_tokens_changed();
