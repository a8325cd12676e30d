-- Warden governance server, SQLite schema v12. Append new files; never edit this one.
-- People who sign in to the console (local accounts; `warden-server user add`): the name they sign
-- in with (lowercase), their role, and an Argon2id PHC string of the password.
CREATE TABLE accounts (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);
-- Signed-in sessions: the SHA-256 of the cookie's random token, whose they are, the CSRF token
-- every changing request must echo, and when they end.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES accounts (name),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
