#!/usr/bin/env bash
# Bulk load through the admin API, one run, loopback only: PUT
# /api/v1/snapshot with USERS users (default 1,000,000) to the release
# tollgate (no [[user]] in its config, empty state dir), then the same again
# (replacing a full layer), then one single-user PUT. Prints curl's wall
# time for each and tollgate's peak RSS (VmHWM, reset between steps through
# /proc/PID/clear_refs), and the PUT's own split from tollgate's log
# (receive + compile, then validate + save + swap). The JSON (~105 MiB for 1M users) and the state dir
# live in a temporary dir under /tmp, removed on exit.
# Usage: scripts/bench-snapshot-put.sh [USERS] (after a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-1000000}
R=target/release
[ -x $R/tollgate ] || cargo build --release --bin tollgate
cargo build --release --example snapshot_load -q
work=$(mktemp -d /tmp/tollgate-put.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
$R/examples/snapshot_load "$users" --write "$work/snapshot.json"
echo "== $users users, $(du -m "$work/snapshot.json" | cut -f1) MiB of JSON"
mkdir "$work/state"
cat > "$work/tg.toml" <<TOML
[server]
listen = ["127.0.0.1:18090"]
[admin]
listen = "127.0.0.1:19099"
token = "bench-admin-token"
[state]
dir = "$work/state"
[ip]
allow = ["127.0.0.0/8"]
[[origin]]
name = "o"
url = "http://127.0.0.1:18091"
[[route]]
name = "live"
prefix = "/live/"
origin = "o"
auth = ["ip"]
TOML
$R/tollgate run -c "$work/tg.toml" 2>"$work/log" & pid=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:19099/readyz >/dev/null 2>&1 && break; sleep 0.1; done
hwm() { awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status"; }
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status"; }
put() { # path, curl data argument
  curl -s -o "$work/answer" -w '%{http_code} in %{time_total} s' -X PUT \
    -H 'authorization: Bearer bench-admin-token' -H 'content-type: application/json' \
    --data-binary "$2" "http://127.0.0.1:19099$1"
}
echo "idle tollgate: peak RSS $(hwm)"
echo 5 > "/proc/$pid/clear_refs"
echo "PUT snapshot (empty -> $users users): $(put /api/v1/snapshot "@$work/snapshot.json"); peak RSS $(hwm); RSS after $(rss)"
echo 5 > "/proc/$pid/clear_refs"
echo "PUT snapshot ($users -> $users users): $(put /api/v1/snapshot "@$work/snapshot.json"); peak RSS $(hwm); RSS after $(rss)"
echo 5 > "/proc/$pid/clear_refs"
echo "PUT one user (at $users users): $(put /api/v1/users/bench-one '{"tokens":["bench-one-token"]}'); peak RSS $(hwm); RSS after $(rss)"
echo "state file: $(du -m "$work/state/snapshot.json" | cut -f1) MiB"
grep "snapshot replaced" "$work/log" | grep -o "\"users.*_ms\":[0-9]*" || true
