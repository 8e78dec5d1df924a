#!/usr/bin/env bash
# Orders/s of the native L1 exchange through transactions on a 4-validator devnet, beside plain
# transfers on the same kind of devnet in the same run (the reference; anvil has no L1).
#
# tandem-loadgen (tests/src/loadgen) funds sender accounts from dev account 0; for `l1-orders`
# each sender also gets TUSD, approves and deposits it into the L1 write contract and deposits
# ether (not timed), then sends pre-signed `placeOrder` transactions (GTC, ETH/TUSD spot, buys and
# sells alternating within 3 ticks of a 3,000 TUSD mid) in JSON-RPC batches spread over the nodes,
# and tracks the `finalized` blocks: committed orders/s (first send -> last commit), send->commit
# latency p50/p95/p99, lost and rejected counts; afterwards the committed orders' receipts give the
# reverted count (a reverted order is still included), gas per order and the fills made.
# Every run gets a fresh devnet (`scripts/devnet up`, which enables the L1 by default) from an
# empty directory; runs interleave the two workloads; the table shows medians and the ratio.
#
# Usage: scripts/bench/l1.sh
# Environment (defaults in brackets):
#   RUNS [3]            runs per workload        ORDERS [10000]   orders per run
#   TXS [20000]         transfers per run        ACCOUNTS [200]   sender accounts
#   VALIDATORS [4]      devnet size              PORT_OFFSET [9000]
#   FEE_CAP [1000]      fee cap as a multiple of the starting base fee (full blocks raise the
#                       base fee 12.5 % each; a low cap strands the rest of a long run)
#   WORKLOADS ["transfer l1-orders"]   BENCH_DIR [a new temp dir under /tmp]   NO_BUILD [unset]
#   TIMEOUT_SECS [60]   how long a run waits for commits after its last send (then: lost)
#   CARGO_TARGET_DIR [$HOME/.cache/tandem/target]
# Needs jq, curl and bc.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
RUNS="${RUNS:-3}"
ORDERS="${ORDERS:-10000}"
TXS="${TXS:-20000}"
ACCOUNTS="${ACCOUNTS:-200}"
VALIDATORS="${VALIDATORS:-4}"
PORT_OFFSET="${PORT_OFFSET:-9000}"
FEE_CAP="${FEE_CAP:-1000}"
WORKLOADS="${WORKLOADS:-transfer l1-orders}"
TIMEOUT_SECS="${TIMEOUT_SECS:-60}"
OUT="${BENCH_DIR:-$(mktemp -d /tmp/tandem-l1-bench.XXXXXX)}"
mkdir -p "$OUT"

say() { printf '%s\n' "$*" >&2; }
die() { say "l1: $*"; exit 1; }
for t in jq curl bc; do command -v "$t" >/dev/null 2>&1 || die "$t is required"; done

# --- binaries ----------------------------------------------------------------------------------
if [ -z "${NO_BUILD:-}" ]; then
  say "==> building release binaries (target dir $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release --bins >&2) || die "build failed"
fi
BIN="$CARGO_TARGET_DIR/release"
LOADGEN="$BIN/tandem-loadgen"
for b in tandem-el tandem-cl tandem-loadgen; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done

# --- devnet ------------------------------------------------------------------------------------
DEVNET="$OUT/devnet"
cleanup() { "$ROOT/scripts/devnet" down --dir "$DEVNET" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  local tck; tck="$(getconf CLK_TCK)"
  awk -v t="$tck" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Starts a fresh devnet; sets URLS and PROCS ("name=pid").
start_devnet() {
  local offset="$PORT_OFFSET" attempt node el cl
  URLS=""; PROCS=()
  # Other sessions on the machine may hold a port: try a few offsets.
  for attempt in 1 2 3 4; do
    "$ROOT/scripts/devnet" reset --dir "$DEVNET" >/dev/null 2>&1 || true
    if TANDEM_BIN_DIR="$BIN" "$ROOT/scripts/devnet" up --validators "$VALIDATORS" --dir "$DEVNET" \
        --no-build --port-offset "$offset" >"$OUT/up.log" 2>&1; then
      break
    fi
    grep -q 'already in use' "$OUT/up.log" && [ "$attempt" -lt 4 ] || { cat "$OUT/up.log" >&2; die "devnet up failed"; }
    offset=$((offset + 37))
  done
  jq -e '.config.tandem.l1' "$DEVNET/el-genesis.json" >/dev/null || die "the devnet has no L1 (config.tandem.l1)"
  URLS="$(jq -r '[.nodes[].ports.http | "http://127.0.0.1:\(.)"] | join(",")' "$DEVNET/testnet.json")"
  while read -r node el cl; do PROCS+=("$node-el=$el" "$node-cl=$cl"); done \
    < <("$ROOT/scripts/devnet" status --json --dir "$DEVNET" | jq -r '.nodes[] | "\(.name) \(.el_pid) \(.cl_pid)"')
}

# Stops the devnet; its logs are kept (in OUT/logs-RUN) when the run lost or failed.
stop_devnet() { # RUN KEEP_LOGS
  "$ROOT/scripts/devnet" down --dir "$DEVNET" >/dev/null 2>&1 || true
  if [ "$2" = 1 ]; then cp -r "$DEVNET/logs" "$OUT/logs-$1" 2>/dev/null || true; fi
  "$ROOT/scripts/devnet" reset --dir "$DEVNET" >/dev/null 2>&1 || true
}

workload_args() { # WORKLOAD
  case "$1" in
    transfer) echo "--txs $TXS" ;;
    l1-orders) echo "--txs $ORDERS --workload l1-orders" ;;
    *) die "unknown workload $1" ;;
  esac
}

