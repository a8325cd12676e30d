#!/usr/bin/env bash
# Draws Warden's tray icons (RGBA PNG, 64x64) for the four tray states with ImageMagick.
# The PNGs are committed; rerun this only to change their look.
#   clear    green shield, check mark      all clear
#   warned   amber shield, exclamation     a warning happened recently
#   blocked  red shield, cross             something was blocked recently
#   stale    grey shield, question mark    policy out of date or server unreachable
set -euo pipefail
cd "$(dirname "$0")"
shield="polygon 32,3 58,12 56,34 32,61 8,34 6,12"
draw() { # name fill glyph-draw-commands
  convert -size 64x64 xc:none \
    -fill "$2" -stroke '#1b1b1b' -strokewidth 3 -draw "$shield" \
    -fill none -stroke white -strokewidth 7 -draw "stroke-linecap round" -draw "stroke-linejoin round" -draw "$3" \
    -define png:color-type=6 "PNG32:warden-$1.png"
}
draw clear   '#1e8e3e' "line 19,31 29,42 line 29,42 46,21"
draw blocked '#c5221f' "line 21,20 43,44 line 43,20 21,44"
# The exclamation mark and question mark are drawn as strokes plus a dot.
convert -size 64x64 xc:none -fill '#e8a100' -stroke '#1b1b1b' -strokewidth 3 -draw "$shield" \
  -fill none -stroke white -strokewidth 7 -draw "stroke-linecap round" -draw "line 32,17 32,35" \
  -fill white -stroke none -draw "circle 32,47 32,51" -define png:color-type=6 PNG32:warden-warned.png
convert -size 64x64 xc:none -fill '#6b6f76' -stroke '#1b1b1b' -strokewidth 3 -draw "$shield" \
  -fill none -stroke white -strokewidth 6 -draw "stroke-linecap round" -draw "stroke-linejoin round" -draw "arc 23,14 41,32 180,400" -draw "line 38,29 32,34 line 32,34 32,37" \
  -fill white -stroke none -draw "circle 32,47 32,51" -define png:color-type=6 PNG32:warden-stale.png
identify warden-*.png
