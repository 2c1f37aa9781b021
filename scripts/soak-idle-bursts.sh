#!/usr/bin/env bash
# Soak (issue 11, SPEC §5 memory): the viewers harness at modest load plus a
# burst of BURST idle keep-alive connections every EVERY seconds (each held
# HOLD seconds, then closed), for DURATION. The proxy's RSS, open connections
# and sessions are sampled every 10 s into $CSV (default
# target/soak-idle-bursts.csv); a summary (baseline, peak per burst, RSS after
# each burst) is printed at the end. Loopback only, bounded.
# Usage: scripts/soak-idle-bursts.sh [DURATION=600s] [VIEWERS=200] [BURST=5000]
#        (after `cargo build --release --workspace`)
# Env: EVERY=60 HOLD=20 CSV=... ALLOC_ENV="LD_PRELOAD=... MALLOC_CONF=..." (to
#      try an allocator on the proxy without rebuilding).
set -euo pipefail
cd "$(dirname "$0")/.."
R=target/release
DURATION=${1:-600s}; VIEWERS=${2:-200}; BURST=${3:-5000}
EVERY=${EVERY:-60}; HOLD=${HOLD:-20}
CSV=${CSV:-target/soak-idle-bursts.csv}
secs=${DURATION%s}
[ -x $R/tollgate ] && [ -x $R/tollgate-loadtest ] || cargo build --release --workspace
ulimit -n "$(ulimit -Hn)"
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
token = "soak-admin-token"
[state]
dir = "$work/state"
[keys]
master = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
rotate_every = "10m"
[sessions]
idle_timeout = "30s"
[auth.wmsauth]
key = "soak-wmsauth-key"
[ip]
allow = ["127.0.0.1/32"]
[[origin]]
name = "sim"
url = "http://127.0.0.1:18081"
[[route]]
name = "live"
prefix = "/live/"
origin = "sim"
auth = ["wmsauth"]
encrypt = true
# The idle bursts: channel ch10's playlist, allowed by address (viewers
# play ch1..ch9 through the signed route).
[[route]]
name = "open"
prefix = "/live/ch10/"
origin = "sim"
auth = ["ip"]
TOML
$R/tollgate-loadtest origin --listen 127.0.0.1:18081 --channels 10 \
  --segment-bytes 150000 --segment-duration 6s --window 5 >/dev/null 2>&1 & pids+=($!)
# shellcheck disable=SC2086 # ALLOC_ENV is a list of VAR=value words
env ${ALLOC_ENV:-} $R/tollgate run -c "$work/tg.toml" >/dev/null 2>"$work/proxy.err" & pids+=($!)
proxy_pid=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:19090/readyz >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
metric() { curl -fs http://127.0.0.1:19090/metrics | awk -v m="$1" 'index($0, m) == 1 {print $NF; exit}'; }

$R/tollgate-loadtest viewers -c "$work/tg.toml" --route live --channels 9 \
  --viewers "$VIEWERS" --ramp 20s --duration "$((secs - 20))s" --verify-every 100 \
  --json "$work/viewers.json" >"$work/viewers.out" 2>&1 & pids+=($!)
viewers_pid=$!

echo "t_s,rss_kib,open_http,sessions,burst" > "$CSV"
t0=$(date +%s)
next_burst=$((t0 + 30))
burst_pid=
while :; do
  now=$(date +%s); t=$((now - t0))
  [ "$t" -ge "$secs" ] && break
  if [ "$now" -ge "$next_burst" ] && [ -z "$burst_pid" ]; then
    python3 scripts/idle-burst.py --url http://127.0.0.1:18080/live/ch10/index.m3u8 \
      -n "$BURST" --hold "$HOLD" --settle 0 --json >>"$work/bursts.jsonl" & burst_pid=$!
    next_burst=$((next_burst + EVERY))
  fi
  if [ -n "$burst_pid" ] && ! kill -0 "$burst_pid" 2>/dev/null; then burst_pid=; fi
  in_burst=$([ -n "$burst_pid" ] && echo 1 || echo 0)
  echo "$t,$(rss $proxy_pid),$(metric 'tollgate_open_connections{listener="http"}'),$(metric 'tollgate_sessions '),$in_burst" >> "$CSV"
  sleep 10
done
[ -n "$burst_pid" ] && wait "$burst_pid" || true
status=0
wait "$viewers_pid" || status=$?
echo "== viewers harness (exit $status)"; sed -n "/^scenario/,\$p" "$work/viewers.out"
echo "== bursts"; cat "$work/bursts.jsonl" 2>/dev/null || true
echo "== RSS samples: $CSV"
awk -F, 'NR == 2 {base = $2} NR > 1 {if ($2 > max) max = $2; last = $2}
  END {printf "first sample %d KiB, max %d KiB, last %d KiB\n", base, max, last}' "$CSV"
exit $status
