-- Rows a version-1 agent wrote (bodies are its LaunchEvent JSON, without `kind`): two uploaded,
-- two still in the outbox; one launch of an unknown program (no tool, no user).
INSERT INTO launch_events (id, at_ms, tool, outcome, body, uploaded_at_ms) VALUES
('9c1e6f1a-0000-4000-8000-000000000001', 1764500000000, 'claude-code', 'killed',
 '{"id":"9c1e6f1a-0000-4000-8000-000000000001","at_ms":1764500000000,"pid":4242,"user":"dev@corp.example","exe":"/home/dev/.local/share/claude/versions/2.1.37","argv":["claude"],"cwd":"/home/dev/src/app","tool":"claude-code","action":"block","outcome":"killed","rule":"tool:claude-code","reason":"Claude Code is not sanctioned","policy_version":"3","source":"proc-connector"}',
 1764500005000),
('9c1e6f1a-0000-4000-8000-000000000002', 1764500060000, 'codex', 'warned',
 '{"id":"9c1e6f1a-0000-4000-8000-000000000002","at_ms":1764500060000,"pid":4300,"user":"dev@corp.example","exe":"/usr/bin/node","argv":["node","/usr/lib/node_modules/@openai/codex/bin/codex.js"],"tool":"codex","action":"warn","outcome":"warned","rule":"tool:codex","reason":"Codex: use the internal assistant","source":"proc-connector"}',
 1764500065000),
('9c1e6f1a-0000-4000-8000-000000000003', 1764500120000, 'claude-code', 'killed',
 '{"id":"9c1e6f1a-0000-4000-8000-000000000003","at_ms":1764500120000,"pid":4400,"user":"dev@corp.example","exe":"/usr/bin/node","argv":["node","/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"],"cwd":"/home/dev","tool":"claude-code","action":"block","outcome":"killed","rule":"tool:claude-code","reason":"Claude Code is not sanctioned","source":"fanotify"}',
 NULL),
('9c1e6f1a-0000-4000-8000-000000000004', 1764500180000, NULL, 'allowed',
 '{"id":"9c1e6f1a-0000-4000-8000-000000000004","at_ms":1764500180000,"pid":4500,"exe":"/usr/bin/make","argv":["make"],"action":"allow","outcome":"allowed","rule":"default","reason":"not an AI tool","source":"poll"}',
 NULL);
INSERT INTO exception_requests (id, created_ms, body) VALUES ('r1', 1764500100000, '{}');
