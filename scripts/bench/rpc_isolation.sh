#!/usr/bin/env bash
# Engine API cycle latency of a real `tandem-el node --dev`, quiet and under a flood of 200
# concurrent eth_estimateGas (see execution-client/benches/rpc_isolation.rs).
# Usage: scripts/bench/rpc_isolation.sh [runs]   (env: TANDEM_BENCH_CYCLES, TANDEM_BENCH_FLOOD)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TANDEM_CACHE:-$HOME/.cache/tandem}/target}"
runs="${1:-1}"
cargo bench -p tandem-el --bench rpc_isolation --no-run
for run in $(seq 1 "$runs"); do
  echo "run $run/$runs"
  cargo bench -p tandem-el --bench rpc_isolation 2>/dev/null
done
