-- Per-environment settings for workflows: variables and secrets (secrets encrypted with SECRETS_KEY, never returned),
-- and the hosts workflow code may reach through the platform's egress gateway.

CREATE TABLE environment_variables (
  environment_id  TEXT NOT NULL REFERENCES environments(id),
  name            TEXT NOT NULL,
  is_secret       INTEGER NOT NULL DEFAULT 0,
  -- Plain text for variables; for secrets "v1:<iv base64>:<ciphertext base64>" (AES-GCM).
  value           TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  PRIMARY KEY (environment_id, name)
);

ALTER TABLE environments ADD COLUMN egress_allow_list TEXT NOT NULL DEFAULT '[]';
