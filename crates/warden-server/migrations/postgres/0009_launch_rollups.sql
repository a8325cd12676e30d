-- Warden governance server, PostgreSQL schema v9. Append new files; never edit this one.
-- The console's views read two running tallies the server keeps as it stores launches, instead of
-- aggregating the events table on every page (seconds at a million events):
-- launches per (day since the epoch, UTC; tool, '' for none; verdict)...
CREATE TABLE launch_counts (
    day     BIGINT NOT NULL,
    tool    TEXT NOT NULL,
    verdict TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (day, tool, verdict)
);
INSERT INTO launch_counts (day, tool, verdict, count)
    SELECT at_ms / 86400000, COALESCE(tool, ''), COALESCE(verdict, 'blocked'), COUNT(*)
    FROM events WHERE kind = 'launch' GROUP BY 1, 2, 3;
-- ...and each device's use of each tool: launches, blocked ones, the newest (ms since the epoch).
CREATE TABLE tool_use (
    device_id  TEXT NOT NULL,
    tool       TEXT NOT NULL,
    launches   BIGINT NOT NULL,
    blocked    BIGINT NOT NULL,
    last_at_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, tool)
);
INSERT INTO tool_use (device_id, tool, launches, blocked, last_at_ms)
    SELECT device_id, tool, COUNT(*), SUM(CASE WHEN verdict = 'blocked' THEN 1 ELSE 0 END), MAX(at_ms)
    FROM events WHERE kind = 'launch' AND tool IS NOT NULL GROUP BY device_id, tool;
CREATE INDEX tool_use_by_tool ON tool_use (tool, last_at_ms);
-- The per-day covering index of v8 served the aggregate these tables replace.
DROP INDEX events_by_day;
