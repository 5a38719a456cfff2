-- Approving your own change is judged by person, not by token name. A token records the person it
-- acts for: a token made over REST by another token inherits that token's person (through any
-- chain), so an admin token cannot mint a second token and approve its own change with it. NULL:
-- a token made by the CLI, which is its own person (`token:<name>`).
ALTER TABLE api_tokens
    ADD COLUMN owner TEXT;

-- The person who asked for a change (the user, or the token's person); NULL on older rows, where
-- `requested_by` is both.
ALTER TABLE change_requests
    ADD COLUMN requested_by_person TEXT;

-- Tokens minted over REST before this migration: walk each one's `created_by` chain up to a
-- token with a recorded person or one the CLI made, and record that person. A chain whose parent
-- cannot be found records the nearest known minter (`token:<name>`), so the two still count as one
-- person. A function, so a test can run it over rows it made.
CREATE FUNCTION rollgate_backfill_token_owners() RETURNS INTEGER LANGUAGE sql AS $$
    WITH RECURSIVE chain AS (
        SELECT t.id AS start, t.name, t.created_by, t.created_at, t.owner, 0 AS depth
        FROM api_tokens t
        WHERE t.owner IS NULL AND t.created_by LIKE 'token:%'
      UNION ALL
        SELECT c.start, p.name, p.created_by, p.created_at, p.owner, c.depth + 1
        FROM chain c
        CROSS JOIN LATERAL (
            SELECT x.name, x.created_by, x.created_at, x.owner FROM api_tokens x
            WHERE x.name = substr(c.created_by, 7) AND x.created_at <= c.created_at
            ORDER BY x.created_at DESC LIMIT 1
        ) p
        WHERE c.owner IS NULL AND c.created_by LIKE 'token:%' AND c.depth < 100
    ),
    root AS (
        SELECT DISTINCT ON (start) start,
               CASE WHEN owner IS NOT NULL THEN owner
                    WHEN created_by LIKE 'token:%' THEN created_by
                    ELSE 'token:' || name END AS person
        FROM chain
        ORDER BY start, depth DESC
    ),
    done AS (
        UPDATE api_tokens t SET owner = root.person FROM root WHERE t.id = root.start RETURNING 1
    )
    SELECT count(*)::int FROM done
$$;
SELECT rollgate_backfill_token_owners();
