#!/usr/bin/env bash
# tollgate vs nginx (secure_link + proxy_pass + proxy_cache) at nginx's best,
# side by side in one run on this machine, everything on 127.0.0.1, every
# run bounded.
#
#   loadtest/compare-nginx.sh            # installs nginx if missing, builds, runs
#
# A fair peer: nginx runs in every setting that changes how it writes a
# response, one instance each, and each phase compares tollgate with the
# setting that was fastest in that phase (the table names it):
#   push        sendfile on,  tcp_nopush on   (Debian's default nginx.conf)
#   nopush      sendfile on,  tcp_nopush off
#   nosendfile  sendfile off, tcp_nopush off  (tcp_nopush only acts with sendfile)
# Each instance: worker_processes 2, keep-alive upstream, secure_link (the
# nginx.org documented form), proxy_cache keyed on $uri (segments valid 2h,
# playlists 1s, origin Cache-Control ignored as operators do for live),
# access_log off; a plain listener and an https one (OpenSSL, `ssl http2`,
# the same self-signed certificate tollgate serves).
#
# Three simulated live origins (tollgate-loadtest origin, synthetic
# segments), one per segment size (SIZES, default 128 KiB, 1 MiB, 4 MiB),
# each serving one channel named after its size (/live/s128k/, /live/s1m/,
# /live/s4m/), sit behind every proxy. tollgate (release): the same
# secure_link secret and md5 expression, so ONE signed URL works on all;
# routes with encrypt = true, [keys] master, segment cache 2h, playlist
# cache 1s, access log off, an http and an https listener.
# The proxies, the origins and the load generator share the machine's cores.
# Segments stay cached for 2h on both sides: a run outlasts the origin's
# window (three playlists' worth), so a refetch would be a 404.
#
# Phases (tollgate-loadtest burst, the same load for every proxy):
#   playlist        the signed entry media playlist (1 MiB channel), HTTP/1.1:
#                   tollgate authenticates, admits the session and rewrites
#                   it (capability, segment tags, key line); nginx checks
#                   secure_link and serves its cached copy.
#   segment-SIZE    warm segment throughput over plain HTTP/1.1: nginx serves
#                   a cached plaintext segment (URL signed with secure_link);
#                   tollgate serves the same segment AES-128 encrypted from
#                   its encrypt-once cache (URI with tg/tgs from its own
#                   rewritten playlist). Both warmed first.
#   https-SIZE      the same over HTTPS, HTTP/1.1 (ALPN http/1.1).
#   h2-SIZE         the same over HTTPS, HTTP/2 (ALPN h2; one stream at a
#                   time per connection, browser-sized receive windows).
#   cold            (COLD=1, the default; the 1 MiB channel) every request
#                   misses: nginx with proxy_cache bypassed (?nocache=1:
#                   fetch and relay plaintext); a second tollgate whose
#                   segment cache is too small to keep a segment (fetch +
#                   encrypt every time; concurrent requests for one segment
#                   still share one fill, counted in the report), spread
#                   over the playlist's newest segments.
# Per proxy and phase: req/s, MB/s, p50/p99, CPU seconds (utime+stime from
# /proc/<pid>/stat; nginx: master + children, reaped children included), peak
# RSS (VmHWM, reset before each phase; nginx: sum over workers), and the load
# generator's own CPU. ROUNDS rounds in ABBA order; the table shows medians.
#
# Writes the table to target/compare-nginx.md (OUT=...). Knobs (environment):
#   SIZES ("131072 1048576 4194304") DURATION (5s) PL_CONNS (32)
#   PL_REQS (2000000) SEG_CONNS (8) SEG_REQS (40000) ROUNDS (3) COLD (1)
#   COLD_CONNS (2) COLD_REQS (20000) HTTPS (1) VARIANTS ("push nopush
#   nosendfile") BASE_PORT (27080; the script uses BASE_PORT..BASE_PORT+29)
#   NO_BUILD (0; 1: use the binaries already in $CARGO_TARGET_DIR/release,
#   to compare two builds of tollgate) KEEP (0; 1: keep the work dir).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-131072 1048576 4194304}
DURATION=${DURATION:-5s}
PL_CONNS=${PL_CONNS:-32}
PL_REQS=${PL_REQS:-2000000}
SEG_CONNS=${SEG_CONNS:-8}
SEG_REQS=${SEG_REQS:-40000}
ROUNDS=${ROUNDS:-3}
COLD=${COLD:-1}
COLD_CONNS=${COLD_CONNS:-2}
COLD_REQS=${COLD_REQS:-20000}
HTTPS=${HTTPS:-1}
VARIANTS=${VARIANTS:-push nopush nosendfile}
BASE_PORT=${BASE_PORT:-27080}
OUT=${OUT:-target/compare-nginx.md}
TG_PORT=$BASE_PORT
TG_TLS_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
COLD_PORT=$((BASE_PORT + 3))
COLD_ADMIN_PORT=$((BASE_PORT + 4))
ORIGIN_PORT0=$((BASE_PORT + 5)) # one per size
NGX_PORT0=$((BASE_PORT + 10))   # variant i: http +2i, https +2i+1
SECRET=bench-secure-link-secret
R=${CARGO_TARGET_DIR:-target}/release

