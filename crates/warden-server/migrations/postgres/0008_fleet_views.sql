-- Warden governance server, PostgreSQL schema v8. Append new files; never edit this one.
-- The console's fleet views: each launch's class (warden_api::Verdict, computed by the server as
-- it stores the event; NULL for other kinds), so every view groups by one column instead of
-- reading event bodies; and the alerts the stream's rules raise.
ALTER TABLE events ADD COLUMN verdict TEXT;
UPDATE events SET verdict = CASE
    WHEN (body::jsonb) ->> 'rule' = 'sanctioned-assistant' THEN 'sanctioned'
    WHEN (body::jsonb) ->> 'outcome' IN ('allowed', 'warned')
         AND ((body::jsonb) ->> 'exception' IS NOT NULL OR (body::jsonb) ->> 'rule' LIKE 'exception:%')
         THEN 'exception'
    WHEN (body::jsonb) ->> 'outcome' = 'allowed' THEN 'allowed'
    WHEN (body::jsonb) ->> 'outcome' = 'warned' THEN 'warned'
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
    raised_at BIGINT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX alerts_by_time ON alerts (raised_at);
