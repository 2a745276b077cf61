#!/usr/bin/env bash
# demo.sh: builds Ferry and runs the patient-summary dashboard demo on this machine.
#
# Installs what is missing (scripts/setup.sh), builds the bridge and the example worker
# (release), builds the npm package, packs it and installs the tarball into www/ (the way a
# web app would), then starts two workers and one bridge that serves both the page and the
# WebSocket. Prints the URL to open. Ctrl-C stops everything it started.
#
#   scripts/demo.sh                  # the whole demo
#   DEMO_CLUSTER=1 scripts/demo.sh   # the same on a 3-node RabbitMQ cluster (scripts/cluster.sh)
#   scripts/demo.sh --prepare-only   # only pack the built package and install it into www/
#
# Environment: FERRY_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f),
# DEMO_LISTEN (default 127.0.0.1:8080), DEMO_WORKERS (2), DEMO_WORK_MS (3000),
# DEMO_PREFETCH (2), DEMO_CLUSTER (0; 1: start the local cluster, a quorum request queue,
# each worker on its own node first, the bridge knowing all three nodes).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
STATE=$ROOT/.demo
LISTEN=${DEMO_LISTEN:-127.0.0.1:8080}
WORKERS=${DEMO_WORKERS:-2}
WORK_MS=${DEMO_WORK_MS:-3000}
PREFETCH=${DEMO_PREFETCH:-2}
CLUSTER=${DEMO_CLUSTER:-0}
QUEUE=patient_summary_request

say() { printf 'demo: %s\n' "$*"; }

# Packs the built package (dist/ must exist) and installs the tarball into www/node_modules.
prepare_www() {
    [ -f dist/index.js ] || { say "dist/index.js missing: run 'npm run build' first" >&2; return 1; }
    mkdir -p "$STATE"
    local name
    name=$(npm pack --silent --pack-destination "$STATE" | tail -n 1)
    mv -f "$STATE/$name" "$STATE/ferry-client.tgz"
    rm -rf www/node_modules/ferry-client
    (cd www && npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null)
    [ -f www/node_modules/ferry-client/dist/index.js ] || { say "install into www/ failed" >&2; return 1; }
    say "packed $name and installed it into www/node_modules"
}

if [ "${1:-}" = "--prepare-only" ]; then
    prepare_www
    exit 0
fi

bash scripts/setup.sh

say "building ferry-bridge and patient-summary-worker (release)"
cargo build --release --quiet -p ferry-bridge -p patient-summary-worker
say "building the npm package ferry-client"
mkdir -p "$STATE"
if ! npm run --silent build >"$STATE/build-client.log" 2>&1; then
    tail -n 30 "$STATE/build-client.log" >&2
    say "npm run build failed; full log in .demo/build-client.log" >&2
    exit 1
fi
prepare_www

# --- the broker: the default one, or the local 3-node cluster ----------------------------------
QUEUE_TYPE=classic
IFS=, read -r -a AMQP_URLS <<<"${FERRY_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
if [ "$CLUSTER" = 1 ]; then
    say "starting the 3-node RabbitMQ cluster (scripts/cluster.sh start; about 25 s from cold)"
    IFS=, read -r -a AMQP_URLS <<<"$(bash scripts/cluster.sh start | tail -n 1)"
    QUEUE_TYPE=quorum
fi
# The URLs from the N-th on, wrapped: each worker starts on its own node.
urls_from() {
    local n=$1 i out=() count=${#AMQP_URLS[@]}
    for i in $(seq 0 $((count - 1))); do out+=("${AMQP_URLS[$(((n + i) % count))]}"); done
    local IFS=,
    echo "${out[*]}"
}

# --- run -------------------------------------------------------------------------------------
LOGS=$STATE/logs
mkdir -p "$LOGS"
PIDS=()
stop_all() {
    trap - INT TERM EXIT
    if [ "${#PIDS[@]}" -gt 0 ]; then
        say "stopping ${#PIDS[@]} processes"
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

# Waits until FILE contains a line matching PATTERN (the process prints it once ready).
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 what=$4 i
    for i in $(seq 1 300); do
        if grep -q "$pattern" "$file" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            say "$what exited; its log:" >&2
            tail -n 20 "${file%.out}.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    say "$what did not get ready in 30 s; see ${file%.out}.log" >&2
    return 1
}

for n in $(seq 1 "$WORKERS"); do
    "$TARGET_DIR/release/patient-summary-worker" --queue "$QUEUE" --name "worker-$n" \
        --work-ms "$WORK_MS" --prefetch "$PREFETCH" \
        --amqp-url "$(urls_from "$((n - 1))")" --queue-type "$QUEUE_TYPE" \
        >"$LOGS/worker-$n.out" 2>"$LOGS/worker-$n.log" &
    PIDS+=($!)
    wait_for_line "$LOGS/worker-$n.out" "consuming" "$!" "worker-$n"
done
say "$WORKERS workers consuming $QUEUE (prefetch $PREFETCH, ${WORK_MS} ms per summary)"

# Sign-in: a fresh HS256 secret, and a development token for each of the two clinicians
# (the worker shows each only the patients in their care). The page reads them from
# www/demo-tokens.json; a real app gets its token from its own login instead.
BRIDGE="$TARGET_DIR/release/ferry-bridge"
SECRET="$STATE/jwt-secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET"
mint() {
    "$BRIDGE" token --secret-file "$SECRET" --sub "$1" --ttl 12h \
        --allow "$QUEUE" --allow-exchange patient_summary.presence
}
cat >"$ROOT/www/demo-tokens.json" <<JSON
[
  { "user": "dr.okafor", "name": "Dr. Ada Okafor (patients 1–6)", "token": "$(mint dr.okafor)" },
  { "user": "dr.lindqvist", "name": "Dr. Bruno Lindqvist (patients 7–12)", "token": "$(mint dr.lindqvist)" }
]
JSON
say "minted sign-in tokens for dr.okafor and dr.lindqvist (www/demo-tokens.json)"

"$BRIDGE" --listen "$LISTEN" --static-dir "$ROOT/www" --jwt-secret-file "$SECRET" \
    --amqp-url "$(urls_from 0)" \
    --allow "$QUEUE" --allow-exchange patient_summary.presence --drain-timeout 3s \
    >"$LOGS/bridge.out" 2>"$LOGS/bridge.log" &
PIDS+=($!)
wait_for_line "$LOGS/bridge.out" "listening on" "$!" "ferry-bridge"
URL=$(grep -o 'http://[^ ]*' "$LOGS/bridge.out" | head -n 1)

cat <<EOF

  Ferry demo is running.

    Open  ${URL}/  in your browser.

  Sign in as either clinician (top right): each sees only their own patients' summaries;
  the other's come back as the worker's typed error not_your_patient.
  Bridge socket ${URL/http:/ws:}/ws, page served from www/, logs in .demo/logs/.
  Press Ctrl-C to stop the bridge and the workers.

EOF
if [ "$CLUSTER" = 1 ]; then
    cat <<EOF
  RabbitMQ: the 3-node cluster on 127.0.0.1:5681-5683 (quorum queue $QUEUE). Try
  'kill -9 \$(scripts/cluster.sh pid 1)' while a summary is running; 'scripts/cluster.sh start'
  brings the node back, 'scripts/cluster.sh stop' removes the cluster.

EOF
fi

# Runs until Ctrl-C or until one of the processes exits.
wait -n "${PIDS[@]}" || true
say "a process exited unexpectedly; see .demo/logs/"
exit 1
