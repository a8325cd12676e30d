-- Warden governance server, PostgreSQL schema v1. Append new files; never edit this one.
CREATE TABLE server_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    hostname      TEXT NOT NULL,
    username      TEXT NOT NULL,
    platform      TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at   BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    revoked_at    BIGINT
);

CREATE TABLE policies (
    version     BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    policy_json TEXT NOT NULL,
    signature   TEXT NOT NULL,
    etag        TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL
);

CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    username    TEXT,
    tool        TEXT,
    action      TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX events_by_time ON events (at_ms);
CREATE INDEX events_by_device ON events (device_id, at_ms);
CREATE INDEX events_by_user_tool ON events (username, tool, action, at_ms);
CREATE INDEX events_by_tool ON events (tool, at_ms);

CREATE TABLE exception_requests (
    id                TEXT PRIMARY KEY,
    device_id         TEXT NOT NULL REFERENCES devices (id),
    client_id         TEXT,
    username          TEXT NOT NULL,
    tool              TEXT NOT NULL,
    scope             TEXT,
    justification     TEXT NOT NULL,
    requested_seconds BIGINT NOT NULL,
    state             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    decided_at        BIGINT,
    decided_by        TEXT,
    comment           TEXT,
    granted_seconds   BIGINT,
    starts_at         BIGINT,
    expires_at        BIGINT,
    UNIQUE (device_id, client_id)
);
CREATE INDEX exception_requests_by_state ON exception_requests (state, created_at);
CREATE INDEX exception_requests_by_device ON exception_requests (device_id, created_at);

CREATE TABLE exception_audit (
    seq        BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES exception_requests (id),
    from_state TEXT,
    to_state   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    comment    TEXT NOT NULL
);
CREATE INDEX exception_audit_by_request ON exception_audit (request_id, seq);

-- The change feed long-polling devices wait on. device_id NULL: for every device.
CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    device_id TEXT,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX changes_by_device ON changes (device_id, seq);
