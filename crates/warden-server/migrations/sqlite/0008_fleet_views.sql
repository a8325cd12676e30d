-- Warden governance server, SQLite schema v8. Append new files; never edit this one.
-- The console's fleet views: each launch's class (warden_api::Verdict, computed by the server as
-- it stores the event; NULL for other kinds), so every view groups by one column instead of
-- reading event bodies; and the alerts the stream's rules raise.
ALTER TABLE events ADD COLUMN verdict TEXT;
UPDATE events SET verdict = CASE
    WHEN json_extract(body, '$.rule') = 'sanctioned-assistant' THEN 'sanctioned'
    WHEN json_extract(body, '$.outcome') IN ('allowed', 'warned')
         AND (json_extract(body, '$.exception') IS NOT NULL OR json_extract(body, '$.rule') LIKE 'exception:%')
         THEN 'exception'
    WHEN json_extract(body, '$.outcome') = 'allowed' THEN 'allowed'
    WHEN json_extract(body, '$.outcome') = 'warned' THEN 'warned'
    ELSE 'blocked' END
WHERE kind = 'launch';
-- Covers the overview's per-day counts (an index-only scan) and the verdict filter.
CREATE INDEX events_by_day ON events (kind, at_ms, tool, verdict);
CREATE INDEX events_by_verdict ON events (verdict, at_ms);

-- One row per alert occurrence; the id is derived from what raised it, so raising it again
-- (a retried upload, a second replica's sweep) stores nothing.
CREATE TABLE alerts (
    id        TEXT PRIMARY KEY,
    rule      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    raised_at INTEGER NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX alerts_by_time ON alerts (raised_at);
