#!/usr/bin/env bash
# doc-server and y-websocket side by side under the same load (issue 20): builds the release
# doc-server and loadgen, installs @y/websocket-server@0.1.1 into a scratch directory (never
# into the repository), then runs `loadgen compare`, which starts each server on a free loopback
# port (doc-server on a fresh data directory), runs the load shape against each, interleaved,
# 3 runs each, then the sweep, stops them, and prints the markdown table on stdout; then
# `loadgen scenarios` (10,000 idle connections, 1 MB documents beside empty ones, 20 clients
# joining automerge-paper, a 5,000-message burst) prints a second table.
#
# Usage: scripts/load.sh                 the full comparison (about 13 minutes)
#        scripts/load.sh --smoke         a few seconds against each, no scenarios
#        scripts/load.sh --no-sweep      the 50 × 20 table and the scenarios
#        scripts/load.sh --no-scenarios  the compare table alone
#        scripts/load.sh --help          every loadgen compare flag
# Environment: LOAD_SCRATCH (default ${TMPDIR:-/tmp}/loadgen-y-websocket), NODE (default node),
#              CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=${LOAD_SCRATCH:-${TMPDIR:-/tmp}/loadgen-y-websocket}
node=${NODE:-node}
target_dir=${CARGO_TARGET_DIR:-target}

node_version=$("$node" --version)
case "$node_version" in
    v20.*) ;;
    *) echo "load.sh: y-websocket is measured on node 20; this is $node_version" >&2 ;;
esac

echo "==> building the release doc-server and loadgen" >&2
nice cargo build --release -p doc-server -p loadgen >&2

server_js="$scratch/node_modules/@y/websocket-server/src/server.js"
if ! grep -qs '"version": "0.1.1"' "$scratch/node_modules/@y/websocket-server/package.json"; then
    echo "==> installing @y/websocket-server@0.1.1 into $scratch" >&2
    mkdir -p "$scratch"
    # No install scripts: only leveldown has one (a native build for y-websocket's optional
    # persistence, which this comparison does not turn on).
    npm install --prefix "$scratch" --no-audit --no-fund --ignore-scripts @y/websocket-server@0.1.1 >&2
fi

scenarios=yes
compare_args=()
for arg in "$@"; do
    case "$arg" in
        --no-scenarios) scenarios=no ;;
        --smoke | --help | -h) scenarios=no; compare_args+=("$arg") ;;
        *) compare_args+=("$arg") ;;
    esac
done

echo "==> loadgen compare (node $node_version, y-websocket 0.1.1, $(nproc) cores)" >&2
"$target_dir/release/loadgen" compare \
    --doc-server "$target_dir/release/doc-server" \
    --y-websocket "$server_js" \
    --node "$node" \
    "${compare_args[@]}"

if [ "$scenarios" = yes ]; then
    # 10,000 idle connections on each side: this shell's limit on open files must allow them
    # (the servers and loadgen inherit it).
    ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    echo "==> loadgen scenarios" >&2
    echo
    "$target_dir/release/loadgen" scenarios \
        --doc-server "$target_dir/release/doc-server" \
        --y-websocket "$server_js" \
        --node "$node"
fi
