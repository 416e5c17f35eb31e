-- On-demand customer lookups (workers/payments/lookup.ts): when a decision meets a signed-in identity the store has no
-- customer record for, the payment provider is asked in the background whether the platform's checkout ever opened a
-- customer for it. One row per identity and store, whatever was found, so the provider is asked at most once per
-- LOOKUP_INTERVAL_MS for an identity, however many isolates and decisions meet it.
CREATE TABLE payment_lookups (
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  store            TEXT NOT NULL,
  identifier       TEXT NOT NULL,
  looked_up_at     INTEGER NOT NULL,
  customers_found  INTEGER NOT NULL,
  PRIMARY KEY (organization_id, store, identifier)
);
