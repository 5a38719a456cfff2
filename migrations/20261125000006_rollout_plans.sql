-- Rollout plans: per flag the plan document (checklists, sign-off milestones, contacts — imported
-- from Markdown written like the seed plan) and the gates of each phase; the history of every
-- checklist tick and every sign-off (the current state is the latest row per item / milestone).
CREATE TABLE rollout_plans (
    flag_key           TEXT PRIMARY KEY REFERENCES flags (key) ON DELETE CASCADE,
    document           JSONB NOT NULL,
    gates              JSONB NOT NULL,
    approvals_required BOOLEAN NOT NULL DEFAULT true,
    auto_advance       BOOLEAN NOT NULL DEFAULT false,
    version            BIGINT NOT NULL DEFAULT 1,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE plan_ticks (
    id        BIGSERIAL PRIMARY KEY,
    flag_key  TEXT NOT NULL REFERENCES flags (key) ON DELETE CASCADE,
    checklist TEXT NOT NULL,
    item      TEXT NOT NULL,
    ticked    BOOLEAN NOT NULL,
    note      TEXT NOT NULL DEFAULT '' CONSTRAINT plan_ticks_note_length CHECK (length(note) <= 2000),
    actor     TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX plan_ticks_item_idx ON plan_ticks (flag_key, checklist, item, id);

CREATE TABLE plan_signoffs (
    id        BIGSERIAL PRIMARY KEY,
    flag_key  TEXT NOT NULL REFERENCES flags (key) ON DELETE CASCADE,
    milestone TEXT NOT NULL,
    signed    BOOLEAN NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX plan_signoffs_milestone_idx ON plan_signoffs (flag_key, milestone, id);
