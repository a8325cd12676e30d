-- Warden governance server, PostgreSQL schema v5. Append new files; never edit this one.
-- Each device's current inventory report (warden_api::InventoryReport as JSON), and one history
-- row per change (a report whose digest differs from the device's previous one).
CREATE TABLE device_inventory (
    device_id   TEXT PRIMARY KEY REFERENCES devices(id),
    digest      TEXT NOT NULL,
    report      TEXT NOT NULL,
    changed_at  BIGINT NOT NULL,
    reported_at BIGINT NOT NULL
);
CREATE TABLE inventory_history (
    seq         BIGSERIAL PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(id),
    digest      TEXT NOT NULL,
    report      TEXT NOT NULL,
    reported_at BIGINT NOT NULL
);
CREATE INDEX inventory_history_device ON inventory_history (device_id, seq);
