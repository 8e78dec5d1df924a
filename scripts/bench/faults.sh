#!/usr/bin/env bash
# Committed throughput and send->finalized latency of a 4-validator network under packet loss,
# beside the same network without loss, in one run.
#
# Each validator pair runs in its own network namespace (tandem-faultbench, tests/src/netns.rs);
# loss is an nftables `numgen random` drop on every link between nodes. Runs alternate the
# cases (LOSSES), RUNS runs each, each run on a fresh network; the table shows per-case medians.
#
# Usage: sudo scripts/bench/faults.sh        (root: namespaces and nftables)
# Environment (defaults in brackets):
#   RUNS [3]        runs per case            LOSSES ["0 2"]   loss percents to compare
#   RATE [2500]     offered transfers/s      TXS [10000]      transfers per run
#   PROFILE [release]  release or debug binaries  NO_BUILD [unset: build]
#   CARGO_TARGET_DIR [$HOME/.cache/tandem/target]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
RUNS="${RUNS:-3}"
LOSSES="${LOSSES:-0 2}"
RATE="${RATE:-2500}"
TXS="${TXS:-10000}"
PROFILE="${PROFILE:-release}"
OUT="$(mktemp -d /tmp/tandem-faults.XXXXXX)"

say() { printf '%s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { say "faults: needs root (network namespaces, nftables)"; exit 1; }
"$ROOT/scripts/install-deps"
command -v jq >/dev/null 2>&1 || { apt-get install -y -qq jq >/dev/null; }
if [ -z "${NO_BUILD:-}" ]; then
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  (cd "$ROOT" && cargo build "${flag[@]}" --bins)
fi
BIN="$CARGO_TARGET_DIR/$PROFILE"
for b in tandem-el tandem-cl tandem-faultbench; do [ -x "$BIN/$b" ] || { say "$BIN/$b is missing"; exit 1; }; done

say "results in $OUT ($PROFILE binaries)"
for i in $(seq 1 "$RUNS"); do
  for loss in $LOSSES; do
    say "==> loss $loss % run $i/$RUNS"
    "$BIN/tandem-faultbench" --loss "$loss" --rate "$RATE" --txs "$TXS" \
      >"$OUT/loss$loss-$i.json" 2>"$OUT/loss$loss-$i.log" || { say "    run failed, see $OUT/loss$loss-$i.log"; continue; }
    jq -r '"    \(.committed) committed, \(.committed_tps | floor) tx/s, p50 \(.latency_ms.p50 | floor) ms, p99 \(.latency_ms.p99 | floor) ms, \(.finalized_blocks_per_sec * 10 | floor / 10) blocks/s, lost \(.lost)"' "$OUT/loss$loss-$i.json" >&2
  done
done

median() { # LOSS JQ-PATH
  jq -s "[.[] | $2] | sort | .[(length - 1) / 2 | floor]" "$OUT/loss$1-"*.json
}
printf '| loss | committed tx/s | p50 | p99 | finalized blocks/s | lost | runs (tx/s) |\n|---|---|---|---|---|---|---|\n'
for loss in $LOSSES; do
  ls "$OUT/loss$loss-"*.json >/dev/null 2>&1 || continue
  runs=$(jq -s -r '[.[].committed_tps | floor | tostring] | join(", ")' "$OUT/loss$loss-"*.json)
  lost=$(jq -s '[.[].lost] | add' "$OUT/loss$loss-"*.json)
  printf '| %s %% | **%.0f** | %.0f ms | %.0f ms | %.1f | %s | %s |\n' "$loss" \
    "$(median "$loss" .committed_tps)" "$(median "$loss" .latency_ms.p50)" \
    "$(median "$loss" .latency_ms.p99)" "$(median "$loss" .finalized_blocks_per_sec)" "$lost" "$runs"
done
