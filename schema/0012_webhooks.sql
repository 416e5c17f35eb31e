-- Outbound webhooks (workers/webhooks): endpoints of an operator's systems subscribed to an environment's events, and
-- one delivery per event and subscription.
-- webhook_subscriptions.event_types: JSON array of event types, or ["*"] for every type. thresholds: JSON array of
-- percentages for counter.threshold_reached. authenticated_only: 1 when the decision events (user.added,
-- plan.changed, counters) are wanted for signed-in identities only. secret: the signing secret (whsec_…), encrypted
-- with SECRETS_KEY (lib/secrets.ts); it is shown once, when created or rotated. previous_secret: the secret a rotation
-- replaced (encrypted), which keeps signing next to the new one until previous_secret_expires_at (ISO-8601), so
-- deliveries queued before the rotation still verify with the receiver's old secret.
CREATE TABLE webhook_subscriptions (
  id               TEXT PRIMARY KEY,
  organization_id  TEXT NOT NULL,
  environment_id   TEXT NOT NULL,
  url              TEXT NOT NULL,
  description      TEXT,
  event_types      TEXT NOT NULL,
  thresholds       TEXT NOT NULL DEFAULT '[80]',
  enabled          INTEGER NOT NULL DEFAULT 1,
  authenticated_only INTEGER NOT NULL DEFAULT 0,
  secret           TEXT NOT NULL,
  previous_secret  TEXT,
  previous_secret_expires_at TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL
);
CREATE INDEX webhook_subscriptions_by_environment ON webhook_subscriptions (environment_id);

-- event_id is the Standard Webhooks `webhook-id` (the same for every subscription, every retry and every replay, so
-- a receiver dedupes on it); payload is the signed body. One row per event and subscription: a publication repeated
-- with the same event id writes no second row.
-- status: pending (queued or between attempts), delivered (a 2xx), failed (the last attempt failed, more will come),
-- dead (no attempt left; replayable), dropped (the subscription was deleted or disabled before delivery; replayable
-- once it is enabled again). A dead row with 0 attempts was never queued.
-- next_attempt_at: when the queue will try again (ISO-8601), while pending or failed.
CREATE TABLE webhook_deliveries (
  id                TEXT PRIMARY KEY,
  organization_id   TEXT NOT NULL,
  environment_id    TEXT NOT NULL,
  subscription_id   TEXT NOT NULL,
  event_id          TEXT NOT NULL,
  event_type        TEXT NOT NULL,
  payload           TEXT NOT NULL,
  status            TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead', 'dropped')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  last_status_code  INTEGER,
  last_error        TEXT,
  next_attempt_at   TEXT,
  created_at        TEXT NOT NULL,
  updated_at        TEXT NOT NULL,
  delivered_at      TEXT,
  UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_by_environment_time ON webhook_deliveries (environment_id, created_at);
-- Retention: the queue consumer removes finished deliveries older than 30 days, a few at a time (webhooks/delivery.ts).
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);
