#!/usr/bin/env bash
# Committed throughput of Tandem devnets (1 and 4 validators) beside anvil (automine), in one run.
#
# tandem-loadgen (tests/src/loadgen) funds many sender accounts, pre-signs EIP-1559 transfers (or
# ERC-20 transfers of contracts/bench/BenchToken.sol), posts them with eth_sendRawTransaction in
# JSON-RPC batches spread over the nodes, and tracks the commit tag's blocks: committed tx/s
# (first send -> last commit), send->commit latency p50/p95/p99, lost and rejected counts.
# Tandem counts `finalized` (HotStuff commit); anvil counts `latest` (automine has no finality).
# Every run gets a fresh target (a new anvil process, a new devnet from an empty directory), and
# runs interleave the cases; the table shows per-case medians and ratios to anvil.
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
#   TIMEOUT_SECS [30]    how long a run waits for commits after its last send (then: lost)
#   CARGO_TARGET_DIR [$HOME/.cache/tandem/target]
# Anvil is installed from npm (@foundry-rs/anvil-linux-amd64) under $HOME/.cache/tandem, never
# into the repository. Needs jq, curl and bc.
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
TIMEOUT_SECS="${TIMEOUT_SECS:-30}"
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

# Records the CPU seconds of the given "name=pid" processes over a run.
cpu_start() { CPU_T0="$(date +%s.%N)"; CPU_BEFORE=(); local p; for p in "$@"; do CPU_BEFORE+=("$p=$(cpu_secs "${p#*=}")"); done; }
cpu_stop() { # FILE
  local p name pid before after wall line=""
  wall="$(echo "$(date +%s.%N) - $CPU_T0" | bc)"
  for p in "${CPU_BEFORE[@]}"; do
    name="${p%%=*}"; pid="$(echo "$p" | cut -d= -f2)"; before="${p##*=}"
    after="$(cpu_secs "$pid")"
    line+="$name $(printf '%.1f' "$(echo "$after - $before" | bc)") s, "
  done
  printf 'wall %.1f s; CPU: %s\n' "$wall" "${line%, }" >"$1"
}

# Starts a fresh target (a new anvil, or a new devnet from an empty dir); sets URLS and PROCS.
start_target() { # CASE
  URLS=""; PROCS=()
  case "$1" in
    anvil)
      "$ANVIL" --port "$ANVIL_PORT" --balance 1000000 --silent >>"$OUT/anvil.log" 2>&1 &
      ANVIL_PID=$!
      URLS="http://127.0.0.1:$ANVIL_PORT"
      local _
      for _ in $(seq 1 100); do
        curl -s -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$URLS" >/dev/null 2>&1 && break
        sleep 0.1
      done
      PROCS=("anvil=$ANVIL_PID")
      ;;
    tandem*)
      local n="${1#tandem}" dir="$OUT/devnet-${1#tandem}" offset="$PORT_OFFSET" attempt
      DEVNETS+=("$dir")
      # Other sessions on the machine may hold a port: try a few offsets.
      for attempt in 1 2 3 4; do
        "$ROOT/scripts/devnet" reset --dir "$dir" >/dev/null 2>&1 || true
        if TANDEM_BIN_DIR="$BIN" "$ROOT/scripts/devnet" up --validators "$n" --dir "$dir" --no-build \
            --port-offset "$offset" >"$OUT/$1-up.log" 2>&1; then
          break
        fi
        grep -q 'already in use' "$OUT/$1-up.log" && [ "$attempt" -lt 4 ] || { cat "$OUT/$1-up.log" >&2; die "devnet up failed"; }
        offset=$((offset + 37))
      done
      URLS="$(jq -r '[.nodes[].ports.http | "http://127.0.0.1:\(.)"] | join(",")' "$dir/testnet.json")"
      local node el cl
      while read -r node el cl; do PROCS+=("$node-el=$el" "$node-cl=$cl"); done \
        < <("$ROOT/scripts/devnet" status --json --dir "$dir" | jq -r '.nodes[] | "\(.name) \(.el_pid) \(.cl_pid)"')
      ;;
  esac
}

# Stops the target; a devnet's logs are kept (in OUT/logs-RUN) when the run lost or failed.
stop_target() { # CASE RUN KEEP_LOGS
  case "$1" in
    anvil) kill "$ANVIL_PID" 2>/dev/null || true; wait "$ANVIL_PID" 2>/dev/null || true; ANVIL_PID="" ;;
    tandem*)
      local dir="$OUT/devnet-${1#tandem}"
      "$ROOT/scripts/devnet" down --dir "$dir" >/dev/null 2>&1 || true
      if [ "$3" = 1 ]; then cp -r "$dir/logs" "$OUT/logs-$2" 2>/dev/null || true; fi
      "$ROOT/scripts/devnet" reset --dir "$dir" >/dev/null 2>&1 || true
      ;;
  esac
}

