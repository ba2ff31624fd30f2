#!/usr/bin/env bash
# Builds the browser editor into web/dist (index.html, editor.html, assets/): the wasm client
# (crates/wasm-client), its wasm-bindgen glue, and the esbuild bundle. Installs what it needs
# and skips what is already there, so it is safe to run again.
#
#   scripts/build-web.sh                # release build (what the server serves)
#   scripts/build-web.sh --determinism  # also web/pkg-determinism: the same wasm exporting
#                                       # determinismSample, for web/test/determinism.test.mjs
#
# Needs: rustup, cargo, node + npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
determinism=0
case "${1:-}" in
  --determinism) determinism=1 ;;
  "") ;;
  *) echo "usage: $0 [--determinism]" >&2; exit 2 ;;
esac
step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "rust target wasm32-unknown-unknown"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "already installed"
else
  rustup target add wasm32-unknown-unknown
fi

step "wasm-bindgen-cli (the version Cargo.lock pins for the wasm-bindgen crate)"
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ -z "$version" ]]; then
  echo "Cargo.lock has no wasm-bindgen entry; run 'cargo generate-lockfile' first" >&2
  exit 1
fi
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" == "wasm-bindgen $version" ]]; then
  echo "wasm-bindgen $version already installed"
else
  echo "installing wasm-bindgen-cli $version (takes a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$version" --locked \
    || cargo install wasm-bindgen-cli --version "$version"
fi

step "npm ci (web/)"
(cd web && npm ci --no-audit --no-fund --loglevel=error)

step "cargo build wasm-client (wasm32, size-optimised profile)"
# A profile of our own, defined here rather than in the root Cargo.toml: it optimises for size
# with LTO, and its artifacts (target/*/wasm-release) never disturb the native release builds.
# opt-level "z" rather than "s": measured on this crate (rustc 1.95), 829 KB instead of 876 KB
# raw and 194 KB instead of 205 KB brotli-compressed.
# build_wasm PROFILE [cargo args]: the wasm with these settings, under a profile of that name.
build_wasm() {
  local profile=$1
  shift
  cargo build -p wasm-client --target wasm32-unknown-unknown --profile "$profile" \
    --config "profile.$profile.inherits=\"release\"" \
    --config "profile.$profile.opt-level=\"z\"" \
    --config "profile.$profile.lto=true" \
    --config "profile.$profile.codegen-units=1" \
    --config "profile.$profile.debug=0" \
    --config "profile.$profile.panic=\"abort\"" \
    "$@"
}
build_wasm wasm-release
wasm=${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/wasm-release/wasm_client.wasm

step "wasm-bindgen --target web -> web/pkg"
# No wasm-opt pass: what is sent is the brotli file, and wasm-opt makes it larger. Measured on
# this crate with Debian's binaryen 108 (which needs --enable-reference-types
# --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-multivalue
# --enable-nontrapping-float-to-int for rustc's output): -Oz 829 -> 756 KB raw but 194 -> 206 KB
# brotli; -O1 and --duplicate-function-elimination save under 1 KB of brotli.
rm -rf web/pkg
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir web/pkg "$wasm"

if [[ $determinism == 1 ]]; then
  step "the wasm with determinismSample -> web/pkg-determinism (for web/test/determinism.test.mjs)"
  # Its own profile, so that the artifacts of the page's build above stay as they are.
  build_wasm wasm-determinism --features determinism
  rm -rf web/pkg-determinism
  wasm-bindgen --target web --out-dir web/pkg-determinism \
    "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/wasm-determinism/wasm_client.wasm"
fi

step "esbuild bundle -> web/dist"
(cd web && node build.mjs)

printf '\nweb/dist built in %ss (sizes above: raw, gzip -9, brotli 11; the server sends the last)\n' \
  $((SECONDS - started))
