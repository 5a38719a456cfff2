-- Approvals for any widening, not only for advancing: a request records the change it is for
-- (advance, a rollout, a per-tenant switch; NULL on older rows = advance) and the flag version it
-- was computed on (the hash includes it, so a request at an older version is stale without
-- recomputing anything).
ALTER TABLE change_requests
    ADD COLUMN change JSONB,
    ADD COLUMN flag_version BIGINT;
