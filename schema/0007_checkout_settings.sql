-- Checkout settings of an environment's Stripe connection (POST /api/v1/checkout-sessions and
-- /api/v1/billing-portal-sessions). allowed_origins: a JSON array of exact origins (`https://shop.example`) that
-- success, cancel and return URLs must belong to; empty refuses every URL, so checkout stays closed until it is set.
-- automatic_tax: Stripe Tax on every Checkout Session (1) or not (0).
ALTER TABLE payment_connections ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE payment_connections ADD COLUMN automatic_tax INTEGER NOT NULL DEFAULT 1;
