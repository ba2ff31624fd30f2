#!/usr/bin/env bash
# Builds and starts the product: the document server with the editor page, on an embedded
# SQLite store in ./data. Installs what it needs on a fresh machine (wasm target,
# wasm-bindgen-cli at the version in Cargo.lock, npm packages).
# Usage: scripts/run.sh [extra doc-server flags, e.g. --listen 0.0.0.0:8080]
set -euo pipefail
cd "$(dirname "$0")/.."

LISTEN=127.0.0.1:8080
LISTEN_FLAG=(--listen "$LISTEN")
for ((i = 1; i <= $#; i++)); do
    if [ "${!i}" = "--listen" ]; then j=$((i + 1)); LISTEN=${!j}; LISTEN_FLAG=(); fi
done

echo "==> building the web editor (wasm + bundle)"
scripts/build-web.sh

echo "==> building the server (release)"
cargo build --release -p doc-server

echo "==> starting doc-server: open http://$LISTEN/, press New document, then Share and open the edit link in a second window"
echo "    (links carry signed tokens; the secret is generated into ./data/secret.key; --open turns tokens off, for development only)"
exec target/release/doc-server "${LISTEN_FLAG[@]}" --data-dir ./data --web-dir web/dist "$@"
