-- Each environment's connection to its payment provider (Stripe for now): one row per environment, written through
-- the admin API (PUT /api/v1/admin/environments/{id}/payments/stripe). The secret key and the webhook signing secret
-- are encrypted with SECRETS_KEY like workflow secrets (AES-256-GCM, workers/lib/secrets.ts) and never returned;
-- key_hint (e.g. `sk_test_…abcd`) is what the admin API shows instead.
-- mode: a preview environment takes Stripe test-mode keys only, a production one live-mode keys only.
-- Deleting the environment deletes its connection (ON DELETE CASCADE).
CREATE TABLE payment_connections (
  environment_id            TEXT PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
  organization_id           TEXT NOT NULL REFERENCES organizations(id),
  provider                  TEXT NOT NULL CHECK (provider IN ('stripe')),
  secret_key_encrypted      TEXT NOT NULL,
  webhook_secret_encrypted  TEXT NOT NULL,
  mode                      TEXT NOT NULL CHECK (mode IN ('test', 'live')),
  key_hint                  TEXT NOT NULL,
  connected_at              TEXT NOT NULL,
  updated_at                TEXT NOT NULL
);
