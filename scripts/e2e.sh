#!/usr/bin/env bash
# The browser editor's tests: binding tests under Node (no browser) and the end-to-end tests in
# headless Debian Chromium against the real doc-server binary.
#
#   scripts/e2e.sh
#
# Installs Chromium from Debian if /usr/bin/chromium is missing (never a downloaded browser),
# builds the web bundle (scripts/build-web.sh) and the server, then runs both suites.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "chromium"
if [[ -x /usr/bin/chromium ]]; then
  /usr/bin/chromium --version 2>/dev/null || echo "/usr/bin/chromium present"
else
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

step "build the web client (and web/pkg-determinism for the determinism test)"
scripts/build-web.sh --determinism

step "build doc-server"
cargo build -p doc-server
export DOC_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/doc-server"

step "native determinism samples (compared with the wasm build's by web/test/determinism.test.mjs)"
export DETERMINISM_NATIVE="${CARGO_TARGET_DIR:-$PWD/target}/determinism-native.txt"
cargo run -q -p wasm-client --example determinism -- 0 300 > "$DETERMINISM_NATIVE"

step "binding tests (node --test web/test)"
t=$SECONDS
(cd web && node --test test/)
echo "binding tests took $((SECONDS - t))s"

step "browser end-to-end tests (node --test tests/e2e)"
t=$SECONDS
node --test --test-concurrency=1 --test-timeout=180000 tests/e2e/
echo "e2e tests took $((SECONDS - t))s; everything took $((SECONDS - started))s"
