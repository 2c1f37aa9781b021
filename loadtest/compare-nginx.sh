#!/usr/bin/env bash
# tollgate vs nginx (secure_link + proxy_pass + proxy_cache), side by side in
# one run on this machine, everything on 127.0.0.1, every run bounded.
#
#   loadtest/compare-nginx.sh            # installs nginx if missing, builds, runs
#
# One simulated live origin (tollgate-loadtest origin, synthetic segments) sits
# behind both proxies, each on its own port:
#   - nginx: worker_processes 2, keep-alive upstream, secure_link (the
#     nginx.org documented form), proxy_cache keyed on $uri: segments valid
#     10m, playlists 1s (origin Cache-Control ignored, as operators do for
#     live), sendfile on, access_log off;
#   - tollgate (release): the same secure_link secret and md5 expression, so
#     ONE signed URL works on both; route with encrypt = true, [keys] master,
#     segment cache 10m, playlist cache 1s, access log off.
# Both proxies, the origin and the load generator share the machine's cores.
#
# Phases (tollgate-loadtest burst, same load for both):
#   playlist  the signed entry media playlist: tollgate authenticates, admits
#             the session and rewrites it (capability, segment tags, key
#             line); nginx checks secure_link and serves its cached copy.
#   segment   warm segment throughput: nginx serves a cached plaintext
#             segment (URL signed with secure_link); tollgate serves the same
#             segment AES-128 encrypted from its encrypt-once cache (URI with
#             tg/tgs from its own rewritten playlist). Both warmed first.
#   cold      (COLD=1, the default) every request misses: nginx with
#             proxy_cache bypassed (?nocache=1: fetch and relay plaintext);
#             a second tollgate whose segment cache is too small to keep a
#             segment (fetch + encrypt every time; concurrent requests for
#             one segment still share one fill, counted in the report),
#             spread over the playlist's newest segments.
# Per proxy and phase: req/s, MB/s, p50/p99, CPU seconds (utime+stime from
# /proc/<pid>/stat; nginx: master + children, reaped children included), peak
# RSS (VmHWM, reset before each phase; nginx: sum over workers), and the load
# generator's own CPU. ROUNDS rounds in ABBA order; the table shows medians.
#
# Writes the table to target/compare-nginx.md (OUT=...). Knobs (environment):
#   SEG_BYTES (1048576) DURATION (8s) PL_CONNS (32) PL_REQS (2000000)
#   SEG_CONNS (8) SEG_REQS (40000) ROUNDS (3) COLD (1) COLD_CONNS (2)
#   COLD_REQS (20000) BASE_PORT (27080: tollgate, +1 origin, +2 nginx,
#   +3 tollgate admin, +4 cold tollgate, +5 its admin).
set -euo pipefail
cd "$(dirname "$0")/.."

SEG_BYTES=${SEG_BYTES:-1048576}
DURATION=${DURATION:-8s}
PL_CONNS=${PL_CONNS:-32}
PL_REQS=${PL_REQS:-2000000}
SEG_CONNS=${SEG_CONNS:-8}
SEG_REQS=${SEG_REQS:-40000}
ROUNDS=${ROUNDS:-3}
COLD=${COLD:-1}
COLD_CONNS=${COLD_CONNS:-2}
COLD_REQS=${COLD_REQS:-20000}
BASE_PORT=${BASE_PORT:-27080}
OUT=${OUT:-target/compare-nginx.md}
TG_PORT=$BASE_PORT
ORIGIN_PORT=$((BASE_PORT + 1))
NGX_PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 3))
COLD_PORT=$((BASE_PORT + 4))
COLD_ADMIN_PORT=$((BASE_PORT + 5))
SECRET=bench-secure-link-secret
R=target/release

