#!/usr/bin/env bash
# Runs every check and test of the project, installing what it needs on a fresh machine.
# Usage: scripts/test.sh            (what CI runs through .ci/run)
#        SKIP_E2E=1 scripts/test.sh (Rust only, no browser)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "toolchain: rustfmt, clippy"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy --all-targets -D warnings)"
cargo clippy --all-targets -- -D warnings

step "Rust tests (unit, property, traces, server)"
cargo test --no-fail-fast

step "crdt-core again with every internal invariant checked after each edit"
cargo test -p crdt-core --features check-invariants --no-fail-fast

step "bench crate compiles (cargo check -p bench)"
if [ -d crates/bench ]; then
    cargo check -p bench --all-targets
fi

if [ "${SKIP_E2E:-0}" != "1" ] && [ -x scripts/e2e.sh ]; then
    step "browser: wasm bindings and end-to-end tests in Chromium"
    scripts/e2e.sh
fi

step "all checks passed in $(( $(date +%s) - start ))s"
