-- no-transaction
-- When the flag's phase last changed (`store::plans::phase_since`, the monitoring window): the
-- audit log holds a row per changed tenant row, so a flag at 50% of 100,000 tenants has 50,000
-- rows to filter without it. The predicate is the query's own condition. Built CONCURRENTLY
-- (outside a transaction, one statement) so that audited writes go on while it builds over a
-- large audit log.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_log_phase_change_idx ON audit_log (flag_key, at)
    WHERE action = 'rollout.kill'
       OR (action = 'rollout.apply' AND before->>'phase' IS DISTINCT FROM after->>'phase');
