#!/usr/bin/env bash
# setup.sh: installs what Ferry's build, demo and tests need, skipping what is present.
#
# Idempotent and quiet: one line per step. Safe to run on every build (demo.sh and test.sh
# do). Needs network access only to the package registries (crates.io, npm, Debian).
#
#   - Rust target wasm32-unknown-unknown
#   - wasm-bindgen-cli, the exact version of the `wasm-bindgen` crate in Cargo.lock
#   - chromium, chromium-driver, binaryen (wasm-opt), openssl, haproxy from Debian's packages
#   - the Python package pika (pip, else Debian's python3-pika) for the interop test
#   - node_modules (npm ci), when missing or older than package-lock.json
#   - a RabbitMQ answering at FERRY_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f);
#     started with `rabbitmq-server -detached` (installed first if local and missing)
#   - on a local broker, the rabbitmq_web_stomp plugin (the benchmark's peer row)
#
# Environment: FERRY_AMQP_URL; FERRY_SKIP_BROKER=1 skips the broker steps.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

export PATH="$HOME/.cargo/bin:$PATH"

# Runs a command as root (directly, or through sudo when available).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root to run: $* (run as root or install sudo)"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these yourself: $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Rust: wasm32 target -------------------------------------------------------------------
step_wasm_target() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup"
    if command -v rustup >/dev/null 2>&1; then
        if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
            say "rust target wasm32-unknown-unknown: present"
        else
            say "rust target wasm32-unknown-unknown: installing"
            rustup target add wasm32-unknown-unknown >/dev/null
        fi
    elif [ -d "$(rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown" ]; then
        say "rust target wasm32-unknown-unknown: present"
    else
        die "no rustup and no wasm32-unknown-unknown target in this toolchain"
    fi
}

# --- wasm-bindgen-cli pinned to Cargo.lock ---------------------------------------------------
step_wasm_bindgen() {
    local want have
    want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock 2>/dev/null || true)
    if [ -z "$want" ]; then
        say "wasm-bindgen-cli: no wasm-bindgen in Cargo.lock yet, skipped"
        return
    fi
    have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
    if [ "$have" = "$want" ]; then
        say "wasm-bindgen-cli $want: present"
        return
    fi
    say "wasm-bindgen-cli $want: installing (found '${have:-none}'; takes a few minutes)"
    # Not --locked: the CLI's own lock file pins a yanked crate.
    cargo install -q wasm-bindgen-cli --version "$want" --force
}

# --- Debian packages: chromium, chromium-driver, binaryen, openssl (test certificates), haproxy
# (the load-balancer drain test) ------------------------------------------------------------------
step_debian_packages() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    command -v wasm-opt >/dev/null 2>&1 || missing+=(binaryen)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
    if [ "${#missing[@]}" -eq 0 ]; then
        say "chromium, chromedriver, wasm-opt, openssl, haproxy: present"
        return
    fi
    say "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
}

# --- Python: pika, for the interop test's plain RabbitMQ-tutorial RPC server -------------------
step_python() {
    command -v python3 >/dev/null 2>&1 || die "python3 not found: install Python 3 (the interop test needs it)"
    if python3 -c "import pika" >/dev/null 2>&1; then
        say "python pika: present"
        return
    fi
    say "python pika: installing"
    python3 -m pip install -q pika >/dev/null 2>&1 || apt_install python3-pika
}

# --- node_modules ----------------------------------------------------------------------------
step_node_modules() {
    if [ ! -f package.json ]; then
        say "npm: no package.json yet, skipped"
        return
    fi
    command -v npm >/dev/null 2>&1 || die "node/npm not found: install Node.js 20 or newer"
    local stamp=node_modules/.package-lock.json
    if [ -f package-lock.json ]; then
        if [ -f "$stamp" ] && [ ! package-lock.json -nt "$stamp" ] && [ ! package.json -nt "$stamp" ]; then
            say "node_modules: up to date"
        else
            say "node_modules: npm ci"
            npm ci --no-audit --no-fund --loglevel=error >/dev/null
        fi
    elif [ -d node_modules ] && [ ! package.json -nt node_modules ]; then
        say "node_modules: present"
    else
        say "node_modules: npm install"
        npm install --no-audit --no-fund --loglevel=error >/dev/null
    fi
}

