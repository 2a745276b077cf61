#!/usr/bin/env bash
# Ferry's benchmark, one command: baseline (direct AMQP RPC) vs Ferry, side by side in one run.
#
#   scripts/bench.sh           full run (release build, 3 rounds, 10,000 connections); rewrites
#                              the generated part of docs/benchmarks.md and docs/bench-concurrency.svg
#   scripts/bench.sh --smoke   a few seconds (debug build, 1 short round, 200 connections, a
#                              storm of 50 sessions) so CI keeps the harness working; writes
#                              only target/ferry-bench/smoke.json
#
# Needs RabbitMQ on 127.0.0.1:5672 (guest/guest; FERRY_AMQP_URL overrides) and, for the
# real-client row, the npm package built (`npm run build`) with `ws` installed.
# Extra arguments go to `ferry-bench run` (see `ferry-bench run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
if [[ "${1:-}" == "--smoke" ]]; then
  mode=smoke
  shift
fi

# 10,000 sockets on each side: raise the open-files limit to the hard limit (children inherit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "bench: RabbitMQ is not listening on 127.0.0.1:5672 (start it: rabbitmq-server -detached)" >&2
  exit 1
fi

TARGET_DIR=${CARGO_TARGET_DIR:-target}

if [[ "$mode" == smoke ]]; then
  # Built as `cargo test` builds (dev-dependencies' features included), so after the test
  # suite this reuses its dependencies instead of recompiling them under other features.
  cargo build -q --workspace --all-targets
  "$TARGET_DIR/debug/ferry-bench" run --smoke \
    --bridge "$TARGET_DIR/debug/ferry-bridge" \
    --json "$TARGET_DIR/ferry-bench/smoke.json" \
    --command "scripts/bench.sh --smoke" "$@"
  # The reconnect storm, small: 50 resumable sessions move to a second bridge.
  exec "$TARGET_DIR/debug/ferry-bench" storm --sessions 50 --arrive-ms 200 \
    --bridge "$TARGET_DIR/debug/ferry-bridge"
fi

cargo build -q --release -p ferry-bench -p ferry-bridge
if [[ ! -f dist/index.js && -f package.json ]] && command -v npm >/dev/null; then
  npm run build >&2 || echo "bench: npm run build failed; the real-client row will be missing" >&2
fi
exec "$TARGET_DIR/release/ferry-bench" run \
  --bridge "$TARGET_DIR/release/ferry-bridge" \
  --doc docs/benchmarks.md \
  --plot docs/bench-concurrency.svg \
  --latency-plot docs/bench-latency.svg \
  --json "$TARGET_DIR/ferry-bench/results.json" \
  --command "scripts/bench.sh" "$@"
