-- Indexes for the pages at 100,000 tenants (issue 18, bench/pages.sh).
--
-- What changed last for one flag: the plan views cache the change advancing would make (computed
-- over every tenant) per flag, and look up when the flag's rows, its rollout or any tenant last
-- changed (`store::rollout::state_version`). Without these, that lookup scans the outbox.
CREATE INDEX change_outbox_flag_idx ON change_outbox (flag_key, version) WHERE flag_key IS NOT NULL;
CREATE INDEX change_outbox_tenants_idx ON change_outbox (version) WHERE kind IN ('tenant', 'reset');

-- When the flag's phase last changed (`store::plans::phase_since`, the monitoring window): the
-- audit log holds a row per changed tenant row, so a flag at 50% of 100,000 tenants has 50,000
-- rows to filter without it. The predicate is the query's own condition.
CREATE INDEX audit_log_phase_change_idx ON audit_log (flag_key, at)
    WHERE action = 'rollout.kill'
       OR (action = 'rollout.apply' AND before->>'phase' IS DISTINCT FROM after->>'phase');
