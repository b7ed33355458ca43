#!/usr/bin/env bash
# API benchmark: builds the release binary and the bench_api example, then
# starts a throw-away `kone server` on 127.0.0.1 and measures creates/s and
# latency, watch delivery latency, LIST of 10,000 objects, store size after
# compaction and server RSS. The last line of output is machine-readable.
#
#   scripts/bench-api.sh            full run (a few minutes)
#   scripts/bench-api.sh --quick    10x smaller counts (smoke run)
#   scripts/bench-api.sh --keep     keep the data dir (server.log, database)
#
# Extra arguments are passed to the bench_api example (`--only patches`:
# just the patch phase).
# Env: KONE=path to a kone binary (default: cargo build --release, then
#      target/release/kone). With KONE set the client is built with the
#      profiling profile (release code generation, quick to rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${KONE:-}" ]; then
    cargo build --profile profiling --example bench_api
    exec target/profiling/examples/bench_api --kone "$KONE" "$@"
fi
cargo build --release --bin kone --example bench_api
exec target/release/examples/bench_api --kone target/release/kone "$@"
