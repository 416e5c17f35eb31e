-- Offer redemptions (workers/offers/redemptions.ts): one row per offer token (its jti) and environment, so redeeming
-- a token is idempotent — a double click, or two requests racing, find the same row (INSERT OR IGNORE) and the same
-- Stripe idempotency key, hence one Checkout session. `result` is what the client got (the checkout's id, url and
-- mode, …), answered again to a repeat; `attempt` counts tries after a failure (each its own Stripe idempotency key,
-- since Stripe answers a key with its first result, failures included). The payment webhooks mark a checkout's
-- redemption completed by the jti travelling in its metadata (`platform_offer_redemption`).
CREATE TABLE offer_redemptions (
  environment_id   TEXT NOT NULL,
  token_id         TEXT NOT NULL,
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  offer            TEXT NOT NULL,
  variant          TEXT,
  offer_group      TEXT,
  slot             INTEGER,
  identifier       TEXT NOT NULL,
  -- 1 for an anonymous identity: its purchases live in the anonymous partition of the store (payments/anonymous).
  anonymous        INTEGER NOT NULL CHECK (anonymous IN (0, 1)),
  method           TEXT NOT NULL,
  amount           INTEGER,
  currency         TEXT,
  state            TEXT NOT NULL CHECK (state IN ('started', 'completed', 'failed')),
  attempt          INTEGER NOT NULL DEFAULT 1,
  -- JSON: what the client was answered (checkout {id, url, mode}, subscription, result); NULL until the method answered.
  result           TEXT,
  failure_reason   TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL,
  completed_at     TEXT,
  PRIMARY KEY (environment_id, token_id)
);
