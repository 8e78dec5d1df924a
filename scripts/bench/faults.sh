#!/usr/bin/env bash
# Committed throughput and send->finalized latency of a 4-validator network under packet loss
# and network latency, beside the same network without faults, in one run.
#
# Each validator pair runs in its own network namespace (tandem-faultbench, tests/src/netns.rs);
# loss is an nftables `numgen random` drop on every link between nodes, latency a
# tandem-delayer in each namespace that relays the nodes' TCP connections to each other with
# every chunk late by the delay, each way. Runs alternate the cases (CASES), RUNS runs each,
# each run on a fresh network; the table shows per-case medians.
#
# A case is `none`, `loss:P` (P % of packets dropped), `delay:MS` (MS ms each way) or both
# joined by `+` (`loss:2+delay:50`).
#
# Usage: sudo scripts/bench/faults.sh        (root: namespaces and nftables)
# Environment (defaults in brackets):
#   RUNS [3]        runs per case            CASES ["none loss:2 delay:50 loss:2+delay:50"]
#   RATE [2500]     offered transfers/s      TXS [10000]      transfers per run
#   PROFILE [release]  release or debug binaries  NO_BUILD [unset: build]
#   CARGO_TARGET_DIR [$HOME/.cache/tandem/target]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tandem/target}"
RUNS="${RUNS:-3}"
CASES="${CASES:-none loss:2 delay:50 loss:2+delay:50}"
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
for b in tandem-el tandem-cl tandem-faultbench tandem-delayer; do
  [ -x "$BIN/$b" ] || { say "$BIN/$b is missing"; exit 1; }
done

# The tandem-faultbench flags of a case.
case_args() {
  local part args=()
  IFS=+ read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    case "$part" in
      none) ;;
      loss:*) args+=(--loss "${part#loss:}") ;;
      delay:*) args+=(--delay "${part#delay:}ms") ;;
      *) say "unknown case part '$part' (none, loss:P, delay:MS)"; exit 1 ;;
    esac
  done
  [[ " ${args[*]} " == *" --loss "* ]] || args+=(--loss 0)
  printf '%s\n' "${args[@]}"
}
# A file name for a case.
slug() { printf '%s' "$1" | tr ':+' '-_'; }
# How a case reads in the table.
label() {
  local l="$1"
  l="${l//none/no fault}"; l="${l//+/, }"
  l="$(sed -E 's/loss:([0-9.]+)/\1 % loss/g; s/delay:([0-9.]+)/\1 ms each way/g' <<<"$l")"
  printf '%s' "$l"
}

for c in $CASES; do case_args "$c" >/dev/null; done
say "results in $OUT ($PROFILE binaries)"
for i in $(seq 1 "$RUNS"); do
  for c in $CASES; do
    s="$(slug "$c")"
    mapfile -t args < <(case_args "$c")
    say "==> $(label "$c") run $i/$RUNS"
    "$BIN/tandem-faultbench" "${args[@]}" --rate "$RATE" --txs "$TXS" \
      >"$OUT/$s-$i.json" 2>"$OUT/$s-$i.log" || { say "    run failed, see $OUT/$s-$i.log"; rm -f "$OUT/$s-$i.json"; continue; }
    jq -r '"    \(.committed) committed, \(.committed_tps | floor) tx/s, p50 \(.latency_ms.p50 | floor) ms, p99 \(.latency_ms.p99 | floor) ms, \(.finalized_blocks_per_sec * 10 | floor / 10) blocks/s, lost \(.lost)"' "$OUT/$s-$i.json" >&2
  done
done

median() { # SLUG JQ-PATH
  jq -s "[.[] | $2] | sort | .[(length - 1) / 2 | floor]" "$OUT/$1-"*.json
}
printf '| case | committed tx/s | p50 | p99 | finalized blocks/s | lost | runs (tx/s; p50 ms; blocks/s) |\n|---|---|---|---|---|---|---|\n'
for c in $CASES; do
  s="$(slug "$c")"
  ls "$OUT/$s-"*.json >/dev/null 2>&1 || continue
  runs=$(jq -s -r '[.[] | "\(.committed_tps | floor); \(.latency_ms.p50 | floor); \(.finalized_blocks_per_sec * 10 | floor / 10)"] | join(" / ")' "$OUT/$s-"*.json)
  lost=$(jq -s '[.[].lost] | add' "$OUT/$s-"*.json)
  printf '| %s | **%.0f** | %.0f ms | %.0f ms | %.1f | %s | %s |\n' "$(label "$c")" \
    "$(median "$s" .committed_tps)" "$(median "$s" .latency_ms.p50)" \
    "$(median "$s" .latency_ms.p99)" "$(median "$s" .finalized_blocks_per_sec)" "$lost" "$runs"
done
