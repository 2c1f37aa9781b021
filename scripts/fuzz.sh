#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for SECONDS each (default 60), one
# after the other, and print per target: executions, coverage (libFuzzer's
# `cov`/`ft`), corpus size and whether it found anything.
#
#   bash scripts/fuzz.sh 600                  # the long runs (docs/security.md)
#   bash scripts/fuzz.sh 5                    # the CI smoke
#   bash scripts/fuzz.sh 60 hls_rewrite ...   # some targets only
#
# Seeds come from scripts/fuzz-seeds.sh (test vectors and fixtures); the
# inputs of past findings (fuzz/regressions/<target>/, committed) are run
# too. A finding is saved under fuzz/artifacts/<target>/; replay it with
# `cargo +nightly fuzz run <target> <file>`. Logs: fuzz/logs/<target>.log.
# Exits non-zero when a target does not build or finds a crash.
#
# Environment: FUZZ_SANITIZER (default "none": the crate forbids unsafe
# code, so AddressSanitizer would only watch dependencies, at half the
# speed; "address" turns it on), FUZZ_JOBS (cargo build jobs).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

bash scripts/fuzz-seeds.sh >/dev/null

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }

echo "== building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
build=(cargo +nightly fuzz build --sanitizer "$sanitizer")
[ -n "${FUZZ_JOBS:-}" ] && build+=(--jobs "$FUZZ_JOBS")
(cd fuzz && "${build[@]}")

mkdir -p fuzz/logs
failed=()
printf '%-18s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for t in "${targets[@]}"; do
  log="fuzz/logs/$t.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  set +e
  # Findings fixed so far (fuzz/regressions/<target>/) are replayed first.
  dirs=("corpus/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("regressions/$t")
  (cd fuzz && cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "${dirs[@]}" -- \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
      -timeout=10 -max_len=65536) >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  stats=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$stats")
  corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$stats")
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result="FOUND (exit $rc): $(grep -m1 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" || echo "see $log")"
    failed+=("$t")
  fi
  printf '%-18s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "findings in: ${failed[*]} (inputs under fuzz/artifacts/, logs under fuzz/logs/)" >&2
  exit 1
fi