# The loadgen arguments of a case's workload label.
workload_args() { # CASE LABEL
  local tag=(--commit-tag finalized) window=()
  [ -n "$WINDOW" ] && window=(--window "$WINDOW")
  if [ "$1" = anvil ]; then tag=(--commit-tag latest); window=(--window "$ANVIL_WINDOW"); fi
  case "$2" in
    transfer) echo "${tag[*]} ${window[*]} --txs $TXS" ;;
    transfer@*) echo "${tag[*]} ${window[*]} --txs $TXS --rate ${2#transfer@}" ;;
    erc20) echo "${tag[*]} ${window[*]} --txs $ERC20_TXS --workload erc20" ;;
  esac
}

# One run on a fresh target: OUT/CASE--LABEL--I.{json,log,cpu}.
run_one() { # CASE LABEL I
  local case="$1" label="$2" i="$3" run="$1--$2--$3" keep=0
  say "==> $case $label run $i/$RUNS"
  start_target "$case"
  cpu_start "${PROCS[@]}"
  # shellcheck disable=SC2046 # workload_args is a list of words
  if "$LOADGEN" --rpc "$URLS" --accounts "$ACCOUNTS" --timeout-secs "$TIMEOUT_SECS" --json \
      $(workload_args "$case" "$label") >"$OUT/$run.json" 2>"$OUT/$run.log"; then
    jq -r '"    \(.committed) committed, \(.committed_tps | floor) tx/s, p50 \(.latency_ms.p50 // 0 | floor) ms, lost \(.lost), rejected \(.rejected)"' "$OUT/$run.json" >&2
    [ "$(jq .lost "$OUT/$run.json")" = 0 ] || keep=1
  else
    say "    run failed: $(grep -m1 '^Error' "$OUT/$run.log" || tail -n 1 "$OUT/$run.log")"
    rm -f "$OUT/$run.json"
    keep=1
  fi
  cpu_stop "$OUT/$run.cpu"
  say "    $(cat "$OUT/$run.cpu")"
  stop_target "$case" "$run" "$keep"
}

command -v bc >/dev/null 2>&1 || die "bc is required"
say "results in $OUT (anvil: $("$ANVIL" --version | head -n 1))"
: >"$OUT/cases"
for c in $CASES; do
  case "$c" in
    anvil) labels="transfer erc20" ;;
    tandem1) labels="transfer erc20" ;;
    tandem*) labels="transfer erc20"; [ "$RATE" != 0 ] && labels="transfer transfer@$RATE erc20" ;;
    *) die "unknown case $c" ;;
  esac
  for l in $labels; do echo "$c $l" >>"$OUT/cases"; done
done
# Runs interleave the cases, so a busy moment of the shared machine does not hit one case only.
for i in $(seq 1 "$RUNS"); do
  while read -r c l; do run_one "$c" "$l" "$i"; done <"$OUT/cases"
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
  echo
  echo "CPU seconds per process during run 1 of each case (both cores are shared by everything):"
  while read -r c l; do [ -f "$OUT/$c--$l--1.cpu" ] && echo "- $c $l: $(cat "$OUT/$c--$l--1.cpu")"; done <"$OUT/cases"
} | tee "$OUT/table.md"
say "reports: $OUT"
