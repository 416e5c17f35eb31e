-- Tenancy, configuration versions, keys, customers and decision events.
-- Never edit an applied migration: add a new NNNN_name.sql file instead.

CREATE TABLE organizations (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  created_at  TEXT NOT NULL
);

-- type: 'preview' | 'production'. Environments of one type share a user data store (counters, customers, custom data).
CREATE TABLE environments (
  id                   TEXT PRIMARY KEY,
  organization_id      TEXT NOT NULL REFERENCES organizations(id),
  slug                 TEXT NOT NULL,
  name                 TEXT NOT NULL,
  type                 TEXT NOT NULL CHECK (type IN ('preview', 'production')),
  deployed_version_id  TEXT,
  created_at           TEXT NOT NULL,
  UNIQUE (organization_id, slug)
);
CREATE INDEX environments_by_org ON environments (organization_id);

-- Only the SHA-256 of a key is stored; `prefix` (type, environment and the secret's first characters) identifies it in lists.
CREATE TABLE api_keys (
  id               TEXT PRIMARY KEY,
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  environment_id   TEXT NOT NULL REFERENCES environments(id),
  type             TEXT NOT NULL CHECK (type IN ('secret', 'publishable')),
  name             TEXT NOT NULL,
  prefix           TEXT NOT NULL,
  hash             TEXT NOT NULL UNIQUE,
  created_at       TEXT NOT NULL,
  revoked_at       TEXT
);
CREATE INDEX api_keys_by_environment ON api_keys (environment_id);

-- The editable configuration document of an organization; `revision` guards concurrent edits.
CREATE TABLE drafts (
  organization_id  TEXT PRIMARY KEY REFERENCES organizations(id),
  document         TEXT NOT NULL,
  revision         INTEGER NOT NULL,
  updated_at       TEXT NOT NULL
);

-- Immutable: rows are inserted, never updated.
CREATE TABLE versions (
  id               TEXT PRIMARY KEY,
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  number           INTEGER NOT NULL,
  description      TEXT NOT NULL DEFAULT '',
  document         TEXT NOT NULL,
  snapshot         TEXT NOT NULL,
  created_at       TEXT NOT NULL,
  UNIQUE (organization_id, number)
);

CREATE TABLE deployments (
  id                   TEXT PRIMARY KEY,
  organization_id      TEXT NOT NULL REFERENCES organizations(id),
  environment_id       TEXT NOT NULL REFERENCES environments(id),
  version_id           TEXT NOT NULL REFERENCES versions(id),
  previous_version_id  TEXT,
  kind                 TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')),
  created_at           TEXT NOT NULL
);
CREATE INDEX deployments_by_environment ON deployments (environment_id, created_at);

-- Customers of a user data store (store = organization + environment type). Stripe sync fills stripe_product_ids.
CREATE TABLE customers (
  organization_id     TEXT NOT NULL REFERENCES organizations(id),
  store               TEXT NOT NULL,
  identifier          TEXT NOT NULL,
  stripe_customer_id  TEXT,
  stripe_product_ids  TEXT NOT NULL DEFAULT '[]',
  updated_at          TEXT NOT NULL,
  PRIMARY KEY (organization_id, store, identifier)
);

-- Decision records and audit entries. `record` holds the full JSON; the other columns are for filtering.
CREATE TABLE events (
  id               TEXT PRIMARY KEY,
  organization_id  TEXT NOT NULL,
  environment_id   TEXT NOT NULL,
  kind             TEXT NOT NULL,
  created_at       TEXT NOT NULL,
  identifier       TEXT,
  surface_slug     TEXT,
  outcome          TEXT,
  record           TEXT NOT NULL
);
CREATE INDEX events_by_environment_time ON events (environment_id, created_at);
CREATE INDEX events_by_identifier ON events (environment_id, identifier, created_at);