die() { echo "compare-nginx: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

# label BYTES: the channel / phase suffix of a segment size (128k, 1m, ...).
label() {
  if [ $(($1 % 1048576)) = 0 ]; then echo "$(($1 / 1048576))m"; else echo "$(($1 / 1024))k"; fi
}
read -r -a sizes <<<"$SIZES"
read -r -a variants <<<"$VARIANTS"
[ "${#sizes[@]}" -ge 1 ] && [ "${#sizes[@]}" -le 5 ] || die "SIZES: one to five sizes"
[ "${#variants[@]}" -ge 1 ] || die "VARIANTS: at least one nginx setting"
for v in "${variants[@]}"; do
  case $v in push | nopush | nosendfile) ;; *) die "unknown nginx variant $v" ;; esac
done
# The 1 MiB channel (or the first) carries the playlist and cold phases.
MAIN=${sizes[0]}
for s in "${sizes[@]}"; do [ "$s" = 1048576 ] && MAIN=$s; done
MAIN_CH=s$(label "$MAIN")

# --- prerequisites ----------------------------------------------------------
if ! command -v nginx >/dev/null; then
  log "installing nginx from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
fi
nginx -V 2>&1 | grep -q -- --with-http_secure_link_module ||
  die "this nginx has no secure_link module"
nginx -V 2>&1 | grep -q -- --with-http_v2_module || die "this nginx has no http_v2 module"
command -v openssl >/dev/null || die "openssl is missing (apt-get install -y openssl)"
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///')
if [ "${NO_BUILD:-0}" = 1 ]; then
  [ -x "$R/tollgate" ] && [ -x "$R/tollgate-loadtest" ] || die "NO_BUILD=1 but no binaries in $R"
else
  log "building release binaries"
  cargo build --release --workspace --quiet
