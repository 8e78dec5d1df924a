#!/usr/bin/env bash
# JSON-RPC throughput of tandem-el beside anvil, in one run (see execution-client/benches/rpc.rs).
# Installs anvil from npm under a cache directory (never into the repository).
# Usage: scripts/bench/rpc.sh   (env: TANDEM_BENCH_TXS, TANDEM_BENCH_READS,
#                                TANDEM_BENCH_CONCURRENCY, TANDEM_BENCH_SENDERS)
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
ANVIL_DIR="$CACHE/anvil"
ANVIL_BIN="$ANVIL_DIR/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
if [ ! -x "$ANVIL_BIN" ]; then
  mkdir -p "$ANVIL_DIR"
  npm i --no-save --prefix "$ANVIL_DIR" @foundry-rs/anvil-linux-amd64 >/dev/null
fi
"$ANVIL_BIN" --version
export ANVIL_BIN
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
cargo bench -p tandem-el --bench rpc
