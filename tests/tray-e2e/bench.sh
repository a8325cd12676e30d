#!/usr/bin/env bash
# The tray app's benchmark (docs/benchmarks.md, "## Tray app"), in a throwaway desktop: the tray
# in personal mode and as a client of wardend, in the same run. Run as root (wardend is started
# by the bench, with a scratch state directory and socket and no gate).
#   tests/tray-e2e/bench.sh PATH/TO/warden-tray PATH/TO/wardend   (build both with --release)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "$1")
wardend=$(realpath "$2")
scratch=$(mktemp -d /tmp/warden-tray-bench.XXXXXX)
WARDEN_TRAY_BIN="$bin" WARDEN_WARDEND_BIN="$wardend" WARDEN_E2E_SCRATCH="$scratch" \
  dbus-run-session -- "$here/desktop-session.sh" "$scratch" node "$here/bench.mjs"
rm -rf "$scratch"