fi
for port in $(seq "$BASE_PORT" $((NGX_PORT0 + 2 * ${#variants[@]}))); do
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
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One self-signed certificate for 127.0.0.1, served by every https listener
# (an end-entity certificate: webpki refuses a CA certificate as a leaf).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || die "openssl req failed"

# --- configs ----------------------------------------------------------------
{
  cat <<TOML
[server]
listen = ["127.0.0.1:$TG_PORT"]
[[server.tls]]
listen = "127.0.0.1:$TG_TLS_PORT"
cert = "$work/cert.pem"
key = "$work/key.pem"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
access = false
[keys]
master = "hex:5f1e0c3a9b7d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
[cache]
segments = "256MiB"
segment_ttl = "2h"
playlist_ttl = "1s"
[auth.secure_link]
secret = "$SECRET"
hash_arg = "md5"
expires_arg = "expires"
template = "\$secure_link_expires\$uri\$remote_addr \$secret"
TOML
  i=0
  for s in "${sizes[@]}"; do
    ch=s$(label "$s")
    cat <<TOML
[[origin]]
name = "$ch"
url = "http://127.0.0.1:$((ORIGIN_PORT0 + i))"
[[route]]
name = "$ch"
prefix = "/live/$ch/"
origin = "$ch"
auth = ["secure_link"]
encrypt = true
TOML
    i=$((i + 1))
  done
} >"$work/tollgate.toml"
# The cold instance: the same but for ports, no https and a segment cache too
# small to keep a segment (entries over max(1/8 of it, 1 MiB) are not kept).
sed -e "s/127.0.0.1:$TG_PORT\"/127.0.0.1:$COLD_PORT\"/" \
  -e "s/127.0.0.1:$ADMIN_PORT/127.0.0.1:$COLD_ADMIN_PORT/" \
  -e '/^\[\[server.tls\]\]/,/^key = /d' \
  -e 's/^segments = .*/segments = "1KiB"/' "$work/tollgate.toml" >"$work/tollgate-cold.toml"
[ "$MAIN" -ge $((1 << 20)) ] || COLD=0

# nginx_conf VARIANT INDEX: one nginx instance's config.
nginx_conf() {
  local v=$1 i=$2 dir=$work/nginx-$1 sendfile=on nopush=on j s
  [ "$v" = nopush ] && nopush=off
  [ "$v" = nosendfile ] && { sendfile=off; nopush=off; }
  mkdir -p "$dir/cache" "$dir/logs"
  cat <<NGINX
user root;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile $sendfile;
  tcp_nopush $nopush;
  keepalive_requests 1000000;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy_temp;
  fastcgi_temp_path $dir/fastcgi_temp;
  uwsgi_temp_path $dir/uwsgi_temp;
  scgi_temp_path $dir/scgi_temp;
  proxy_cache_path $dir/cache levels=1:2 keys_zone=hls:16m max_size=2g inactive=2h use_temp_path=off;
  ssl_certificate $work/cert.pem;
  ssl_certificate_key $work/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
NGINX
  j=0
  for s in "${sizes[@]}"; do
    echo "  upstream s$(label "$s") { server 127.0.0.1:$((ORIGIN_PORT0 + j)); keepalive 64; }"
    j=$((j + 1))
  done
  echo "  map \$uri \$origin_up {"
  for s in "${sizes[@]}"; do
    echo "    ~^/live/s$(label "$s")/ s$(label "$s");"
  done
  cat <<NGINX
  }
  server {
    listen 127.0.0.1:$((NGX_PORT0 + 2 * i));
    listen 127.0.0.1:$((NGX_PORT0 + 2 * i + 1)) ssl http2;
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
      proxy_pass http://\$origin_up;
    }
    location ~ \.ts\$ {
      if (\$secure_link = "")  { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_cache_valid 200 2h;
      proxy_cache_bypass \$arg_nocache;
      proxy_no_cache \$arg_nocache;
      proxy_pass http://\$origin_up;
    }
  }
}
NGINX
}

# --- start ------------------------------------------------------------------
declare -A PID PORT TLS_PORT
i=0
for s in "${sizes[@]}"; do
  $R/tollgate-loadtest origin --listen "127.0.0.1:$((ORIGIN_PORT0 + i))" --channels "s$(label "$s")" \
    --segment-bytes "$s" --segment-duration 6s >"$work/origin-$i.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done
i=0
for v in "${variants[@]}"; do
  conf=$work/nginx-$v/nginx.conf
  mkdir -p "$work/nginx-$v"
  nginx_conf "$v" "$i" >"$conf"
  nginx -t -q -p "$work/nginx-$v" -c "$conf" -e "$work/nginx-$v/logs/error.log" ||
    die "nginx -t failed for $v"
  nginx -p "$work/nginx-$v" -c "$conf" -e "$work/nginx-$v/logs/error.log" -g 'daemon off;' &
  PID[nginx-$v]=$!
  pids+=($!)
  PORT[nginx-$v]=$((NGX_PORT0 + 2 * i))
  TLS_PORT[nginx-$v]=$((NGX_PORT0 + 2 * i + 1))
  i=$((i + 1))
done
$R/tollgate run -c "$work/tollgate.toml" 2>"$work/tollgate.log" &
PID[tollgate]=$!
pids+=($!)
PORT[tollgate]=$TG_PORT
TLS_PORT[tollgate]=$TG_TLS_PORT
if [ "$COLD" = 1 ]; then
  $R/tollgate run -c "$work/tollgate-cold.toml" 2>"$work/tollgate-cold.log" &
  PID[tollgate-cold]=$!
  pids+=($!)
  PORT[tollgate-cold]=$COLD_PORT
fi
ready() {
  local v
  curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 || return 1
  [ "$COLD" = 0 ] || curl -fs "http://127.0.0.1:$COLD_ADMIN_PORT/readyz" >/dev/null 2>&1 || return 1
  for v in "${variants[@]}"; do
    curl -s -o /dev/null "http://127.0.0.1:${PORT[nginx-$v]}/" 2>/dev/null || return 1
  done
  curl -s -o /dev/null "http://127.0.0.1:$ORIGIN_PORT0/live/s$(label "${sizes[0]}")/media.m3u8"
}
for _ in $(seq 100); do ready && break; sleep 0.1; done
ready || die "the proxies and origins did not come up (see $work)"
NGINXES=()
for v in "${variants[@]}"; do NGINXES+=("nginx-$v"); done

# --- one signed URL for all, checked ----------------------------------------
sign() { $R/tollgate sign -c "$work/tollgate.toml" --route "$1" --path "$2" --ip 127.0.0.1 --ttl 2h; }
PLAYLIST=$(sign "$MAIN_CH" "/live/$MAIN_CH/media.m3u8")
status() { curl -s -o "${2:-/dev/null}" -w '%{http_code}' "$1"; }
for proxy in "${NGINXES[@]}" tollgate; do
  port=${PORT[$proxy]}
  got=$(status "http://127.0.0.1:$port$PLAYLIST" "$work/$proxy.m3u8")
  [ "$got" = 200 ] || die "$proxy answered $got to the signed playlist URL $PLAYLIST"
  bad=$(status "http://127.0.0.1:$port${PLAYLIST/md5=/md5=A}")
  [ "$bad" = 403 ] || die "$proxy answered $bad (not 403) to a tampered signature"
  none=$(status "http://127.0.0.1:$port/live/$MAIN_CH/media.m3u8")
  [ "$none" = 403 ] || die "$proxy answered $none (not 403) without a signature"
done
grep -q '^#EXT-X-KEY:METHOD=AES-128' "$work/tollgate.m3u8" ||
  die "tollgate's playlist has no EXT-X-KEY line"
grep -q 'tgs=e\.' "$work/tollgate.m3u8" || die "tollgate's playlist has no encrypt tags"
log "one signed URL validates on every proxy: $PLAYLIST"

# Per size: the newest segment of tollgate's rewritten playlist (tg + tgs),
# and the same segment signed for nginx; both warmed and checked over http,
# https and h2.
declare -A TG_SEG NGX_SEG
# seg_for PROXY SIZE: the segment URI (path and query) PROXY is asked for.
seg_for() { if [ "$1" = tollgate ]; then echo "${TG_SEG[$2]}"; else echo "${NGX_SEG[$2]}"; fi; }
size() { curl -fs --cacert "$work/cert.pem" -o /dev/null -w '%{size_download}' "$@"; }
for s in "${sizes[@]}"; do
  ch=s$(label "$s")
  pl=$(sign "$ch" "/live/$ch/media.m3u8")
  curl -fs -o "$work/tg-$ch.m3u8" "http://127.0.0.1:$TG_PORT$pl" || die "tollgate refused $pl"
  TG_SEG[$s]=/live/$ch/$(grep -v '^#' "$work/tg-$ch.m3u8" | grep . | tail -n 1)
  path=${TG_SEG[$s]%%\?*}
  NGX_SEG[$s]=$(sign "$ch" "$path")
  enc=$((16 * (s / 16 + 1)))
  for _ in 1 2; do
    for proxy in "${NGINXES[@]}" tollgate; do
      want=$s seg=$(seg_for "$proxy" "$s")
      [ "$proxy" = tollgate ] && want=$enc
      n=$(size "http://127.0.0.1:${PORT[$proxy]}$seg") || die "$proxy refused $seg"
      [ "$n" = "$want" ] || die "$proxy sent $n bytes of $path, not $want"
      if [ "$HTTPS" = 1 ]; then
        n=$(size --http1.1 "https://127.0.0.1:${TLS_PORT[$proxy]}$seg") || die "$proxy refused $seg over https"
        [ "$n" = "$want" ] || die "$proxy sent $n bytes of $path over https, not $want"
        n=$(size --http2 "https://127.0.0.1:${TLS_PORT[$proxy]}$seg") || die "$proxy refused $seg over h2"
        [ "$n" = "$want" ] || die "$proxy sent $n bytes of $path over h2, not $want"
      fi
    done
  done
  for proxy in "${NGINXES[@]}"; do
    cached=$(curl -fs -D - -o /dev/null "http://127.0.0.1:${PORT[$proxy]}${NGX_SEG[$s]}" | tr -d '\r' |
      sed -n 's/^X-Cache-Status: //Ip')
    [ "$cached" = HIT ] || die "$proxy did not serve $path from its cache ($cached)"
  done
  log "segment $path: nginx cached plaintext $s B, tollgate encrypted $enc B"
done
if [ "$HTTPS" = 1 ]; then
  proto=$(curl -s --cacert "$work/cert.pem" --http2 -o /dev/null -w '%{http_version}' \
    "https://127.0.0.1:$TG_TLS_PORT${TG_SEG[$MAIN]}")
  [ "$proto" = 2 ] || die "tollgate's https listener did not speak h2 ($proto)"
fi

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
  case $1 in nginx-*) echo "${PID[$1]}" $(pgrep -P "${PID[$1]}") ;; *) echo "${PID[$1]}" ;; esac
}
rss_pids() { # proxy -> processes whose VmHWM counts
  case $1 in nginx-*) pgrep -f -P "${PID[$1]}" 'nginx: worker' ;; *) echo "${PID[$1]}" ;; esac
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

