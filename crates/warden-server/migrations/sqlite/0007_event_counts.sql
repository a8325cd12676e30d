-- Warden governance server, SQLite schema v7. Append new files; never edit this one.
-- Events past the retention age, rolled up: one count per day (days since the epoch, UTC), device,
-- kind, tool and outcome ('' where an event has none); the events themselves are removed.
CREATE TABLE event_counts (
    day       INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    kind      TEXT NOT NULL,
    tool      TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (day, device_id, kind, tool, outcome)
);
