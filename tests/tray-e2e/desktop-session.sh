#!/usr/bin/env bash
# Runs a command inside a throwaway desktop: Xvfb, openbox (window manager), trayer (tray
# host), dunst (notification daemon). Run it inside `dbus-run-session` so the app, dunst
# and the test share a private session bus. Stops only the processes it started.
#   dbus-run-session -- tests/tray-e2e/desktop-session.sh SCRATCH_DIR COMMAND [ARGS…]
# The scratch dir receives dunstrc, the logs and `display` (the DISPLAY in use).
set -euo pipefail
scratch=$1; shift
mkdir -p "$scratch"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

exec 7> "$scratch/displayfd"
Xvfb -displayfd 7 -screen 0 1280x800x24 -nolisten tcp > "$scratch/xvfb.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$scratch/displayfd" ] && break; sleep 0.05; done
export DISPLAY=":$(head -n1 "$scratch/displayfd")"
echo "$DISPLAY" > "$scratch/display"

openbox > "$scratch/openbox.log" 2>&1 &
pids+=($!)
trayer --edge top --align right --widthtype request --height 32 --SetDockType true --transparent false \
  > "$scratch/trayer.log" 2>&1 &
pids+=($!)

# dunst's context menu runs "dmenu"; ours picks the action named in $scratch/choice, so a
# test can choose an action exactly as a user picking it from the menu would.
cat > "$scratch/choose-action" <<CHOOSER
#!/bin/sh
want=\$(cat "$scratch/choice" 2>/dev/null)
tee -a "$scratch/menu-offered" | grep -m1 -F -- "\$want"
CHOOSER
chmod +x "$scratch/choose-action"
cat > "$scratch/dunstrc" <<DUNSTRC
[global]
    font = DejaVu Sans 10
    width = 420
    origin = top-left
    offset = 20x50
    dmenu = $scratch/choose-action
    show_indicators = yes
    history_length = 50
[urgency_critical]
    timeout = 0
DUNSTRC
dunst -config "$scratch/dunstrc" > "$scratch/dunst.log" 2>&1 &
pids+=($!)
dbus-monitor "interface='org.freedesktop.Notifications'" > "$scratch/dbus-monitor.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do dunstctl is-paused > /dev/null 2>&1 && break; sleep 0.05; done

"$@"
