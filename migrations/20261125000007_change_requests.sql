-- Approvals: who may approve a plan's phase changes, and the change requests themselves. A request
-- binds to the hash of the exact change (flag, version, target rollout, the tenants it turns on
-- and off); any edit of the flag or its tenants changes the hash and voids the approval.
ALTER TABLE rollout_plans
    ADD COLUMN approver_roles TEXT[] NOT NULL DEFAULT '{product_owner,admin}';

CREATE TABLE change_requests (
    id           BIGSERIAL PRIMARY KEY,
    flag_key     TEXT NOT NULL REFERENCES flags (key) ON DELETE CASCADE,
    from_phase   TEXT NOT NULL,
    to_phase     TEXT NOT NULL,
    rollout      JSONB NOT NULL,
    change_hash  TEXT NOT NULL,
    turned_on    INTEGER NOT NULL,
    turned_off   INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    approved_by  TEXT,
    approved_at  TIMESTAMPTZ,
    applied_at   TIMESTAMPTZ,
    CONSTRAINT change_requests_not_self_approved CHECK (approved_by IS NULL OR approved_by <> requested_by)
);
CREATE INDEX change_requests_flag_idx ON change_requests (flag_key, id);
