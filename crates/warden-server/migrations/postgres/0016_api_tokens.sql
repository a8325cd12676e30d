-- Warden governance server, PostgreSQL schema v16. Append new files; never edit this one.
-- API tokens (service accounts): made by a signed-in account for scripts and integrations, at most
-- that account's role (admin or auditor), stored as the SHA-256 of the token; they stop when they
-- expire, when revoked, or when their owner is disabled. They never decide exception requests.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_by_owner ON api_tokens (owner);
