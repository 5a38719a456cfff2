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
