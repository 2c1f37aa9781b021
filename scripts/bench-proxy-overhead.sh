#!/usr/bin/env bash
# Proxy overhead, one run, loopback only, bounded: the simulated origin served
# directly vs through tollgate (ip auth, access log on, written to /dev/null).
# Prints the tollgate-loadtest burst summary for a live media playlist and a
# 1 MiB segment. Usage: scripts/bench-proxy-overhead.sh (after a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
[ -x $R/tollgate ] && [ -x $R/tollgate-loadtest ] || cargo build --release --workspace
work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
cat > "$work/tg.toml" <<'TOML'
[server]
listen = ["127.0.0.1:18080"]
[admin]
listen = "127.0.0.1:19090"
[ip]
allow = ["127.0.0.0/8"]
[[origin]]
name = "sim"
url = "http://127.0.0.1:18081"
[[route]]
name = "live"
prefix = "/live/"
origin = "sim"
auth = ["ip"]
TOML
$R/tollgate-loadtest origin --listen 127.0.0.1:18081 --segment-bytes 1048576 >/dev/null 2>&1 & pids+=($!)
$R/tollgate run -c "$work/tg.toml" 2>/dev/null & pids+=($!)
for _ in $(seq 50); do curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1 && break; sleep 0.1; done
for target in "direct http://127.0.0.1:18081" "tollgate http://127.0.0.1:18080"; do
  set -- $target
  echo "== $1: live media playlist, 32 connections"
  $R/tollgate-loadtest burst --url "$2/live/ch1/media.m3u8" -c 32 -n 200000 -d 8s
  echo "== $1: 1 MiB segment, 8 connections"
  $R/tollgate-loadtest burst --url "$2/live/ch1/seg-2.ts" -c 8 -n 20000 -d 8s
done
