#!/usr/bin/env bash
# test.sh: installs what is missing (scripts/setup.sh), then runs every check and test.
#
# Steps: setup, cargo fmt --check, clippy (native + wasm32 client), cargo doc, cargo test, build the
# binaries, npm run build, type-check, npm pack + install into www/, bench smoke, node tests,
# browser and runtime tests (tests/browser, tests/dashboard, tests/runtimes: a Vite build in
# Chromium, Deno, workerd), the broker-restart tests, then the cluster suite (tests/cluster).
# Steps whose inputs do not exist yet are skipped. Every step's output is kept in
# target/test-logs/. The last line is `N passed, M failed`
# (tests counted from cargo's and node's summaries; a failed non-test step counts as one).
# Exits non-zero if anything failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOG_DIR=$TARGET_DIR/test-logs
mkdir -p "$LOG_DIR"

PASSED=0
FAILED=0
SUMMARY=()
T0=$(date +%s)

# run_step NAME COMMAND...: runs a step, logs it, counts its tests (or itself) as passed/failed.
run_step() {
    local name=$1
    shift
    local log="$LOG_DIR/$name.log" start status
    start=$(date +%s)
    printf '\n=== %s: %s\n' "$name" "$*"
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    local secs=$(($(date +%s) - start)) p f
    # cargo: "test result: ok. 5 passed; 0 failed"; node: "# pass 5" (tap) or "ℹ pass 5" (spec).
    p=$(grep -aoE '(test result: [A-Za-z]+\. [0-9]+ passed)|(^(# |ℹ )pass [0-9]+)' "$log" |
        grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
    f=$(grep -aoE '([0-9]+ passed; [0-9]+ failed)|(^(# |ℹ )fail [0-9]+)' "$log" |
        sed -E 's/^[0-9]+ passed; //' | grep -oE '^[0-9]+|[0-9]+$' |
        awk '{ s += $1 } END { print s + 0 }')
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        # Not a test step: the step itself is the check.
        if [ "$status" -eq 0 ]; then p=1; else f=1; fi
    elif [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # failed without a failing test (build error, crash, timeout)
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    local verdict=ok
    [ "$status" -eq 0 ] || verdict="FAILED (exit $status)"
    SUMMARY+=("$(printf '%-16s %-20s %4ss  %s passed, %s failed' "$name" "$verdict" "$secs" "$p" "$f")")
    return "$status"
}

skip() {
    SUMMARY+=("$(printf '%-16s %-20s' "$1" "skipped ($2)")")
    printf '\n=== %s: skipped (%s)\n' "$1" "$2"
}

finish() {
    printf '\n=== summary (%ss in all; logs in %s)\n' "$(($(date +%s) - T0))" "$LOG_DIR"
    printf '%s\n' "${SUMMARY[@]}"
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit $?
}

has_npm_script() {
    [ -f package.json ] && node -e 'process.exit(require("./package.json").scripts?.[process.argv[1]] ? 0 : 1)' "$1"
}

# Test files node --test would pick up in a directory.
has_node_tests() {
    [ -d "$1" ] && [ -n "$(find "$1" -type f \( -name '*.test.js' -o -name '*.test.mjs' -o -name '*.test.cjs' -o -name 'test-*.js' -o -name 'test-*.mjs' \) -print -quit)" ]
}

run_step setup bash scripts/setup.sh || finish

run_step fmt cargo fmt --all --check
run_step invariants bash scripts/check-invariants.sh
run_step clippy cargo clippy --workspace --all-targets --quiet -- -D warnings
if [ -f client-wasm/Cargo.toml ]; then
    run_step clippy-wasm cargo clippy -p ferry-client --target wasm32-unknown-unknown --quiet -- -D warnings
fi
# The crate docs (`//!` maps, links between modules) build without a warning.
run_step docs env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
run_step cargo-test timeout 1200 cargo test --workspace
BINS_OK=1
# Every target with the features `cargo test` used (`--all-targets` counts dev-dependencies),
# so the binaries it already built are reused; `cargo build -p` of them alone would recompile
# shared dependencies under other features (two minutes on a fresh clone).
run_step build-bins cargo build --workspace --all-targets --quiet || BINS_OK=0
export FERRY_BRIDGE_BIN="$TARGET_DIR/debug/ferry-bridge"
export FERRY_WORKER_BIN="$TARGET_DIR/debug/patient-summary-worker"

CLIENT_OK=0
if has_npm_script build; then
    run_step npm-build npm run build && CLIENT_OK=1
else
    skip npm-build "no build script in package.json yet"
fi
for script in typecheck check-types test:types; do
    if has_npm_script "$script"; then
        run_step typecheck npm run "$script"
        break
    fi
done
if [ "$CLIENT_OK" -eq 1 ]; then
    run_step pack-www bash scripts/demo.sh --prepare-only || CLIENT_OK=0
fi
# A few seconds of the benchmark harness (baseline, native and npm clients) so it never
# rots; the full run is `scripts/bench.sh`, by hand.
if [ -f scripts/bench.sh ]; then
    run_step bench-smoke timeout 300 bash scripts/bench.sh --smoke
fi

if has_node_tests tests/node; then
    run_step node-tests timeout 900 node --test --test-reporter=spec tests/node
else
    skip node-tests "no tests in tests/node yet"
fi

BROWSER_DIRS=()
for dir in tests/browser tests/dashboard tests/runtimes; do
    has_node_tests "$dir" && BROWSER_DIRS+=("$dir")
done
if [ "${#BROWSER_DIRS[@]}" -eq 0 ]; then
    skip browser-tests "no browser tests yet"
elif [ "$CLIENT_OK" -eq 0 ] || [ "$BINS_OK" -eq 0 ]; then
    skip browser-tests "client package or binaries did not build"
    FAILED=$((FAILED + 1))
else
    export FERRY_WWW_DIR="$ROOT/www"
    run_step browser-tests timeout 900 node --test --test-reporter=spec --test-concurrency=1 "${BROWSER_DIRS[@]}"
fi

# amqps:// toward a broker: boots a second RabbitMQ node with a TLS listener (its own node
# name, port 5699 and folder; stopped by the test's guard).
run_step amqps timeout 300 cargo test -q -p ferry-bridge --test it -- --ignored --test-threads=1 amqps::

# Last and alone: restarts the shared RabbitMQ under load (its test has a guard that starts
# the broker again; if the step itself is killed, the two lines after it do).
run_step broker-restart timeout 300 cargo test -q -p ferry-bridge --test it -- --ignored --nocapture --test-threads=1 broker_restart:: session_restart::
rabbitmqctl start_app >/dev/null 2>&1 || true
if [ "$CLIENT_OK" -eq 1 ] && [ "$BINS_OK" -eq 1 ]; then
    run_step broker-restart-npm timeout 300 node --test --test-reporter=spec tests/restart
else
    skip broker-restart-npm "client package or binaries did not build"
    FAILED=$((FAILED + 1))
fi
rabbitmqctl start_app >/dev/null 2>&1 || true
bash scripts/setup.sh broker >/dev/null 2>&1 || true

# The cluster suite, after everything else: a 3-node RabbitMQ cluster beside the default broker
# (scripts/cluster.sh, ports 5681-5683; the default broker is untouched), HAProxy in front of
# two bridges (a drain under load), and faults under load (a node and a bridge SIGKILLed, a
# rolling restart, a node stalled). Stopped afterwards unless it was running before.
if [ "$CLIENT_OK" -eq 1 ] && [ "$BINS_OK" -eq 1 ]; then
    CLUSTER_WAS_UP=0
    bash scripts/cluster.sh status >/dev/null 2>&1 && CLUSTER_WAS_UP=1
    run_step cluster timeout 900 node --test --test-reporter=spec --test-concurrency=1 tests/cluster
    [ "$CLUSTER_WAS_UP" -eq 1 ] || bash scripts/cluster.sh stop >/dev/null 2>&1 || true
else
    skip cluster "client package or binaries did not build"
    FAILED=$((FAILED + 1))
fi

finish
