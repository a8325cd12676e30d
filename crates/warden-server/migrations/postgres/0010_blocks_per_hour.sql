-- Warden governance server, PostgreSQL schema v10. Append new files; never edit this one.
-- The repeated-blocks alert rule's tally: blocked launches per person (as events are filed) and
-- UTC clock hour since the epoch, kept in the upload's transaction, so the rule reads one row
-- instead of counting the person's events; hours older than a day are removed on the sweep.
CREATE TABLE blocks_per_hour (
    person TEXT NOT NULL,
    hour   BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (person, hour)
);
