-- What changed last, per flag and for the tenants, for the plan views at 100,000 tenants (issue 18).
--
-- The plan views cache the change advancing would make (computed over every tenant) per flag and
-- look up when the flag's rows or rollout, or any tenant, last changed
-- (`store::rollout::state_version`). The outbox has the answer only until it is pruned; these
-- marks keep it: one row per flag key ('flag:KEY') and one for the tenants ('tenants'), each the
-- newest change version that touched it. Written by a statement trigger on the outbox itself, so
-- every door that writes the outbox (the triggers on feature_flags, flags and tenants, TRUNCATE)
-- moves them; pruning the outbox does not. They only grow.
CREATE TABLE change_marks (
    subject TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION change_outbox_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO change_marks (subject, version)
    SELECT s, max(n.version)
    FROM new_rows n,
         LATERAL (SELECT CASE WHEN n.kind IN ('tenant', 'reset') THEN 'tenants'
                              ELSE 'flag:' || n.flag_key END AS s) x
    WHERE x.s IS NOT NULL
    GROUP BY s
    ON CONFLICT (subject) DO UPDATE SET version = greatest(change_marks.version, excluded.version);
    RETURN NULL;
END;
$$;

CREATE TRIGGER change_outbox_mark AFTER INSERT ON change_outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_outbox_mark();

-- What the outbox still holds, and the horizon for what it no longer does.
INSERT INTO change_marks (subject, version)
SELECT CASE WHEN kind IN ('tenant', 'reset') THEN 'tenants' ELSE 'flag:' || flag_key END, max(version)
FROM change_outbox
WHERE kind IN ('tenant', 'reset') OR flag_key IS NOT NULL
GROUP BY 1;
INSERT INTO change_marks (subject, version)
SELECT 'tenants', version FROM change_outbox_horizon
ON CONFLICT (subject) DO UPDATE SET version = greatest(change_marks.version, excluded.version);
