#!/usr/bin/env bash
# Runs the tray app's end-to-end tests in a throwaway desktop on a private session bus.
#   tests/tray-e2e/run.sh PATH/TO/warden-tray
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(realpath "$1")
scratch=$(mktemp -d /tmp/warden-tray-e2e.XXXXXX)
echo "tray e2e: scratch folder $scratch (logs: dunst.log, dbus-monitor.log, xvfb.log)"
status=0
WARDEN_TRAY_BIN="$bin" WARDEN_E2E_SCRATCH="$scratch" \
  dbus-run-session -- "$here/desktop-session.sh" "$scratch" \
  node --test --test-concurrency=1 --test-reporter=spec "$here/tray.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "tray e2e: FAILED; desktop logs follow (kept in $scratch)"
  tail -n 20 "$scratch"/*.log || true
else
  rm -rf "$scratch"
fi
exit "$status"
