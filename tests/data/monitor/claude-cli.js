#!/usr/bin/env node
// Stand-in for @anthropic-ai/claude-code/cli.js: its first statement leaves a mark.
require("fs").appendFileSync(process.env.FAKE_MARKER, "first statement " + process.pid + "\n");
setTimeout(() => {}, 30000);
