-- Trigger messages whose action workflows kept failing after the queue's retries (dead letters), per environment,
-- kept until an operator retries or deletes them.
-- message: the trigger message as JSON (bounded; message_truncated = 1 when its payload could not be kept, which
-- makes it impossible to retry). workflows: JSON array of the failing workflows' slugs.
-- state: 'dead' until retried, then 'retried' (retried_at set); a retry that fails again is a new dead letter.
CREATE TABLE dead_letters (
  id                 TEXT PRIMARY KEY,
  organization_id    TEXT NOT NULL,
  environment_id     TEXT NOT NULL,
  trigger_name       TEXT NOT NULL,
  identifier         TEXT,
  message            TEXT NOT NULL,
  message_truncated  INTEGER NOT NULL DEFAULT 0,
  workflows          TEXT NOT NULL DEFAULT '[]',
  last_error         TEXT,
  attempts           INTEGER NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('dead', 'retried')),
  created_at         TEXT NOT NULL,
  retried_at         TEXT
);
CREATE INDEX dead_letters_by_environment_time ON dead_letters (environment_id, created_at);
