#!/usr/bin/env bash
# The tray app's benchmark (docs/benchmarks.md, "## Tray app"), in a throwaway desktop.
#   tests/tray-e2e/bench.sh PATH/TO/warden-tray     (build it with --release for the figures)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "$1")
scratch=$(mktemp -d /tmp/warden-tray-bench.XXXXXX)
WARDEN_TRAY_BIN="$bin" WARDEN_E2E_SCRATCH="$scratch" \
  dbus-run-session -- "$here/desktop-session.sh" "$scratch" node "$here/bench.mjs"
rm -rf "$scratch"
