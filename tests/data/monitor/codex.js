#!/usr/bin/env node
// Stand-in for @openai/codex/bin/codex.js: a Node wrapper that starts the native binary.
const { spawn } = require("child_process");
const child = spawn(process.env.CODEX_BINARY, process.argv.slice(2), { stdio: "inherit" });
require("fs").appendFileSync(process.env.FAKE_MARKER, "wrapper " + process.pid + " child " + child.pid + "\n");
setTimeout(() => {}, 30000);
