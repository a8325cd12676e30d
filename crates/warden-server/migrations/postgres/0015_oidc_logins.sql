-- Warden governance server, PostgreSQL schema v15. Append new files; never edit this one.
-- Sign-ins begun at the identity provider (OpenID Connect): the SHA-256 of the one-time state,
-- the PKCE verifier and the nonce the answer must carry, and when it began (10 minutes to finish).
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,
    verifier   TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
