#!/usr/bin/env bash
# Every criterion bench of two revisions, interleaved on this machine, so a
# refactor can show it changed no figure.
#
#   scripts/bench-ab.sh BASE_REV [ROUNDS]
#
# Builds the benches of BASE_REV (a git worktree under target/bench-ab/base,
# its own target dir) and of the working tree, then runs them in ABBA order
# (round 1: base then head; round 2: head then base; ...), each bench binary
# with a short criterion run. A shared, noisy VM drifts by tens of percent
# over minutes; interleaving makes the drift hit both sides alike, where a
# `--save-baseline` run now and a `--baseline` run later would not.
#
# Prints one row per bench: base and head mean (the median over rounds) and
# head/base per round. Knobs (environment): WARM (1) MEASURE (2) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${1:?usage: scripts/bench-ab.sh BASE_REV [ROUNDS]}
ROUNDS=${2:-2}
WARM=${WARM:-1}
MEASURE=${MEASURE:-2}
root=$PWD/target/bench-ab
mkdir -p "$root"

base_tree=$root/base
if [ -d "$base_tree" ]; then
  git -C "$base_tree" checkout -q --detach "$BASE"
else
  git worktree add -q --detach "$base_tree" "$BASE"
fi

# bins DIR TARGET: "name path" of every bench executable of the tree in DIR.
bins() {
  (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --locked --no-run --message-format=json 2>/dev/null) |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and "bench" in t.get("kind", []) and m.get("executable"):
        print(t["name"], m["executable"])'
}
echo "== building base ($BASE) and head benches" >&2
bins "$base_tree" "$root/target-base" >"$root/base.bins"
bins "$PWD" "${CARGO_TARGET_DIR:-$PWD/target}" >"$root/head.bins"
[ -s "$root/base.bins" ] && [ -s "$root/head.bins" ] || { echo "bench-ab: no bench executables" >&2; exit 1; }

run_side() { # SIDE ROUND
  local name exe
  while read -r name exe; do
    echo "== round $2, $1: $name" >&2
    CRITERION_HOME=$root/crit/$1-$2 "$exe" --bench --warm-up-time "$WARM" \
      --measurement-time "$MEASURE" --noplot >/dev/null
  done <"$root/$1.bins"
}
rm -rf "$root/crit"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run_side base "$round"; run_side head "$round"
  else run_side head "$round"; run_side base "$round"; fi
done

python3 - "$root/crit" "$ROUNDS" <<'PY'
import json, os, statistics, sys
crit, rounds = sys.argv[1], int(sys.argv[2])
def means(side, r):
    out, top = {}, os.path.join(crit, f"{side}-{r}")
    for d, _, files in os.walk(top):
        if d.endswith("/new") and "estimates.json" in files:
            with open(os.path.join(d, "estimates.json")) as f:
                out[os.path.relpath(os.path.dirname(d), top)] = json.load(f)["mean"]["point_estimate"]
    return out
base = [means("base", r) for r in range(1, rounds + 1)]
head = [means("head", r) for r in range(1, rounds + 1)]
def fmt(ns):
    return f"{ns / 1e3:.1f} µs" if ns >= 1e3 else f"{ns:.1f} ns"
print("| bench | base | head | head/base per round |")
print("|---|---|---|---|")
for name in sorted(set(base[0]) & set(head[0])):
    b = statistics.median(x[name] for x in base if name in x)
    h = statistics.median(x[name] for x in head if name in x)
    per = " ".join(f"{hd[name] / bs[name]:.2f}" for bs, hd in zip(base, head) if name in bs and name in hd)
    print(f"| {name} | {fmt(b)} | {fmt(h)} | {per} |")
PY
