-- Warden governance server, SQLite schema v2: one events table for every kind, and each device's
-- service state. Append new files; never edit this one.

-- Events of every kind: `kind` names it (every existing row is a launch), `body` is the payload
-- JSON; `action` is a launch's policy action and NULL for other kinds, so the table is rebuilt
-- (SQLite cannot drop a NOT NULL constraint in place).
CREATE TABLE events_v2 (
    id          TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices (id),
    kind        TEXT NOT NULL,
    username    TEXT,
    tool        TEXT,
    action      TEXT,
    at_ms       INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT NOT NULL
);
INSERT INTO events_v2 (id, device_id, kind, username, tool, action, at_ms, received_at, body)
    SELECT id, device_id, 'launch', username, tool, action, at_ms, received_at, body FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_by_time ON events (at_ms);
CREATE INDEX events_by_device ON events (device_id, at_ms);
CREATE INDEX events_by_user_tool ON events (username, tool, action, at_ms);
CREATE INDEX events_by_tool ON events (tool, at_ms);
CREATE INDEX events_by_kind ON events (kind, at_ms);

-- The device's service as its newest service-start / service-stop event left it.
ALTER TABLE devices ADD COLUMN service_status TEXT;
ALTER TABLE devices ADD COLUMN service_at_ms INTEGER;
ALTER TABLE devices ADD COLUMN service_version TEXT;
ALTER TABLE devices ADD COLUMN service_reason TEXT;
