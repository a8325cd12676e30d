#!/usr/bin/env bash
# Prints the labels of the tray menus exported on the session bus, one per line, read as a
# StatusNotifier tray host reads them: libayatana-appindicator exports each tray icon's menu
# with com.canonical.dbusmenu under /org/ayatana/NotificationItem/<id>/Menu.
#   tests/tray-e2e/menu-labels.sh      (inside the session bus: DBUS_SESSION_BUS_ADDRESS set)
set -euo pipefail
names=$(gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
  --method org.freedesktop.DBus.ListNames | grep -o "':[0-9.]*'" | tr -d "'")
for name in $names; do
  nodes=$(gdbus introspect --session --dest "$name" --object-path /org/ayatana/NotificationItem --recurse 2>/dev/null \
    | grep -o 'node /org/ayatana/NotificationItem/[^ ]*/Menu' | cut -d' ' -f2 || true)
  for node in $nodes; do
    gdbus call --session --dest "$name" --object-path "$node" --method com.canonical.dbusmenu.GetLayout -- 0 -1 "['label']" \
      | grep -o "'label': <'[^']*'>" | sed "s/^'label': <'//; s/'>\$//"
  done
done
