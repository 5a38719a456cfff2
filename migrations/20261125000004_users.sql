-- People who sign in to the admin web app. Passwords are argon2id PHC strings.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL
                  CONSTRAINT users_username_format CHECK (username ~ '^[a-z0-9][a-z0-9_.@-]{1,63}$'),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL
                  CONSTRAINT users_role_known CHECK (role IN ('admin', 'product_owner', 'qa', 'dba', 'viewer')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at   TIMESTAMPTZ,
    CONSTRAINT users_username_unique UNIQUE (username)
);

-- Sign-in sessions (tower-sessions' Postgres store, kept in Rollgate's own schema and migrations).
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BYTEA NOT NULL,
    expiry_date TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry_date);