# phase ROUND NAME PROXY CONNS REQS TARGET [BURST ARGS...]: warm 1 s, then
# measure; appends one result row. TARGET is a URL, or @FILE for a list.
phase() {
  local round=$1 name=$2 proxy=$3 conns=$4 reqs=$5 url=$6 c0 c1
  shift 6
  local json="$work/$name-$proxy-$round.json" target=(--url "$url")
  [ "${url#@}" != "$url" ] && target=(--urls-file "${url#@}")
  burst "${target[@]}" "$@" -c "$conns" -n "$reqs" -d 1s >/dev/null
  reset_hwm "$proxy"
  # shellcheck disable=SC2046 # pid lists
  c0=$(cpu_ticks $(proc_pids "$proxy"))
  log "round $round, $name via $proxy: -c $conns -n $reqs -d $DURATION $*"
  burst "${target[@]}" "$@" -c "$conns" -n "$reqs" -d "$DURATION" --json "$json" >/dev/null
  # shellcheck disable=SC2046
  c1=$(cpu_ticks $(proc_pids "$proxy"))
  [ "$(jnum "$json" errors)" = 0 ] ||
    die "$name via $proxy had errors: $(tr -d '\n ' <"$json" | grep -o '"errors_by_status":{[^}]*}')"
  echo "$round" "$name" "$proxy" \
    "$(jnum "$json" requests_ok)" "$(jnum "$json" rps)" "$(jnum "$json" bytes_per_sec)" \
    "$(jnum "$json" p50)" "$(jnum "$json" p99)" \
    "$(awk -v t=$((c1 - c0)) -v k="$TCK" 'BEGIN{print t/k}')" \
    "$(peak_rss_kib "$proxy")" "$(jnum "$json" bytes)" "$(jnum "$json" client_cpu_s)" \
    >>"$work/results"
  tls=$(grep -o '"tls": "[^"]*"' "$json" | sed 's/.*: "//; s/"$//' || true)
  [ -z "$tls" ] || echo "$name $proxy $tls" >>"$work/tls"
}

