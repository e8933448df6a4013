#!/usr/bin/env bash
# Open a run's report.html in headless Chromium (Debian's `chromium` package) and save a
# full-page screenshot beside it, to check by eye that the tables and plots render offline.
#   scripts/screenshot_report.sh runs/quickstart-<hash> [width] [height]
set -euo pipefail
run_dir=${1:?usage: $0 RUN_DIR [width] [height]}
width=${2:-1400}
height=${3:-6000}
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size="$width,$height" \
  --screenshot="$(realpath "$run_dir")/report.png" "file://$(realpath "$run_dir")/report.html" \
  >/dev/null 2>&1
echo "$run_dir/report.png"
