#!/usr/bin/env bash
# 10,000 real-pace viewers (SPEC §5), one run, loopback only, bounded:
# the simulated origin (10 channels, 6 s segments of 150,000 bytes) behind
# tollgate (wmsauth route, a user per viewer, AES-128 on the fly), driven by
# `tollgate-loadtest viewers`. Prints the report, the CPU seconds each process
# used and the proxy's RSS before, during and after; writes the JSON report
# to $OUT (default target/bench-10k-viewers.json).
# Usage: scripts/bench-10k-viewers.sh [VIEWERS] [RAMP] [DURATION] [extra viewers flags...]
# (after `cargo build --release --workspace`).
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
VIEWERS=${1:-10000}; RAMP=${2:-60s}; DURATION=${3:-120s}; shift $(( $# < 3 ? $# : 3 ))
OUT=${OUT:-target/bench-10k-viewers.json}
[ -x $R/tollgate ] && [ -x $R/tollgate-loadtest ] || cargo build --release --workspace
ulimit -n "$(ulimit -Hn)"   # 20000 on the bench VM: enough for 10,000 connections per process
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/tg.toml" <<TOML
[server]
listen = ["127.0.0.1:18080"]
max_connections = 19000
[admin]
listen = "127.0.0.1:19090"
token = "bench-admin-token"
[state]
dir = "$work/state"
[keys]
master = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
rotate_every = "10m"
[sessions]
idle_timeout = "30s"
[auth.wmsauth]
key = "bench-wmsauth-key"
[[origin]]
name = "sim"
url = "http://127.0.0.1:18081"
[[route]]
name = "live"
prefix = "/live/"
origin = "sim"
auth = ["wmsauth"]
encrypt = true
TOML
$R/tollgate-loadtest origin --listen 127.0.0.1:18081 --channels 10 \
  --segment-bytes 150000 --segment-duration 6s --window 5 >/dev/null 2>&1 & pids+=($!)
origin_pid=$!
$R/tollgate run -c "$work/tg.toml" >/dev/null 2>"$work/proxy.err" & pids+=($!)
proxy_pid=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1 && break; sleep 0.1; done
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
echo "proxy RSS idle: $(rss $proxy_pid) KiB"
( sleep_for=$(( ${RAMP%s} + ${DURATION%s} - 5 )); sleep "$sleep_for";
  echo "proxy RSS at full load: $(rss $proxy_pid) KiB; sessions: $(curl -fs -H 'Authorization: Bearer bench-admin-token' http://127.0.0.1:19090/api/v1/sessions | grep -o '"id"' | wc -l)" >&2 ) &
sampler=$!
start_proxy=$(cpu $proxy_pid); start_origin=$(cpu $origin_pid)
t0=$(date +%s.%N)
set +e
/usr/bin/time -f "harness: %U s user + %S s system, max RSS %M KiB" \
  $R/tollgate-loadtest viewers -c "$work/tg.toml" --route live --channels 10 \
  --viewers "$VIEWERS" --ramp "$RAMP" --duration "$DURATION" --verify-every 100 \
  --max-requests 5000000 --json "$OUT" "$@"
status=$?
set -e
wait $sampler 2>/dev/null || true
t1=$(date +%s.%N)
echo "wall: $(echo "$t1 - $t0" | bc) s"
echo "proxy CPU: $(echo "$(cpu $proxy_pid) - $start_proxy" | bc) s; origin CPU: $(echo "$(cpu $origin_pid) - $start_origin" | bc) s"
echo "proxy RSS after (sessions still live until idle_timeout): $(rss $proxy_pid) KiB"
exit $status
