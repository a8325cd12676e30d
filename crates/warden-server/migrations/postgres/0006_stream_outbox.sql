-- Warden governance server, PostgreSQL schema v6. Append new files; never edit this one.
-- Records waiting for the webhook stream (crates/warden-server/src/stream.rs): written in the
-- transaction that stores the event or audit row, deleted once the webhook acknowledged them.
CREATE TABLE stream_outbox (
    seq        BIGSERIAL PRIMARY KEY,
    line       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