die() { echo "compare-nginx: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# --- prerequisites ----------------------------------------------------------
if ! command -v nginx >/dev/null; then
  log "installing nginx from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
fi
nginx -V 2>&1 | grep -q -- --with-http_secure_link_module ||
  die "this nginx has no secure_link module"
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///')
log "building release binaries"
cargo build --release --workspace --quiet
for port in "$TG_PORT" "$ORIGIN_PORT" "$NGX_PORT" "$ADMIN_PORT" "$COLD_PORT" "$COLD_ADMIN_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is in use (set BASE_PORT)"
  fi
done

work=$(mktemp -d /tmp/compare-nginx.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- configs ----------------------------------------------------------------
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
segments = "256MiB"
segment_ttl = "10m"
playlist_ttl = "1s"
[auth.secure_link]
secret = "$SECRET"
hash_arg = "md5"
expires_arg = "expires"
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
# The cold instance: the same but for ports and a segment cache too small to
# keep a segment (entries over max(1/8 of it, 1 MiB) are not kept).
sed -e "s/127.0.0.1:$TG_PORT/127.0.0.1:$COLD_PORT/" \
  -e "s/127.0.0.1:$ADMIN_PORT/127.0.0.1:$COLD_ADMIN_PORT/" \
  -e 's/^segments = .*/segments = "1KiB"/' "$work/tollgate.toml" >"$work/tollgate-cold.toml"
[ "$SEG_BYTES" -ge $((1 << 20)) ] || COLD=0

mkdir -p "$work/nginx/cache" "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<NGINX
user root;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/client_body;
  proxy_temp_path $work/nginx/proxy_temp;
  fastcgi_temp_path $work/nginx/fastcgi_temp;
  uwsgi_temp_path $work/nginx/uwsgi_temp;
  scgi_temp_path $work/nginx/scgi_temp;
  proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=hls:16m max_size=1g inactive=10m use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGX_PORT;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache hls;
    proxy_cache_key \$uri;
    proxy_cache_lock on;
    proxy_cache_use_stale updating;
    proxy_ignore_headers Cache-Control Expires Set-Cookie;
    add_header X-Cache-Status \$upstream_cache_status;
    secure_link \$arg_md5,\$arg_expires;
    secure_link_md5 "\$secure_link_expires\$uri\$remote_addr $SECRET";
    location ~ \.m3u8\$ {
      if (\$secure_link = "")  { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_cache_valid 200 1s;
      proxy_pass http://origin;
    }
    location ~ \.ts\$ {
      if (\$secure_link = "")  { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_cache_valid 200 10m;
      proxy_cache_bypass \$arg_nocache;
      proxy_no_cache \$arg_nocache;
      proxy_pass http://origin;
    }
  }
}
NGINX

# --- start ------------------------------------------------------------------
$R/tollgate-loadtest origin --listen "127.0.0.1:$ORIGIN_PORT" \
  --segment-bytes "$SEG_BYTES" --segment-duration 6s >"$work/origin.log" 2>&1 &
pids+=($!)
nginx -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" ||
  die "nginx -t failed"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" \
  -g 'daemon off;' &
NGX_PID=$!
pids+=("$NGX_PID")
$R/tollgate run -c "$work/tollgate.toml" 2>"$work/tollgate.log" &
TG_PID=$!
pids+=("$TG_PID")
TG_CUR=$TG_PID
if [ "$COLD" = 1 ]; then
  $R/tollgate run -c "$work/tollgate-cold.toml" 2>"$work/tollgate-cold.log" &
  TGC_PID=$!
  pids+=("$TGC_PID")
fi
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 &&
    { [ "$COLD" = 0 ] || curl -fs "http://127.0.0.1:$COLD_ADMIN_PORT/readyz" >/dev/null 2>&1; } &&
    curl -s -o /dev/null "http://127.0.0.1:$NGX_PORT/" 2>/dev/null &&
    curl -s -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/live/ch1/media.m3u8" && break
  sleep 0.1
done

# --- one signed URL for both, checked -----------------------------------------
sign() { $R/tollgate sign -c "$work/tollgate.toml" --route live --path "$1" --ip 127.0.0.1 --ttl 2h; }
PLAYLIST=$(sign /live/ch1/media.m3u8)
status() { curl -s -o "${2:-/dev/null}" -w '%{http_code}' "$1"; }
for target in "nginx $NGX_PORT" "tollgate $TG_PORT"; do
  read -r name port <<<"$target"
  got=$(status "http://127.0.0.1:$port$PLAYLIST" "$work/$name.m3u8")
  [ "$got" = 200 ] || die "$name answered $got to the signed playlist URL $PLAYLIST"
  bad=$(status "http://127.0.0.1:$port${PLAYLIST/md5=/md5=A}")
  [ "$bad" = 403 ] || die "$name answered $bad (not 403) to a tampered signature"
  none=$(status "http://127.0.0.1:$port/live/ch1/media.m3u8")
  [ "$none" = 403 ] || die "$name answered $none (not 403) without a signature"
done
grep -q '^#EXT-X-KEY:METHOD=AES-128' "$work/tollgate.m3u8" ||
  die "tollgate's playlist has no EXT-X-KEY line"
grep -q 'tgs=e\.' "$work/tollgate.m3u8" || die "tollgate's playlist has no encrypt tags"
log "one signed URL validates on both: $PLAYLIST"

# The newest segment of tollgate's rewritten playlist (tg + tgs), and the same
# segment signed for nginx.
TG_SEG=/live/ch1/$(grep -v '^#' "$work/tollgate.m3u8" | grep . | tail -n 1)
SEG_PATH=${TG_SEG%%\?*}
NGX_SEG=$(sign "$SEG_PATH")
ENC_BYTES=$((16 * (SEG_BYTES / 16 + 1)))
size() { curl -fs -o /dev/null -w '%{size_download}' "$1"; }
for _ in 1 2; do
  n=$(size "http://127.0.0.1:$NGX_PORT$NGX_SEG") || die "nginx refused $NGX_SEG"
  [ "$n" = "$SEG_BYTES" ] || die "nginx sent $n bytes of $SEG_PATH, not $SEG_BYTES"
  n=$(size "http://127.0.0.1:$TG_PORT$TG_SEG") || die "tollgate refused $TG_SEG"
  [ "$n" = "$ENC_BYTES" ] || die "tollgate sent $n bytes of $SEG_PATH, not $ENC_BYTES"
done
cached=$(curl -fs -D - -o /dev/null "http://127.0.0.1:$NGX_PORT$NGX_SEG" | tr -d '\r' |
  sed -n 's/^X-Cache-Status: //Ip')
[ "$cached" = HIT ] || die "nginx did not serve $SEG_PATH from its cache ($cached)"
log "segment $SEG_PATH: nginx cached plaintext $SEG_BYTES B, tollgate encrypted $ENC_BYTES B"

# --- measurement ------------------------------------------------------------
TCK=$(getconf CLK_TCK)
# CPU ticks (utime+stime) of the given pids, plus the reaped children of the
# first one (cutime+cstime) so short-lived nginx helpers are not lost.
cpu_ticks() {
  local total=0 first=1 pid stat
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    # shellcheck disable=SC2086 # split the fields after "(comm) "
    set -- ${stat##*) }
    total=$((total + ${12} + ${13}))
    [ $first = 1 ] && total=$((total + ${14} + ${15}))
    first=0
  done
  echo "$total"
}
proc_pids() { # proxy -> its processes, the main one first
  if [ "$1" = nginx ]; then echo "$NGX_PID" $(pgrep -P "$NGX_PID"); else echo "$TG_CUR"; fi
}
rss_pids() { # proxy -> processes whose VmHWM counts
  if [ "$1" = nginx ]; then pgrep -f -P "$NGX_PID" 'nginx: worker'; else echo "$TG_CUR"; fi
}
reset_hwm() { local p; for p in $(rss_pids "$1"); do echo 5 >"/proc/$p/clear_refs"; done; }
peak_rss_kib() {
  local p total=0 kib
  for p in $(rss_pids "$1"); do
    kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$p/status")
    total=$((total + kib))
  done
  echo "$total"
}
jnum() { grep -o "\"$2\": [0-9.e+-]*" "$1" | head -n 1 | awk '{print $2}'; }
burst() { $R/tollgate-loadtest burst "$@"; }

# phase ROUND NAME PROXY CONNS REQS TARGET: warm 1 s, then measure; appends one
# result row. TARGET is a URL, or @FILE for a list of URLs.
phase() {
  local round=$1 name=$2 proxy=$3 conns=$4 reqs=$5 url=$6 c0 c1
  local json="$work/$name-$proxy-$round.json" target=(--url "$6")
  [ "${url#@}" != "$url" ] && target=(--urls-file "${url#@}")
  burst "${target[@]}" -c "$conns" -n "$reqs" -d 1s >/dev/null
  reset_hwm "$proxy"
  # shellcheck disable=SC2046 # pid lists
  c0=$(cpu_ticks $(proc_pids "$proxy"))
  log "round $round, $name via $proxy: -c $conns -n $reqs -d $DURATION"
  burst "${target[@]}" -c "$conns" -n "$reqs" -d "$DURATION" --json "$json" >&2
  # shellcheck disable=SC2046
  c1=$(cpu_ticks $(proc_pids "$proxy"))
  [ "$(jnum "$json" errors)" = 0 ] || die "$name via $proxy had errors (see above)"
  echo "$round" "$name" "$proxy" \
    "$(jnum "$json" requests_ok)" "$(jnum "$json" rps)" "$(jnum "$json" bytes_per_sec)" \
    "$(jnum "$json" p50)" "$(jnum "$json" p99)" \
    "$(awk -v t=$((c1 - c0)) -v k="$TCK" 'BEGIN{print t/k}')" \
    "$(peak_rss_kib "$proxy")" "$(jnum "$json" bytes)" "$(jnum "$json" client_cpu_s)" \
    >>"$work/results"
}

# lookups RESULT: the cold instance's segment cache lookups so far.
lookups() {
  curl -fs "http://127.0.0.1:$COLD_ADMIN_PORT/metrics" |
    awk -v r="$1" '$1 ~ /^tollgate_segment_cache_lookups_total/ && $1 ~ "result=\"" r "\"" {print $2; f = 1}
      END {if (!f) print 0}'
}

# One cold round: URL lists for the playlist's newest segments (fresh, so the
# origin still has them), then both proxies; counts how the cold tollgate's
# lookups went (miss = one fetch and one encryption).
cold_round() {
  local round=$1 order=$2 uris uri m0 j0 h0
  curl -fs -o "$work/cold.m3u8" "http://127.0.0.1:$COLD_PORT$PLAYLIST" ||
    die "the cold tollgate refused the playlist"
  mapfile -t uris < <(grep -v '^#' "$work/cold.m3u8" | grep .)
  [ "${#uris[@]}" -ge 3 ] || die "the cold playlist has ${#uris[@]} segments"
  : >"$work/cold-tollgate.urls"
  : >"$work/cold-nginx.urls"
  for uri in "${uris[@]}"; do
    echo "http://127.0.0.1:$COLD_PORT/live/ch1/$uri" >>"$work/cold-tollgate.urls"
    echo "http://127.0.0.1:$NGX_PORT$(sign "/live/ch1/${uri%%\?*}")&nocache=1" >>"$work/cold-nginx.urls"
  done
  if [ "$round" = 1 ]; then
    bypass=$(curl -fs -D - -o /dev/null "$(head -n 1 "$work/cold-nginx.urls")" | tr -d '\r' |
      sed -n 's/^X-Cache-Status: //Ip')
    [ "$bypass" = BYPASS ] || die "nginx did not bypass its cache for nocache=1 ($bypass)"
  fi
  m0=$(lookups miss) j0=$(lookups joined) h0=$(lookups hit)
  for proxy in $order; do
    if [ "$proxy" = nginx ]; then
      phase "$round" cold nginx "$COLD_CONNS" "$COLD_REQS" "@$work/cold-nginx.urls"
    else
      TG_CUR=$TGC_PID
      phase "$round" cold tollgate "$COLD_CONNS" "$COLD_REQS" "@$work/cold-tollgate.urls"
      TG_CUR=$TG_PID
    fi
  done
  echo "$round $(($(lookups miss) - m0)) $(($(lookups joined) - j0)) $(($(lookups hit) - h0))" \
    >>"$work/cold-lookups"
}

# Rounds interleave the proxies (ABBA order) so drift in the machine's other
# load hits both alike; the report takes the median of every figure.
: >"$work/results"
for round in $(seq "$ROUNDS"); do
  order="nginx tollgate"; [ $((round % 2)) = 0 ] && order="tollgate nginx"
  for proxy in $order; do
    if [ "$proxy" = nginx ]; then port=$NGX_PORT; else port=$TG_PORT; fi
    phase "$round" playlist "$proxy" "$PL_CONNS" "$PL_REQS" "http://127.0.0.1:$port$PLAYLIST"
  done
  for proxy in $order; do
    if [ "$proxy" = nginx ]; then url="http://127.0.0.1:$NGX_PORT$NGX_SEG"; else url="http://127.0.0.1:$TG_PORT$TG_SEG"; fi
    phase "$round" segment "$proxy" "$SEG_CONNS" "$SEG_REQS" "$url"
  done
  [ "$COLD" = 1 ] && cold_round "$round" "$order"
done

# --- report -----------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
awk -v date="$(date -u +%Y-%m-%dT%H:%MZ)" -v cores="$(nproc)" -v ngx="$NGINX_VERSION" \
  -v seg="$SEG_BYTES" -v dur="$DURATION" -v pc="$PL_CONNS" -v sc="$SEG_CONNS" -v cc="$COLD_CONNS" -v rounds="$ROUNDS" '
  function add(m, v) { k = m SUBSEP $2 SUBSEP $3; n[k]++; val[k, n[k]] = v }
  function median(m, ph, px,   k, c, i, j, t, a) {
    k = m SUBSEP ph SUBSEP px; c = n[k]
    for (i = 1; i <= c; i++) a[i] = val[k, i]
    for (i = 2; i <= c; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return c % 2 ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
  }
  { add("rps", $5); add("mbs", $6 / 1e6); add("p50", $7); add("p99", $8); add("cpu", $9)
    add("rss", $10 / 1024); add("cpu_k", $9 * 1e6 / $4); add("cpu_gb", $9 * 1e9 / $11)
    add("client", $12); r[$1, $2, $3] = $5 }
  function row(label, ph, m, fmt,   a, b) {
    a = median(m, ph, "nginx"); b = median(m, ph, "tollgate")
    printf "| %s | %s | " fmt " | " fmt " | %.2f |\n", ph, label, a, b, (a > 0 ? b / a : 0)
  }
  END {
    printf "tollgate vs nginx %s, %s cores, %s, segments %d B, %d rounds of %s bursts (medians)\n\n", ngx, cores, date, seg, rounds, dur
    print "| phase | metric | nginx | tollgate | tollgate/nginx |"
    print "|---|---|---|---|---|"
    for (i = 1; i <= 3; i++) {
      ph = (i == 1 ? "playlist" : i == 2 ? "segment" : "cold")
      if (!n["rps" SUBSEP ph SUBSEP "nginx"]) continue
      row("requests/s (c=" (i == 1 ? pc : i == 2 ? sc : cc) ")", ph, "rps", "%.0f")
      row("MB/s", ph, "mbs", "%.1f")
      row("p50 ms", ph, "p50", "%.3f")
      row("p99 ms", ph, "p99", "%.3f")
      row("proxy CPU s", ph, "cpu", "%.2f")
      if (i == 1) row("proxy CPU ms per 1k requests", ph, "cpu_k", "%.2f")
      else row("proxy CPU s per GB", ph, "cpu_gb", "%.3f")
      row("load generator CPU s", ph, "client", "%.2f")
      row("peak RSS MiB", ph, "rss", "%.1f")
    }
    for (i = 1; i <= 3; i++) {
      ph = (i == 1 ? "playlist" : i == 2 ? "segment" : "cold")
      if (!n["rps" SUBSEP ph SUBSEP "nginx"]) continue
      printf "\n%s requests/s tollgate/nginx per round:", ph
      for (j = 1; j <= rounds; j++) printf " %.2f", r[j, ph, "tollgate"] / r[j, ph, "nginx"]
    }
    print ""
  }' "$work/results" | tee "$OUT"
if [ -s "$work/cold-lookups" ]; then
  awk '{m += $2; j += $3; h += $4}
    END {printf "\ncold tollgate segment cache lookups (all rounds, warm-ups included): %d miss (fetch + encrypt), %d joined a running fill, %d hit\n", m, j, h}' \
    "$work/cold-lookups" | tee -a "$OUT"
fi
log "table written to $OUT"