# order ROUND: the proxies of a round, ABBA (every nginx, then tollgate; the
# reverse in even rounds).
order() {
  local list=("${NGINXES[@]}" tollgate) k
  if [ $(($1 % 2)) = 0 ]; then
    for ((k = ${#list[@]} - 1; k >= 0; k--)); do echo "${list[k]}"; done
  else
    printf '%s\n' "${list[@]}"
  fi
}

# lookups RESULT: the cold instance's segment cache lookups so far.
lookups() {
  curl -fs "http://127.0.0.1:$COLD_ADMIN_PORT/metrics" |
    awk -v r="$1" '$1 ~ /^tollgate_segment_cache_lookups_total/ && $1 ~ "result=\"" r "\"" {print $2; f = 1}
      END {if (!f) print 0}'
}

# One cold round: URL lists for the playlist's newest segments (fresh, so the
# origin still has them), then every proxy; counts how the cold tollgate's
# lookups went (miss = one fetch and one encryption).
cold_round() {
  local round=$1 uris uri m0 j0 h0 proxy v
  curl -fs -o "$work/cold.m3u8" "http://127.0.0.1:$COLD_PORT$PLAYLIST" ||
    die "the cold tollgate refused the playlist"
  mapfile -t uris < <(grep -v '^#' "$work/cold.m3u8" | grep .)
  [ "${#uris[@]}" -ge 3 ] || die "the cold playlist has ${#uris[@]} segments"
  : >"$work/cold-tollgate.urls"
  : >"$work/cold-nginx.paths"
  for uri in "${uris[@]}"; do
    echo "http://127.0.0.1:$COLD_PORT/live/$MAIN_CH/$uri" >>"$work/cold-tollgate.urls"
    echo "$(sign "$MAIN_CH" "/live/$MAIN_CH/${uri%%\?*}")&nocache=1" >>"$work/cold-nginx.paths"
  done
  for v in "${NGINXES[@]}"; do
    sed "s|^|http://127.0.0.1:${PORT[$v]}|" "$work/cold-nginx.paths" >"$work/cold-$v.urls"
  done
  if [ "$round" = 1 ]; then
    bypass=$(curl -fs -D - -o /dev/null "$(head -n 1 "$work/cold-${NGINXES[0]}.urls")" | tr -d '\r' |
      sed -n 's/^X-Cache-Status: //Ip')
    [ "$bypass" = BYPASS ] || die "nginx did not bypass its cache for nocache=1 ($bypass)"
  fi
  m0=$(lookups miss) j0=$(lookups joined) h0=$(lookups hit)
  for proxy in $(order "$round"); do
    if [ "$proxy" = tollgate ]; then
      phase "$round" cold tollgate-cold "$COLD_CONNS" "$COLD_REQS" "@$work/cold-tollgate.urls"
    else
      phase "$round" cold "$proxy" "$COLD_CONNS" "$COLD_REQS" "@$work/cold-$proxy.urls"
    fi
  done
  echo "$round $(($(lookups miss) - m0)) $(($(lookups joined) - j0)) $(($(lookups hit) - h0))" \
    >>"$work/cold-lookups"
}

: >"$work/results"
for round in $(seq "$ROUNDS"); do
  for proxy in $(order "$round"); do
    phase "$round" playlist "$proxy" "$PL_CONNS" "$PL_REQS" "http://127.0.0.1:${PORT[$proxy]}$PLAYLIST"
  done
  for s in "${sizes[@]}"; do
    for proxy in $(order "$round"); do
      seg=$(seg_for "$proxy" "$s")
      phase "$round" "segment-$(label "$s")" "$proxy" "$SEG_CONNS" "$SEG_REQS" \
        "http://127.0.0.1:${PORT[$proxy]}$seg"
      if [ "$HTTPS" = 1 ]; then
        phase "$round" "https-$(label "$s")" "$proxy" "$SEG_CONNS" "$SEG_REQS" \
          "https://127.0.0.1:${TLS_PORT[$proxy]}$seg" --ca "$work/cert.pem"
        phase "$round" "h2-$(label "$s")" "$proxy" "$SEG_CONNS" "$SEG_REQS" \
          "https://127.0.0.1:${TLS_PORT[$proxy]}$seg" --ca "$work/cert.pem" --http2
      fi
    done
  done
  [ "$COLD" = 1 ] && cold_round "$round"
done

# --- report -----------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
{
  echo "tollgate vs nginx $NGINX_VERSION at its best per phase ($VARIANTS), $(nproc) cores," \
    "$(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS rounds of $DURATION bursts in ABBA order (medians);" \
    "connections: playlist $PL_CONNS, segments $SEG_CONNS, cold $COLD_CONNS"
  echo
  python3 - "$work/results" "$work/cold-lookups" "$work/tls" <<'PY'
import statistics, sys
from collections import defaultdict

rows = defaultdict(lambda: defaultdict(list))  # (phase, proxy) -> metric -> values
per_round = defaultdict(dict)  # (phase, proxy) -> round -> main metric
phases = []
for line in open(sys.argv[1]):
    rnd, phase, proxy, ok, rps, bps, p50, p99, cpu, rss, nbytes, client = line.split()
    ok, nbytes = float(ok), float(nbytes)
    r = rows[(phase, proxy)]
    r["rps"].append(float(rps)); r["mbs"].append(float(bps) / 1e6)
    r["p50"].append(float(p50)); r["p99"].append(float(p99)); r["cpu"].append(float(cpu))
    r["rss"].append(float(rss) / 1024); r["client"].append(float(client))
    r["cpu_k"].append(float(cpu) * 1e6 / ok if ok else 0)
    r["cpu_gb"].append(float(cpu) * 1e9 / nbytes if nbytes else 0)
    per_round[(phase, proxy)][int(rnd)] = float(rps)
    if phase not in phases:
        phases.append(phase)
med = lambda phase, proxy, m: statistics.median(rows[(phase, proxy)][m])

print("| phase | nginx's best | metric | nginx | tollgate | tollgate/nginx |")
print("|---|---|---|---|---|---|")
notes = []
for phase in phases:
    tg = "tollgate-cold" if phase == "cold" else "tollgate"
    ngx = sorted(p for (ph, p) in rows if ph == phase and p.startswith("nginx-"))
    if not ngx or (phase, tg) not in rows:
        continue
    main = "rps" if phase == "playlist" else "mbs"
    best = max(ngx, key=lambda p: med(phase, p, main))
    setting = best.removeprefix("nginx-")
    metrics = [("requests/s", "rps", "%.0f"), ("MB/s", "mbs", "%.1f"),
               ("p50 ms", "p50", "%.3f"), ("p99 ms", "p99", "%.3f"),
               ("proxy CPU s", "cpu", "%.2f")]
    metrics.append(("proxy CPU ms per 1k requests", "cpu_k", "%.2f") if phase == "playlist"
                   else ("proxy CPU s per GB", "cpu_gb", "%.3f"))
    metrics += [("load generator CPU s", "client", "%.2f"), ("peak RSS MiB", "rss", "%.1f")]
    for label, m, fmt in metrics:
        a, b = med(phase, best, m), med(phase, tg, m)
        ratio = "%.2f" % (b / a) if a else "-"
        if m == main:
            ratio = "**" + ratio + "**"
        print(f"| {phase} | {setting} | {label} | {fmt % a} | {fmt % b} | {ratio} |")
    spread = ", ".join(f"{p.removeprefix('nginx-')} {med(phase, p, main):.{0 if main == 'rps' else 1}f}" for p in ngx)
    rounds = sorted(per_round[(phase, tg)])
    by_round = " ".join("%.2f" % (per_round[(phase, tg)][r] / per_round[(phase, best)][r])
                        for r in rounds if r in per_round[(phase, best)])
    unit = "req/s" if main == "rps" else "MB/s"
    notes.append(f"- {phase}: nginx {unit} per setting: {spread}; tollgate/nginx's best per round: {by_round}")
print()
print("\n".join(notes))
try:
    seen = defaultdict(set)
    for line in open(sys.argv[3]):
        phase, proxy, tls = line.split(None, 2)
        seen[tls.strip()].add(proxy)
    for tls, proxies in sorted(seen.items()):
        print(f"- TLS negotiated by the load generator (rustls client): {tls} with {', '.join(sorted(proxies))}")
except FileNotFoundError:
    pass
try:
    m = j = h = 0
    for line in open(sys.argv[2]):
        _, a, b, c = line.split()
        m, j, h = m + int(a), j + int(b), h + int(c)
    print(f"\ncold tollgate segment cache lookups (all rounds, warm-ups included): "
          f"{m} miss (fetch + encrypt), {j} joined a running fill, {h} hit")
except FileNotFoundError:
    pass
PY
} | tee "$OUT"
log "table written to $OUT"
