-- Organization keys: admin credentials for work across an organization's environments, each with a role.
-- An environment's API key acts on its own environment only; these act on every environment of their organization,
-- within what their role allows (workers/middleware/permissions.ts). Only the SHA-256 of a key is stored, as for API keys.

CREATE TABLE organization_keys (
  id               TEXT PRIMARY KEY,
  organization_id  TEXT NOT NULL REFERENCES organizations(id),
  role             TEXT NOT NULL CHECK (role IN ('admin', 'deployer', 'read-only')),
  name             TEXT NOT NULL,
  prefix           TEXT NOT NULL,
  hash             TEXT NOT NULL UNIQUE,
  created_at       TEXT NOT NULL,
  revoked_at       TEXT
);
CREATE INDEX organization_keys_by_organization ON organization_keys (organization_id);
