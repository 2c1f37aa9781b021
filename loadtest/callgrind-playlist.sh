#!/usr/bin/env bash
# Instructions per entry-playlist request, deterministic (no timing): the
# release tollgate under valgrind's callgrind, the same config as
# loadtest/compare-nginx.sh (secure_link, encrypt = true, access log off),
# counters zeroed after WARM requests, then N signed entry requests for the
# media playlist. Prints Ir per request, with and without sha2's software
# SHA-256 rounds (valgrind hides SHA-NI, so HMACs cost far more under it
# than on the real CPU). Loopback only, bounded.
#
#   loadtest/callgrind-playlist.sh [N]      # default 2000; TOLLGATE=path to compare a binary
#   CG_OUT=file keeps the callgrind profile (for callgrind_annotate)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
WARM=${WARM:-200}
BASE_PORT=${BASE_PORT:-27180}
TG_PORT=$BASE_PORT
ORIGIN_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 3))
R=${CARGO_TARGET_DIR:-target}/release
TOLLGATE=${TOLLGATE:-$R/tollgate}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
cargo build --release --workspace --quiet

work=$(mktemp -d /tmp/callgrind-playlist.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$work/tollgate.toml" <<TOML
[server]
listen = ["127.0.0.1:$TG_PORT"]
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
access = false
[keys]
master = "hex:5f1e0c3a9b7d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
[cache]
playlist_ttl = "1s"
[auth.secure_link]
secret = "bench-secure-link-secret"
template = "\$secure_link_expires\$uri\$remote_addr \$secret"
[[origin]]
name = "sim"
url = "http://127.0.0.1:$ORIGIN_PORT"
[[route]]
name = "live"
prefix = "/live/"
origin = "sim"
auth = ["secure_link"]
encrypt = true
TOML

$R/tollgate-loadtest origin --listen "127.0.0.1:$ORIGIN_PORT" --segment-duration 6s \
  >/dev/null 2>&1 &
pids+=($!)
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
  "$TOLLGATE" run -c "$work/tollgate.toml" 2>"$work/valgrind.log" &
VG=$!
pids+=("$VG")
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
URL="http://127.0.0.1:$TG_PORT$($R/tollgate sign -c "$work/tollgate.toml" --route live \
  --path /live/ch1/media.m3u8 --ip 127.0.0.1 --ttl 1h)"
$R/tollgate-loadtest burst --url "$URL" -c 4 -n "$WARM" -d 120s >/dev/null
callgrind_control -z "$VG" >/dev/null
$R/tollgate-loadtest burst --url "$URL" -c 4 -n "$N" -d 300s --json "$work/burst.json" >/dev/null
grep -q '"errors": 0' "$work/burst.json" || { cat "$work/burst.json"; exit 1; }
callgrind_control -d "$VG" >/dev/null
total=$(callgrind_annotate "$work/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
sha=$(callgrind_annotate --inclusive=yes "$work/cg.out.1" 2>/dev/null |
  awk '/sha2::sha256::soft::.*compress \[/ && !done {gsub(",", "", $1); print $1; done = 1}')
if [ -n "${CG_OUT:-}" ]; then cp "$work/cg.out.1" "$CG_OUT"; fi
awk -v t="$total" -v s="${sha:-0}" -v n="$N" 'BEGIN {
  printf "Ir per entry request: %.0f; without sha2 software compress: %.0f (%d requests)\n", t / n, (t - s) / n, n }'
