#!/usr/bin/env bash
# End-to-end test of the explorer page in headless Chromium (Debian's `chromium`).
# Starts the release server, loads `/?autorun` (the page clicks its own Analyze button on the
# seed MLP), dumps the DOM after the page's requests have completed and checks that it shows the
# plan table, a histogram per tensor, the signal-propagation chart and a verdict. Saves a
# screenshot to target/explorer.png (or to the path in $1).
# Installs chromium with apt-get when it is missing; where that is impossible it prints SKIP and
# exits 0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
bin="$repo/target/release/paraminit"
shot=${1:-$repo/target/explorer.png}

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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PARAMINIT_ADDR=127.0.0.1:$port "$bin" >/tmp/paraminit-browser-$$.log 2>&1 &
server=$!
profile=$(mktemp -d)
cleanup() { kill "$server" 2>/dev/null || true; rm -rf "$profile"; }
trap cleanup EXIT
for _ in $(seq 50); do
  "$bin" healthcheck --addr "127.0.0.1:$port" 2>/dev/null && break
  sleep 0.1
done

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$profile" --virtual-time-budget=15000
       --window-size=1280,1100)
url="http://127.0.0.1:$port/?autorun"
dom=$(chromium "${flags[@]}" --dump-dom "$url" 2>/dev/null)
mkdir -p "$(dirname "$shot")"
chromium "${flags[@]}" --screenshot="$shot" "$url" >/dev/null 2>&1 || true

passed=0; failed=0
check() {
  if eval "$2"; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAIL: $1"; fi
}
rows=$(grep -o '<tr' <<<"$dom" | wc -l)
hists=$(grep -o 'class="histogram"' <<<"$dom" | wc -l)
check "page finished (data-ready)" '[[ "$dom" == *data-ready=\"1\"* ]]'
check "plan table lists the 7 tensors ($((rows - 1)) rows)" '[ "$rows" -ge 8 ]'
check "a histogram per tensor ($hists)" '[ "$hists" -ge 7 ]'
check "chart has forward and backward lines" '[[ "$dom" == *class=\"forward\"* && "$dom" == *class=\"backward\"* ]]'
check "verdict shown" '[[ "$dom" == *"verdict: "* ]]'
check "screenshot saved ($shot)" '[ -s "$shot" ]'
echo "browser: $passed passed, $failed failed"
[ "$failed" = 0 ]
