-- warden-store schema version 1 (launches only), exactly as that version's Store::open created it.
CREATE TABLE IF NOT EXISTS launch_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    at_ms          INTEGER NOT NULL,
    tool           TEXT,
    outcome        TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    uploaded_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS launch_events_at ON launch_events(at_ms);
CREATE INDEX IF NOT EXISTS launch_events_pending ON launch_events(seq) WHERE uploaded_at_ms IS NULL;
CREATE TABLE IF NOT EXISTS exception_requests (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT    NOT NULL UNIQUE,
    created_ms     INTEGER NOT NULL,
    body           TEXT    NOT NULL,
    uploaded_at_ms INTEGER
);
PRAGMA user_version = 1;
