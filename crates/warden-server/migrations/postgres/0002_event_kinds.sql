-- Warden governance server, PostgreSQL schema v2: one events table for every kind, and each
-- device's service state. Append new files; never edit this one.

-- Events of every kind: `kind` names it (every existing row is a launch), `body` is the payload
-- JSON; `action` is a launch's policy action and NULL for other kinds.
ALTER TABLE events ADD COLUMN kind TEXT NOT NULL DEFAULT 'launch';
ALTER TABLE events ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE events ALTER COLUMN action DROP NOT NULL;
CREATE INDEX events_by_kind ON events (kind, at_ms);

-- The device's service as its newest service-start / service-stop event left it.
ALTER TABLE devices ADD COLUMN service_status TEXT;
ALTER TABLE devices ADD COLUMN service_at_ms BIGINT;
ALTER TABLE devices ADD COLUMN service_version TEXT;
ALTER TABLE devices ADD COLUMN service_reason TEXT;
