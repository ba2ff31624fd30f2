#!/usr/bin/env bash
# Runs every check and test of the project, installing what it needs on a fresh machine.
# Usage: scripts/test.sh            (what CI runs through .ci/run)
#        SKIP_E2E=1 scripts/test.sh (Rust only, no browser)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

# A clean clone gains nothing from incremental compilation, and its files were a third of target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "toolchain: rustfmt, clippy"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy --all-targets -D warnings)"
cargo clippy --all-targets -- -D warnings

step "PostgreSQL and nginx for the several-servers tests (Debian packages, when missing)"
# crates/doc-server/tests/{store_conformance,cluster}.rs start their own on loopback ports.
need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
    "${apt_get[@]}" update -qq || true
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends "${need[@]}"
fi
export DOC_SERVER_REQUIRE_CLUSTER=1

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
du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null | sed 's/^/disk used by the build: /' || true
