#!/usr/bin/env bash
# Checks the crate invariants of docs/architecture.md from the dependency graph:
# only ferry-bridge knows AMQP; ferry-client never uses tokio; ferry-protocol knows neither
# (nor any browser binding); the example worker needs none of Ferry's crates.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# forbid CRATE TARGET PATTERN WHY: CRATE's normal dependencies must not match PATTERN.
forbid() {
    local crate=$1 target=$2 pattern=$3 why=$4 found
    found=$(cargo tree -q -p "$crate" --target "$target" -e normal --prefix none --no-dedupe |
        awk '{ print $1 }' | grep -E "^($pattern)$" | sort -u || true)
    if [ -n "$found" ]; then
        echo "invariant broken: $crate depends on $(echo "$found" | tr '\n' ' ')($why)"
        fail=1
    else
        echo "ok: $crate ($why)"
    fi
}
HOST=$(rustc -vV | awk '/^host:/ { print $2 }')
forbid ferry-protocol "$HOST" "tokio|lapin|amq-protocol|web-sys|js-sys|wasm-bindgen" "protocol knows neither tokio, AMQP nor the browser"
forbid ferry-protocol wasm32-unknown-unknown "tokio|lapin|amq-protocol" "protocol builds for wasm32 without them"
forbid ferry-client wasm32-unknown-unknown "tokio|lapin|amq-protocol" "client-wasm never uses tokio or AMQP"
forbid patient-summary-worker "$HOST" "ferry-protocol|ferry-bridge|ferry-client" "workers need none of our code"
exit "$fail"
