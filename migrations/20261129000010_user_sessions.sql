-- Sessions end when the person's standing changes. Each user has a session epoch, stored in the
-- session at sign-in and compared on every session-authenticated request: resetting the password
-- or role (`rollgate user add --replace`), disabling the user and `rollgate user sessions revoke`
-- raise it, which ends every session made before. (`disabled_at` already exists: a disabled user
-- cannot sign in, and now has no session either.)
ALTER TABLE users
    ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
