#!/usr/bin/env bash
# Committed throughput of Tandem devnets (1 and 4 validators) beside anvil (automine), in one run.
#
# tandem-loadgen (tests/src/loadgen) funds many sender accounts, pre-signs EIP-1559 transfers (or
# ERC-20 transfers of contracts/bench/BenchToken.sol), posts them with eth_sendRawTransaction in
# JSON-RPC batches spread over the nodes, and tracks the commit tag's blocks: committed tx/s
# (first send -> last commit), send->commit latency p50/p95/p99, lost and rejected counts.
# Tandem counts `finalized` (HotStuff commit); anvil counts `latest` (automine has no finality).
#
# Usage: scripts/bench/throughput.sh
# Environment (defaults in brackets):
#   RUNS [3]             runs per case; the table shows the median run figures
#   TXS [20000]          transfers per run        ERC20_TXS [10000]  token transfers per run
#   ACCOUNTS [200]       sender accounts          RATE [2000]        rated 4-validator run (0: none)
#   WINDOW []            in-flight window for Tandem (default: the loadgen's, 40 per account)
#   ANVIL_WINDOW [1000]  in-flight window for anvil (it stalls with a few thousand outstanding)
#   CASES ["anvil tandem1 tandem4"]         BENCH_DIR [a new temp dir]   PORT_OFFSET [700]
#   ANVIL_PORT [18545]   ANVIL_BIN [found or installed from npm]     NO_BUILD [unset: build]
#   CARGO_TARGET_DIR [$HOME/.cache/tandem/target]
# Anvil is installed from npm (@foundry-rs/anvil-linux-amd64) under $HOME/.cache/tandem, never
# into the repository. Needs jq and curl.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
RUNS="${RUNS:-3}"
TXS="${TXS:-20000}"
ERC20_TXS="${ERC20_TXS:-10000}"
ACCOUNTS="${ACCOUNTS:-200}"
RATE="${RATE:-2000}"
WINDOW="${WINDOW:-}"
ANVIL_WINDOW="${ANVIL_WINDOW:-1000}"
CASES="${CASES:-anvil tandem1 tandem4}"
PORT_OFFSET="${PORT_OFFSET:-700}"
ANVIL_PORT="${ANVIL_PORT:-18545}"
TIMEOUT_SECS="${TIMEOUT_SECS:-60}"
OUT="${BENCH_DIR:-$(mktemp -d /tmp/tandem-throughput.XXXXXX)}"
mkdir -p "$OUT"

say() { printf '%s\n' "$*" >&2; }
die() { say "throughput: $*"; exit 1; }
for t in jq curl npm; do command -v "$t" >/dev/null 2>&1 || die "$t is required"; done

# --- anvil -------------------------------------------------------------------------------------
find_anvil() {
  if [ -n "${ANVIL_BIN:-}" ]; then printf '%s' "$ANVIL_BIN"; return; fi
  local c
  for c in "$CACHE/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" \
           "$CACHE/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"; do
    [ -x "$c" ] && { printf '%s' "$c"; return; }
  done
  command -v anvil 2>/dev/null || true
}
ANVIL="$(find_anvil)"
if [ -z "$ANVIL" ]; then
  say "==> installing anvil from npm into $CACHE/npm"
  mkdir -p "$CACHE/npm"
  npm install --no-save --prefix "$CACHE/npm" @foundry-rs/anvil-linux-amd64 >/dev/null
  ANVIL="$(find "$CACHE/npm/node_modules" -type f -name anvil -perm -u+x | head -n 1)"
  [ -n "$ANVIL" ] || die "anvil not found after npm install"
fi

# --- binaries ----------------------------------------------------------------------------------
if [ -z "${NO_BUILD:-}" ]; then
  say "==> building release binaries (target dir $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --release --bins >&2) || die "build failed"
fi
BIN="$CARGO_TARGET_DIR/release"
LOADGEN="$BIN/tandem-loadgen"
for b in tandem-el tandem-cl tandem-loadgen; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done

