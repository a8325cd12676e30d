-- Warden governance server, SQLite schema v3. Append new files; never edit this one.
-- The sequence number of the last exception list signed for each device: raised on every
-- fetch, inside the signed list, so a device can refuse an older list replayed to it.
ALTER TABLE devices ADD COLUMN exception_list_sequence INTEGER NOT NULL DEFAULT 0;