# --- RabbitMQ --------------------------------------------------------------------------------
AMQP_URL=${FERRY_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
amqp_host_port() {
    local rest=${AMQP_URL#*://} default=5672
    case $AMQP_URL in amqps://*) default=5671 ;; esac
    rest=${rest%%/*}
    rest=${rest##*@}
    if [[ $rest == *:* ]]; then
        AMQP_HOST=${rest%:*}
        AMQP_PORT=${rest##*:}
    else
        AMQP_HOST=$rest
        AMQP_PORT=$default
    fi
    AMQP_HOST=${AMQP_HOST:-127.0.0.1}
}

# True when something at the AMQP address answers the AMQP 0-9-1 protocol header with a frame
# (a bare TCP connect is not enough: some networks accept every connection).
broker_answers() {
    local first
    first=$(timeout 3 bash -c "exec 3<>/dev/tcp/$AMQP_HOST/$AMQP_PORT && printf 'AMQP\\x00\\x00\\x09\\x01' >&3 && head -c 1 <&3 | od -An -tx1" 2>/dev/null || true)
    [ "${first// /}" = 01 ]
}

broker_help() {
    cat >&2 <<EOF
setup: no AMQP broker answers at $AMQP_HOST:$AMQP_PORT (FERRY_AMQP_URL=$AMQP_URL).
  Start one, then run this again:
    - Debian/Ubuntu:  apt-get install rabbitmq-server && rabbitmq-server -detached
    - Docker:         docker run -d --name rabbitmq -p 5672:5672 rabbitmq:3
    - elsewhere:      set FERRY_AMQP_URL=amqp://user:pass@host:5672/%2f to a broker you have
EOF
}

step_broker() {
    if [ "${FERRY_SKIP_BROKER:-0}" = 1 ]; then
        say "rabbitmq: skipped (FERRY_SKIP_BROKER=1)"
        return
    fi
    amqp_host_port
    if broker_answers; then
        say "rabbitmq at $AMQP_HOST:$AMQP_PORT: answering"
        return
    fi
    # Only a local broker on the standard port is ours to install and start.
    case "$AMQP_HOST:$AMQP_PORT" in
        127.0.0.1:5672 | localhost:5672 | '[::1]:5672') ;;
        *) broker_help; exit 1 ;;
    esac
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        say "rabbitmq: not installed, installing rabbitmq-server"
        apt_install rabbitmq-server || { broker_help; exit 1; }
    fi
    say "rabbitmq: starting (rabbitmq-server -detached)"
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 90); do
        if broker_answers; then
            say "rabbitmq at $AMQP_HOST:$AMQP_PORT: answering after ${i}s"
            return
        fi
        sleep 1
    done
    broker_help
    exit 1
}

# --- Web-STOMP: RabbitMQ's own WebSocket option, the peer in the benchmark table -------------
# Enabled on the local broker only (the plugin listens on 127.0.0.1:15674, path /ws); the
# benchmark shows its row as missing where it is not there.
step_web_stomp() {
    [ "${FERRY_SKIP_BROKER:-0}" = 1 ] && return
    amqp_host_port
    case "$AMQP_HOST:$AMQP_PORT" in
        127.0.0.1:5672 | localhost:5672 | '[::1]:5672') ;;
        *) say "web-stomp: the broker is not local; not enabled"; return ;;
    esac
    if (exec 3<>/dev/tcp/127.0.0.1/15674) 2>/dev/null; then
        say "web-stomp on 127.0.0.1:15674: answering"
        return
    fi
    say "web-stomp: enabling rabbitmq_web_stomp"
    as_root rabbitmq-plugins enable rabbitmq_web_stomp >/dev/null ||
        die "rabbitmq-plugins enable rabbitmq_web_stomp failed"
    local i
    for i in $(seq 1 30); do
        if (exec 3<>/dev/tcp/127.0.0.1/15674) 2>/dev/null; then
            say "web-stomp on 127.0.0.1:15674: answering after ${i}s"
            return
        fi
        sleep 1
    done
    die "web-stomp enabled but 127.0.0.1:15674 does not answer"
}

case "${1:-all}" in
    all)
        step_wasm_target
        step_wasm_bindgen
        step_debian_packages
        step_python
        step_node_modules
        step_broker
        step_web_stomp
        ;;
    broker) step_broker; step_web_stomp ;;
    *) die "usage: setup.sh [all|broker]" ;;
esac