# --- clean-up ----------------------------------------------------------------------------------
ANVIL_PID=""
DEVNETS=()
cleanup() {
  if [ -n "$ANVIL_PID" ]; then kill "$ANVIL_PID" 2>/dev/null || true; wait "$ANVIL_PID" 2>/dev/null || true; fi
  local d
  for d in "${DEVNETS[@]}"; do "$ROOT/scripts/devnet" down --dir "$d" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT INT TERM

# CPU seconds (user + system) a process has used so far.
cpu_secs() {
  local tck; tck="$(getconf CLK_TCK)"
  awk -v t="$tck" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# run_case CASE LABEL URLS ARGS...: RUNS loadgen runs, one JSON report each.
run_case() {
  local case="$1" label="$2" urls="$3"; shift 3
  local i file
  echo "$case $label" >>"$OUT/cases"
  for i in $(seq 1 "$RUNS"); do
    file="$OUT/$case--$label--$i.json"
    say "==> $case $label run $i/$RUNS"
    if ! "$LOADGEN" --rpc "$urls" --accounts "$ACCOUNTS" --timeout-secs "$TIMEOUT_SECS" --json "$@" \
        >"$file" 2>"$OUT/$case--$label--$i.log"; then
      say "    run failed: $(tail -n 1 "$OUT/$case--$label--$i.log")"
      rm -f "$file"
      continue
    fi
    jq -r '"    \(.committed) committed, \(.committed_tps | floor) tx/s, p50 \(.latency_ms.p50 // 0 | floor) ms, lost \(.lost), rejected \(.rejected)"' "$file" >&2
  done
}

# Records the CPU seconds of the given "name=pid" processes over a case into OUT/CASE.cpu.
cpu_start() { CPU_T0="$(date +%s.%N)"; CPU_BEFORE=(); local p; for p in "$@"; do CPU_BEFORE+=("$p=$(cpu_secs "${p#*=}")"); done; }
cpu_stop() {
  local case="$1" p name pid before after wall line=""
  wall="$(echo "$(date +%s.%N) - $CPU_T0" | bc)"
  for p in "${CPU_BEFORE[@]}"; do
    name="${p%%=*}"; pid="$(echo "$p" | cut -d= -f2)"; before="${p##*=}"
    after="$(cpu_secs "$pid")"
    line+="$name $(printf '%.1f' "$(echo "$after - $before" | bc)") s, "
  done
  printf 'wall %.1f s; CPU: %s\n' "$wall" "${line%, }" >"$OUT/$case.cpu"
  say "    $(cat "$OUT/$case.cpu")"
}

case_anvil() {
  say "==> anvil $("$ANVIL" --version | head -n 1) (automine) on port $ANVIL_PORT"
  "$ANVIL" --port "$ANVIL_PORT" --balance 1000000 --silent >"$OUT/anvil.log" 2>&1 &
  ANVIL_PID=$!
  local url="http://127.0.0.1:$ANVIL_PORT" _
  for _ in $(seq 1 100); do
    curl -s -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$url" >/dev/null 2>&1 && break
    sleep 0.1
  done
  cpu_start "anvil=$ANVIL_PID"
  run_case anvil transfer "$url" --commit-tag latest --txs "$TXS" --window "$ANVIL_WINDOW"
  run_case anvil erc20 "$url" --commit-tag latest --txs "$ERC20_TXS" --workload erc20 --window "$ANVIL_WINDOW"
  cpu_stop anvil
  kill "$ANVIL_PID" 2>/dev/null || true; wait "$ANVIL_PID" 2>/dev/null || true; ANVIL_PID=""
}

case_tandem() {
  local n="$1" case="tandem$1" dir="$OUT/devnet-$1"
  DEVNETS+=("$dir")
  "$ROOT/scripts/devnet" reset --dir "$dir" >/dev/null 2>&1 || true
  say "==> $n-validator devnet in $dir"
  TANDEM_BIN_DIR="$BIN" "$ROOT/scripts/devnet" up --validators "$n" --dir "$dir" --no-build \
    --port-offset "$PORT_OFFSET" >"$OUT/$case-up.log" 2>&1 || { cat "$OUT/$case-up.log" >&2; die "devnet up failed"; }
  local urls; urls="$(jq -r '[.nodes[].ports.http | "http://127.0.0.1:\(.)"] | join(",")' "$dir/testnet.json")"
  local procs=() node el cl
  while read -r node el cl; do procs+=("$node-el=$el" "$node-cl=$cl"); done \
    < <("$ROOT/scripts/devnet" status --json --dir "$dir" | jq -r '.nodes[] | "\(.name) \(.el_pid) \(.cl_pid)"')
  local window=(); [ -n "$WINDOW" ] && window=(--window "$WINDOW")
  cpu_start "${procs[@]}"
  run_case "$case" transfer "$urls" --commit-tag finalized --txs "$TXS" "${window[@]}"
  if [ "$n" -gt 1 ] && [ "$RATE" != 0 ]; then
    run_case "$case" "transfer@$RATE" "$urls" --commit-tag finalized --txs "$TXS" --rate "$RATE" "${window[@]}"
  fi
  run_case "$case" erc20 "$urls" --commit-tag finalized --txs "$ERC20_TXS" --workload erc20 "${window[@]}"
  cpu_stop "$case"
  "$ROOT/scripts/devnet" down --dir "$dir" >/dev/null 2>&1 || true
}

command -v bc >/dev/null 2>&1 || die "bc is required"
say "results in $OUT"
rm -f "$OUT/cases"
for c in $CASES; do
  case "$c" in
    anvil) case_anvil ;;
    tandem*) case_tandem "${c#tandem}" ;;
    *) die "unknown case $c" ;;
  esac
done

# --- table -------------------------------------------------------------------------------------
# Median of a field over a case's runs (lower median for an even count); "-" without runs.
median() { # CASE LABEL JQ-PATH
  local files=("$OUT/$1--$2--"*.json)
  [ -e "${files[0]}" ] || { echo "-"; return; }
  jq -s "[.[] | $3 // empty] | sort | if length == 0 then \"-\" else .[(length - 1) / 2 | floor] end" "${files[@]}"
}
total() { # CASE LABEL FIELD
  local files=("$OUT/$1--$2--"*.json)
  [ -e "${files[0]}" ] || { echo "-"; return; }
  jq -s "[.[].$3] | add" "${files[@]}"
}
runs_list() {
  local files=("$OUT/$1--$2--"*.json)
  [ -e "${files[0]}" ] || { echo "none"; return; }
  jq -s -r '[.[].committed_tps | floor | tostring] | join(", ")' "${files[@]}"
}
fmt_int() { [ "$1" = "-" ] && echo "-" || printf '%.0f' "$1"; }

{
  echo
  echo "| target | workload | committed tx/s | p50 | p95 | p99 | lost | rejected | txs/block | vs anvil | runs (tx/s) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  while read -r c label; do
    tps="$(median "$c" "$label" .committed_tps)"
    base="${label%@*}"
    anvil="$(median anvil "$base" .committed_tps)"
    ratio="-"
    if [ "$tps" != "-" ] && [ "$anvil" != "-" ] && [ "$c" != anvil ]; then
      ratio="$(printf '%.2f×' "$(echo "$tps / $anvil" | bc -l)")"
    fi
    name="$c"; case "$c" in anvil) name="anvil (automine, latest)" ;; tandem*) name="Tandem ${c#tandem} validator(s), finalized" ;; esac
    printf '| %s | %s | **%s** | %s ms | %s ms | %s ms | %s | %s | %s | %s | %s |\n' \
      "$name" "$label" "$(fmt_int "$tps")" \
      "$(fmt_int "$(median "$c" "$label" .latency_ms.p50)")" \
      "$(fmt_int "$(median "$c" "$label" .latency_ms.p95)")" \
      "$(fmt_int "$(median "$c" "$label" .latency_ms.p99)")" \
      "$(total "$c" "$label" lost)" "$(total "$c" "$label" rejected)" \
      "$(fmt_int "$(median "$c" "$label" .avg_txs_per_block)")" "$ratio" "$(runs_list "$c" "$label")"
  done <"$OUT/cases"
  echo
  echo "Each cell is the median of the runs' figures ($RUNS runs of $TXS transfers / $ERC20_TXS token transfers, $ACCOUNTS senders); lost and rejected are totals over the runs."
  for c in $CASES; do [ -f "$OUT/$c.cpu" ] && echo "- $c: $(cat "$OUT/$c.cpu")"; done
} | tee "$OUT/table.md"
say "reports: $OUT"
