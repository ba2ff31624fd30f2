#!/usr/bin/env bash
# Several servers on one machine, as they run on several: PostgreSQL (the shared op log and the
# documents' leases), nginx routing every request of a document to the same server (consistent
# hashing on the document id, scripts/cluster/nginx.conf.in), and three doc-servers, all on
# loopback ports, as the current user (as root, PostgreSQL runs as the `postgres` user). Installs
# PostgreSQL and nginx with apt-get when missing, builds the page and the server, prints the
# address, and stops everything on Ctrl-C.
#
#   scripts/cluster.sh                 # 3 servers; open the printed address
#   scripts/cluster.sh --servers 1     # the same with one server (for side-by-side load runs)
#   scripts/cluster.sh --no-build      # skip the builds (target/release/doc-server, web/dist)
#   DOC_SERVER_ARGS=--open scripts/cluster.sh   # extra flags for every doc-server (--open: no tokens, load tests)
#
# Everything lives in ./cluster-data (removed with --fresh). Kill a server (kill -9 <pid>, the
# pids are printed) and watch its documents move to another within a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
servers=3
build=1
fresh=0
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) servers=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        --fresh) fresh=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
done

as_root=0
[ "$(id -u)" = 0 ] && as_root=1
apt_install() {
    if [ $as_root = 1 ]; then apt-get install -y --no-install-recommends "$@"; else sudo apt-get install -y --no-install-recommends "$@"; fi
}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/postgres" ]; then
    echo "==> installing PostgreSQL (apt-get)"
    apt_install postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
if ! [ -x /usr/sbin/nginx ]; then
    echo "==> installing nginx (apt-get)"
    apt_install nginx-light
fi

if [ $build = 1 ]; then
    echo "==> building the web editor and the server (release)"
    scripts/build-web.sh
    cargo build --release -p doc-server
fi

dir=$root/cluster-data
[ $fresh = 1 ] && rm -rf "$dir"
mkdir -p "$dir/nginx/tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
run_pg() {
    if [ $as_root = 1 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi
}

pids=()
cleanup() {
    echo
    echo "==> stopping"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

pg_port=$(free_port)
if [ ! -f "$dir/pg/PG_VERSION" ]; then
    echo "==> initdb $dir/pg"
    mkdir -p "$dir/pg"
    [ $as_root = 1 ] && chown -R postgres:postgres "$dir/pg"
    run_pg "$pg_bin/initdb" -D "$dir/pg" -U docs -A trust -E UTF8 >/dev/null
fi
echo "==> PostgreSQL on 127.0.0.1:$pg_port"
run_pg "$pg_bin/postgres" -D "$dir/pg" -p "$pg_port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$dir/pg" -c synchronous_commit=on -c max_connections=300 \
    >>"$dir/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 0.1
done
store="postgres://docs@127.0.0.1:$pg_port/postgres"

# One secret for every server, so a link minted by one opens on all.
[ -f "$dir/secret.key" ] || head -c 32 /dev/urandom | base64 >"$dir/secret.key"
chmod 600 "$dir/secret.key"

upstreams=""
for n in $(seq "$servers"); do
    port=$(free_port)
    mkdir -p "$dir/server-$n"
    target/release/doc-server --listen "127.0.0.1:$port" --data-dir "$dir/server-$n" --web-dir web/dist \
        --store "$store" --secret-file "$dir/secret.key" \
        --max-connections-per-address 0 --new-documents-per-minute 0 ${DOC_SERVER_ARGS:-} \
        >"$dir/server-$n/stdout" 2>>"$dir/server-$n/server.log" &
    pids+=($!)
    echo "==> doc-server $n on 127.0.0.1:$port (pid $!, log $dir/server-$n/server.log)"
    upstreams+="        server 127.0.0.1:$port max_fails=0;"$'\n'
done
for n in $(seq "$servers"); do
    for _ in $(seq 100); do grep -q "listening on" "$dir/server-$n/stdout" 2>/dev/null && break; sleep 0.1; done
done

listen=127.0.0.1:${CLUSTER_PORT:-8090}
user_line=""
[ $as_root = 1 ] && user_line="user root;"
UPSTREAMS="$upstreams" DIR="$dir/nginx" LISTEN="$listen" USER_LINE="$user_line" python3 -c '
import os
text = open("scripts/cluster/nginx.conf.in").read()
for key, value in (("@DIR@", os.environ["DIR"]), ("@LISTEN@", os.environ["LISTEN"]),
                   ("@SERVERS@", os.environ["UPSTREAMS"].rstrip()), ("@USER@", os.environ["USER_LINE"])):
    text = text.replace(key, value)
open(os.environ["DIR"] + "/nginx.conf", "w").write(text)
'
/usr/sbin/nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/${listen%:*}/${listen#*:}") 2>/dev/null && break; sleep 0.1; done

admin=$(target/release/doc-server token --secret-file "$dir/secret.key" --doc '*' --role admin --expires-in 1d | head -1)
echo
echo "==> cluster ready: open http://$listen/  (New document; Share gives links that open on any server)"
echo "    PostgreSQL: $store"
echo "    metrics of one server: curl -H 'Authorization: Bearer $admin' http://$listen/metrics"
echo "    Ctrl-C stops everything."
wait
