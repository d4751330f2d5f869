#!/usr/bin/env bash
# End-to-end test of the explorer page in headless Chromium (Debian's `chromium`).
# Runs scripts/browser_test.py: headless Chromium at 390x844 and 1400x900 against release servers
# without and with PARAMINIT_API_TOKEN (see that file for the checks). Saves screenshots
# (explorer-390.png, explorer-1400.png, the recipe comparisons) to target/explorer/, or to the
# directory in $1: `bash scripts/browser_test.sh docs` refreshes the ones in docs/.
# Installs chromium with apt-get when it is missing; where that is impossible it prints SKIP and
# exits 0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
bin="$repo/target/release/paraminit"
shots=${1:-$repo/target/explorer}

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (Debian package)..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true
  fi
fi
if ! command -v chromium >/dev/null; then
  echo "SKIP: chromium is not installed and could not be installed; browser test not run"
  exit 0
fi
[ -x "$bin" ] || (cd "$repo" && cargo build --release)

# The scenarios (two viewports, an error after a success, controls/JSON sync, recipe comparison,
# the download link, a token-protected server) are driven over the DevTools protocol.
python3 "$here/browser_test.py" "$bin" "$(command -v chromium)" "$shots"
