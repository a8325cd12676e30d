-- Warden governance server, PostgreSQL schema v4. Append new files; never edit this one.
-- The conditions an approver attached to an approval (warden_policy::Guardrails as JSON; '' for none).
ALTER TABLE exception_requests ADD COLUMN guardrails TEXT NOT NULL DEFAULT '';
