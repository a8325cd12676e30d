-- Warden governance server, PostgreSQL schema v13. Append new files; never edit this one.
-- One-time enrollment codes: the SHA-256 of the code's secret, the person the device will belong
-- to, who made the code, when it stops working, and when (and as which device) it was used.
CREATE TABLE enrollment_codes (
    code_hash  TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    device_id  TEXT
);
-- Who vouched for the device's owner: the account that made its enrollment code (NULL: the shared
-- enroll secret). The next device token while a rotation is under way (the old one works until
-- the new one is first used), and when the token last rotated.
ALTER TABLE devices ADD COLUMN enrolled_by TEXT;
ALTER TABLE devices ADD COLUMN next_token_hash TEXT;
ALTER TABLE devices ADD COLUMN token_rotated_at BIGINT;
CREATE UNIQUE INDEX devices_by_next_token ON devices (next_token_hash);
