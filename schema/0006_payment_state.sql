-- What the payment provider says each user data store's customers have paid for, kept from its webhooks
-- (workers/payments/apply.ts). All of it is keyed by (organization_id, store): environments of one type share a store,
-- as they share counters and customers. Timestamps are ISO 8601 text, except observed_at (ms since the epoch).

-- Which identity a provider customer is: one identity per customer and store (an identity may have several
-- customers). Set from checkout (client_reference_id / metadata.identifier), the admin customers API, or a sync.
CREATE TABLE payment_customers (
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  store            TEXT NOT NULL,
  provider         TEXT NOT NULL CHECK (provider IN ('stripe')),
  customer_id      TEXT NOT NULL,
  identifier       TEXT NOT NULL,
  linked_by        TEXT NOT NULL CHECK (linked_by IN ('checkout', 'metadata', 'admin', 'sync')),
  updated_at       TEXT NOT NULL,
  PRIMARY KEY (organization_id, store, provider, customer_id)
);
CREATE INDEX payment_customers_by_identifier ON payment_customers (organization_id, store, identifier);

-- Subscriptions as last read from the provider. observed_at orders states: a state read earlier never replaces one
-- read later, whatever order the webhooks arrived in. state is the lifecycle state (workers/payments/lifecycle.ts);
-- state_since is when it was entered (past_due's grace counts from it); grace_hours is the environment's grace for
-- past_due when the state was written. revoked_at: access taken away by a dispute (kept until a newer subscription).
CREATE TABLE payment_subscriptions (
  organization_id       TEXT NOT NULL REFERENCES organizations(id),
  store                 TEXT NOT NULL,
  provider              TEXT NOT NULL CHECK (provider IN ('stripe')),
  subscription_id       TEXT NOT NULL,
  customer_id           TEXT NOT NULL,
  state                 TEXT NOT NULL,
  status                TEXT NOT NULL,
  product_ids           TEXT NOT NULL,
  current_period_end    TEXT,
  cancel_at_period_end  INTEGER NOT NULL,
  state_since           TEXT NOT NULL,
  grace_hours           INTEGER NOT NULL,
  revoked_at            TEXT,
  observed_at           INTEGER NOT NULL,
  updated_at            TEXT NOT NULL,
  PRIMARY KEY (organization_id, store, provider, subscription_id)
);
CREATE INDEX payment_subscriptions_by_customer ON payment_subscriptions (organization_id, store, provider, customer_id);

-- One-time purchases, keyed by the payment (a Stripe payment intent). state only moves forward: paid → refunded or
-- disputed, never back, so a refund that arrives before its checkout still wins.
CREATE TABLE payment_purchases (
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  store            TEXT NOT NULL,
  provider         TEXT NOT NULL CHECK (provider IN ('stripe')),
  payment_id       TEXT NOT NULL,
  customer_id      TEXT,
  checkout_id      TEXT,
  product_ids      TEXT NOT NULL DEFAULT '[]',
  state            TEXT NOT NULL CHECK (state IN ('paid', 'refunded', 'disputed')),
  updated_at       TEXT NOT NULL,
  PRIMARY KEY (organization_id, store, provider, payment_id)
);
CREATE INDEX payment_purchases_by_customer ON payment_purchases (organization_id, store, provider, customer_id);

-- The processed-event log: a webhook event's id is written in the same D1 batch (one transaction) as its effect, so
-- a redelivered or duplicated event finds its id and changes nothing.
CREATE TABLE payment_events (
  environment_id  TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  event_id        TEXT NOT NULL,
  type            TEXT NOT NULL,
  customer_id     TEXT,
  processed_at    TEXT NOT NULL,
  PRIMARY KEY (environment_id, event_id)
);

-- Lifecycle transitions, written in the same batch as the state change that makes them: an outbox. After the batch,
-- the consumer records each as a `payment` event and fires plans.changed, then sets dispatched_at; a retried message
-- finds the transitions its first attempt did not dispatch.
CREATE TABLE payment_transitions (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  environment_id  TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  event_id        TEXT NOT NULL,
  customer_id     TEXT,
  subject         TEXT NOT NULL CHECK (subject IN ('subscription', 'purchase')),
  subject_id      TEXT NOT NULL,
  from_state      TEXT,
  to_state        TEXT NOT NULL,
  from_product_ids TEXT,
  product_ids     TEXT NOT NULL,
  created_at      TEXT NOT NULL,
  dispatched_at   TEXT
);
CREATE INDEX payment_transitions_by_event ON payment_transitions (environment_id, event_id);

-- The environment's lifecycle policy, next to its connection.
ALTER TABLE payment_connections ADD COLUMN past_due_grace_hours INTEGER NOT NULL DEFAULT 72;
ALTER TABLE payment_connections ADD COLUMN revoke_on_refund INTEGER NOT NULL DEFAULT 1;
ALTER TABLE payment_connections ADD COLUMN revoke_on_dispute INTEGER NOT NULL DEFAULT 1;
