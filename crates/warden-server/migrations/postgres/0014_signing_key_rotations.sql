-- Warden governance server, PostgreSQL schema v14. Append new files; never edit this one.
-- Each rotation of the policy-signing key: the new public key, the one it replaced, when, and the
-- previous key's signature over warden_api::rotation_message — what devices follow to move their pin.
CREATE TABLE signing_key_rotations (
    public_key          TEXT PRIMARY KEY,
    previous_public_key TEXT NOT NULL,
    announced_at        BIGINT NOT NULL,
    signature           TEXT NOT NULL
);
