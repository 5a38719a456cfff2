-- Guarded rollouts: per plan the guards (PromQL queries and thresholds; NULL = the seed's "Metrics
-- to Watch"), what an alert does, and whether the rollout is paused. The latest reading of each
-- guard, and the history of its level changes.
ALTER TABLE rollout_plans
    ADD COLUMN guards JSONB,
    ADD COLUMN on_alert TEXT NOT NULL DEFAULT 'pause'
        CONSTRAINT rollout_plans_on_alert CHECK (on_alert IN ('pause', 'previous', 'off')),
    ADD COLUMN paused_at TIMESTAMPTZ,
    ADD COLUMN paused_reason TEXT;

CREATE TABLE guard_state (
    flag_key TEXT NOT NULL REFERENCES flags (key) ON DELETE CASCADE,
    guard    TEXT NOT NULL,
    level    TEXT NOT NULL CONSTRAINT guard_state_level CHECK (level IN ('ok', 'warning', 'alert', 'hold')),
    value    DOUBLE PRECISION,
    others   DOUBLE PRECISION,
    detail   TEXT NOT NULL,
    since    TIMESTAMPTZ NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (flag_key, guard)
);

CREATE TABLE guard_transitions (
    id       BIGSERIAL PRIMARY KEY,
    flag_key TEXT NOT NULL REFERENCES flags (key) ON DELETE CASCADE,
    guard    TEXT NOT NULL,
    level    TEXT NOT NULL,
    value    DOUBLE PRECISION,
    detail   TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX guard_transitions_flag_idx ON guard_transitions (flag_key, id);
