-- Automatic credit top-ups (workers/payments/topUp.ts): the last attempt to buy a credits property's `autoTopUp` pack
-- with an identity's saved payment method. One row per identity and credit, claimed by a single conditional upsert,
-- so two messages racing for the same balance cannot both charge; a new attempt replaces the row only once the last
-- one started more than TOP_UP_INTERVAL_MS ago (started_at, ms since the epoch), whatever its outcome — no retry
-- storm on a declining card. attempt_id is the Stripe idempotency key of the attempt's charge: a redelivered message
-- of a pending attempt charges under the same key, and Stripe answers it with the first result.
CREATE TABLE credit_topups (
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  store            TEXT NOT NULL,
  identifier       TEXT NOT NULL,
  credit_id        TEXT NOT NULL,
  attempt_id       TEXT NOT NULL,
  product_id       TEXT NOT NULL,
  state            TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
  -- Why a failed attempt failed: card_declined (or Stripe's other code), no_customer, no_payment_method, no_price.
  reason           TEXT,
  payment_id       TEXT,
  started_at       INTEGER NOT NULL,
  finished_at      INTEGER,
  PRIMARY KEY (organization_id, store, identifier, credit_id)
);