# One run on a fresh devnet: OUT/WORKLOAD--I.{json,log,cpu}.
run_one() { # WORKLOAD I
  local run="$1--$2" keep=0 t0 before=() p wall line=""
  say "==> $1 run $2/$RUNS"
  start_devnet
  t0="$(date +%s.%N)"
  for p in "${PROCS[@]}"; do before+=("$p=$(cpu_secs "${p#*=}")"); done
  # shellcheck disable=SC2046 # workload_args is a list of words
  if "$LOADGEN" --rpc "$URLS" --accounts "$ACCOUNTS" --timeout-secs "$TIMEOUT_SECS" --json \
      --commit-tag finalized --fee-cap-multiplier "$FEE_CAP" $(workload_args "$1") \
      >"$OUT/$run.json" 2>"$OUT/$run.log"; then
    jq -r '"    \(.committed) committed, \(.committed_tps | floor) tx/s, p50 \(.latency_ms.p50 // 0 | floor) ms, lost \(.lost), rejected \(.rejected)\(if .receipts then ", reverted \(.receipts.reverted), \(.receipts.avg_gas_used | floor) gas/order, \(.receipts.l1_fills) fills" else "" end)"' "$OUT/$run.json" >&2
    [ "$(jq .lost "$OUT/$run.json")" = 0 ] || keep=1
  else
    say "    run failed: $(grep -m1 '^Error' "$OUT/$run.log" || tail -n 1 "$OUT/$run.log")"
    rm -f "$OUT/$run.json"
    keep=1
  fi
  wall="$(echo "$(date +%s.%N) - $t0" | bc)"
  for p in "${before[@]}"; do
    local name="${p%%=*}" pid before_cpu="${p##*=}"
    pid="$(echo "$p" | cut -d= -f2)"
    line+="$name $(printf '%.1f' "$(echo "$(cpu_secs "$pid") - $before_cpu" | bc)") s, "
  done
  printf 'wall %.1f s (set-up included); CPU: %s\n' "$wall" "${line%, }" >"$OUT/$run.cpu"
  say "    $(cat "$OUT/$run.cpu")"
  stop_devnet "$run" "$keep"
}

say "results in $OUT ($VALIDATORS validators, port offset $PORT_OFFSET)"
# Runs interleave the workloads, so a busy moment of the shared machine does not hit one only.
for i in $(seq 1 "$RUNS"); do
  for w in $WORKLOADS; do run_one "$w" "$i"; done
done

# --- table -------------------------------------------------------------------------------------
# Median of a field over a workload's runs (lower median for an even count); "-" without runs.
median() { # WORKLOAD JQ-PATH
  local files=("$OUT/$1--"*.json)
  [ -e "${files[0]}" ] || { echo "-"; return; }
  jq -s "[.[] | $2 // empty] | sort | if length == 0 then \"-\" else .[(length - 1) / 2 | floor] end" "${files[@]}"
}
total() { # WORKLOAD JQ-PATH
  local files=("$OUT/$1--"*.json)
  [ -e "${files[0]}" ] || { echo "-"; return; }
  jq -s "[.[] | $2 // 0] | add" "${files[@]}"
}
runs_list() {
  local files=("$OUT/$1--"*.json)
  [ -e "${files[0]}" ] || { echo "none"; return; }
  jq -s -r '[.[].committed_tps | floor | tostring] | join(", ")' "${files[@]}"
}
fmt_int() { [ "$1" = "-" ] && echo "-" || printf '%.0f' "$1"; }

{
  reference="$(median transfer .committed_tps)"
  echo
  echo "| workload ($VALIDATORS validators, finalized) | committed tx/s | p50 | p95 | p99 | lost | rejected | reverted | txs/block | gas/tx | Mgas/s | L1 fills | vs transfer | runs (tx/s) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for w in $WORKLOADS; do
    tps="$(median "$w" .committed_tps)"
    gas="$(median "$w" '(.receipts.avg_gas_used // (if .run.workload == "transfer" then 21000 else null end))')"
    mgas="-"; [ "$tps" != "-" ] && [ "$gas" != "-" ] && mgas="$(printf '%.1f' "$(echo "$tps * $gas / 1000000" | bc -l)")"
    ratio="-"
    if [ "$tps" != "-" ] && [ "$reference" != "-" ]; then
      ratio="$(printf '%.2f×' "$(echo "$tps / $reference" | bc -l)")"
    fi
    reverted="-"; fills="-"
    if [ "$w" = l1-orders ]; then reverted="$(total "$w" .receipts.reverted)"; fills="$(fmt_int "$(median "$w" .receipts.l1_fills)")"; fi
    printf '| %s | **%s** | %s ms | %s ms | %s ms | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
      "$w" "$(fmt_int "$tps")" \
      "$(fmt_int "$(median "$w" .latency_ms.p50)")" \
      "$(fmt_int "$(median "$w" .latency_ms.p95)")" \
      "$(fmt_int "$(median "$w" .latency_ms.p99)")" \
      "$(total "$w" .lost)" "$(total "$w" .rejected)" "$reverted" \
      "$(fmt_int "$(median "$w" .avg_txs_per_block)")" "$(fmt_int "$gas")" "$mgas" "$fills" \
      "$ratio" "$(runs_list "$w")"
  done
  echo
  echo "Each cell is the median of the runs' figures ($RUNS runs: $ORDERS orders / $TXS transfers, $ACCOUNTS senders, fee cap ${FEE_CAP}× the starting base fee); lost, rejected and reverted are totals over the runs; L1 fills per run."
  echo
  echo "CPU seconds per process during run 1 (both cores are shared by everything):"
  for w in $WORKLOADS; do [ -f "$OUT/$w--1.cpu" ] && echo "- $w: $(cat "$OUT/$w--1.cpu")"; done
} | tee "$OUT/table.md"
say "reports: $OUT"
