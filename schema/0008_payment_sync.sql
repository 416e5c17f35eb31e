-- Customer sync (workers/payments/sync.ts): a paginated backfill from the payment provider into the tables webhooks
-- write (0006), one page per payments-queue message. One row per environment: its latest sync; a restart replaces it
-- under a new id, so the steps of the sync it supersedes find their id gone and stop.
-- step counts the pages done: each queue message names the step it is for, and only the step the row expects acts
-- (a message delivered twice, or a resumed sync whose chain was still alive, does its page at most once more and
-- enqueues nothing). cursor is the provider's cursor within the phase (the last object read); null at its start.
CREATE TABLE payment_syncs (
  id                  TEXT PRIMARY KEY,
  environment_id      TEXT NOT NULL UNIQUE REFERENCES environments(id) ON DELETE CASCADE,
  state               TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  phase               TEXT NOT NULL CHECK (phase IN ('customers', 'subscriptions', 'purchases')),
  cursor              TEXT,
  step                INTEGER NOT NULL DEFAULT 0,
  match_by            TEXT NOT NULL CHECK (match_by IN ('metadata', 'email')),
  customers_seen      INTEGER NOT NULL DEFAULT 0,
  customers_linked    INTEGER NOT NULL DEFAULT 0,
  subscriptions_seen  INTEGER NOT NULL DEFAULT 0,
  purchases_seen      INTEGER NOT NULL DEFAULT 0,
  started_at          TEXT NOT NULL,
  updated_at          TEXT NOT NULL,
  finished_at         TEXT,
  last_error          TEXT
);
