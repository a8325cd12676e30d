-- Warden governance server, SQLite schema v11. Append new files; never edit this one.
-- Who did what on the admin side, beside the exception audit: device revocations, policy uploads
-- and activations, with the actor the caller named ('' when none was named).
CREATE TABLE admin_audit (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE INDEX admin_audit_by_time ON admin_audit (at);
ALTER TABLE devices ADD COLUMN revoked_by TEXT;
