-- Each environment's x402 settings: how agents pay it per request in a stablecoin (an HTTP 402 answered with
-- PAYMENT-REQUIRED, paid with PAYMENT-SIGNATURE). One row per environment, written through the admin API
-- (PUT /api/v1/admin/environments/{id}/payments/x402); no row means the environment offers no x402 payment.
-- facilitator_url: the x402 facilitator that verifies and settles payments (https; normalized to end with `/`).
-- network: a CAIP-2 chain id (`eip155:8453`); asset: the token's address on it, a 6-decimal USD stablecoin (prices in
-- USD micro-units are its atomic units); pay_to: the address that receives the payments.
-- max_timeout_seconds: how long a client's signed authorization must stay valid for the server to settle it.
-- extra: a JSON object passed in every offer's `extra` (e.g. the token's EIP-712 domain, {"name":"USDC","version":"2"}), or NULL.
-- Deleting the environment deletes its settings (ON DELETE CASCADE).
CREATE TABLE x402_settings (
  environment_id       TEXT PRIMARY KEY REFERENCES environments(id) ON DELETE CASCADE,
  organization_id      TEXT NOT NULL REFERENCES organizations(id),
  facilitator_url      TEXT NOT NULL,
  network              TEXT NOT NULL,
  asset                TEXT NOT NULL,
  pay_to               TEXT NOT NULL,
  max_timeout_seconds  INTEGER NOT NULL CHECK (max_timeout_seconds BETWEEN 1 AND 3600),
  extra                TEXT,
  updated_at           TEXT NOT NULL
);
