-- What the SaaS reports its tenants doing (the seed plan's pilot monitoring reads it):
-- POST /api/activity writes here, in batches.
CREATE TABLE workspace_activity_logs (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    action     TEXT NOT NULL CONSTRAINT workspace_activity_logs_action_length
               CHECK (length(action) BETWEEN 1 AND 100),
    actor      TEXT NOT NULL DEFAULT '' CONSTRAINT workspace_activity_logs_actor_length
               CHECK (length(actor) <= 200),
    details    JSONB NOT NULL DEFAULT '{}'
               CONSTRAINT workspace_activity_logs_details_object CHECK (jsonb_typeof(details) = 'object'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX workspace_activity_logs_created_idx ON workspace_activity_logs (created_at);
CREATE INDEX workspace_activity_logs_tenant_created_idx ON workspace_activity_logs (tenant_id, created_at);
