#!/usr/bin/env bash
# cluster.sh: runs a local 3-node RabbitMQ cluster beside the default broker (cluster and fault tests).
#
# Usage: scripts/cluster.sh COMMAND [N]
#   start         boot every node that is not running (also one that was killed with SIGKILL), join
#                 the three into one cluster, then print the AMQP URLs; a healthy cluster is left as is
#   stop          stop the three nodes, wait until their VMs are gone, delete the data folder
#   status        one line per node; exits 0 only when all three run and each sees 3 running nodes
#   urls          prints the three AMQP URLs, comma-separated
#   pid N         prints the OS pid of node N's Erlang VM (beam.smp), N in 1..3
#   start-node N  starts node N (stopped or killed), waits until it runs and is back in the cluster
#   stop-node N   stops node N gracefully; its data stays, so `start-node N` brings it back
#
# Nodes ferry-c1@localhost .. ferry-c3@localhost: AMQP on 127.0.0.1:5681..5683 (guest/guest from
# loopback, no plugins), Erlang distribution on 25681..25683, the default node's epmd (4369) shared.
# All they write lives in $FERRY_CLUSTER_DIR (default /tmp/ferry-cluster), one folder per node:
# cN/rabbitmq.conf, cN/log/ferry-cN@localhost.log, cN/mnesia/, cN/rabbit.pid. The nodes run as
# the rabbitmq user with its Erlang cookie; run this script as root (or as the rabbitmq user).
# The default node (rabbit@localhost, 5672) is never touched. FERRY_CLUSTER_TIMEOUT (default 90)
# bounds every wait, in seconds.
set -euo pipefail

DIR=${FERRY_CLUSTER_DIR:-/tmp/ferry-cluster}
TIMEOUT=${FERRY_CLUSTER_TIMEOUT:-90}
CTL_TIMEOUT=15 # one rabbitmqctl call; a paused (SIGSTOP) node must not hang us
SELF=$(readlink -f "${BASH_SOURCE[0]}")
RMQ_USER=rabbitmq
RMQ_HOME=$(getent passwd "$RMQ_USER" | cut -d: -f6 || true)
RMQ_HOME=${RMQ_HOME:-/var/lib/rabbitmq}
# The real scripts, not Debian's wrappers in /usr/sbin: those switch user with su, which puts the
# command in a new session that `timeout` cannot kill (a CLI stuck on a paused node would outlive
# it), and, run as the rabbitmq user, rabbitmq-server's wrapper writes over the default node's
# /var/log/rabbitmq/startup_log.
BIN=/usr/lib/rabbitmq/bin
SERVER=$BIN/rabbitmq-server
CTL=$BIN/rabbitmqctl
# AS_RMQ: the prefix running a command as the rabbitmq user (its home holds the Erlang cookie
# shared with the default node), in this process group.
AS_RMQ=(env "HOME=$RMQ_HOME")
if [ "$(id -u)" = 0 ]; then
    AS_RMQ=(setpriv "--reuid=$RMQ_USER" "--regid=$RMQ_USER" --init-groups env "HOME=$RMQ_HOME" "USER=$RMQ_USER" "LOGNAME=$RMQ_USER")
fi
if [ ! -x "$CTL" ] || ! command -v setpriv >/dev/null; then
    # Elsewhere: the commands on PATH, trusted to switch user themselves.
    AS_RMQ=(env)
    SERVER=$(command -v rabbitmq-server || true)
    CTL=$(command -v rabbitmqctl || true)
fi
cd / # the rabbitmq user need not be able to read the caller's folder
MARK=.ferry-cluster # marks $DIR as ours: stop deletes only a folder that has it
TMP=$(mktemp -d) # answers gathered from the nodes in parallel
trap 'rm -rf "$TMP"' EXIT

say() { echo "cluster: $*" >&2; }
die() {
    echo "cluster: error: $*" >&2
    exit 1
}

node() { echo "ferry-c$1@localhost"; }
port() { echo $((5680 + $1)); }
dist_port() { echo $((25680 + $1)); }
ndir() { echo "$DIR/c$1"; }
logfile() { echo "$DIR/c$1/log/ferry-c$1@localhost.log"; }

urls() {
    local n out=()
    for n in 1 2 3; do out+=("amqp://guest:guest@127.0.0.1:$(port "$n")/%2f"); done
    (
        IFS=,
        echo "${out[*]}"
    )
}

check_n() { [[ ${1:-} =~ ^[123]$ ]] || die "node number must be 1, 2 or 3 (got '${1:-}')"; }

# ctl N ARGS...: rabbitmqctl against node N, bounded (fd 9, the lock, is not handed down).
ctl() {
    local n=$1
    shift
    [ -n "$CTL" ] || die "rabbitmqctl is not installed"
    timeout -k 3 "$CTL_TIMEOUT" "${AS_RMQ[@]}" "$CTL" -q -n "$(node "$n")" "$@" </dev/null 9<&-
}

# owns PID N: PID is node N's live Erlang VM (found by the node name in its environment, never
# by guess; a VM still dying from a SIGKILL does not count).
owns() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = beam.smp ] &&
        [[ $(proc_state "$1") != [ZX] ]] &&
        grep -qzx "RABBITMQ_NODENAME=$(node "$2")" "/proc/$1/environ" 2>/dev/null
}

# beam_pid N: prints node N's VM pid (pid file first, else a scan of beam.smp processes).
beam_pid() {
    local n=$1 pid
    pid=$(cat "$(ndir "$n")/rabbit.pid" 2>/dev/null || true)
    if [[ $pid =~ ^[0-9]+$ ]] && owns "$pid" "$n"; then
        echo "$pid"
        return 0
    fi
    for pid in $(pgrep -x beam.smp || true); do
        if owns "$pid" "$n"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

count() { grep -c . <<<"$1" || true; } # lines in $1

proc_state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true; }

# app_state N: running | booting | stopped (VM up, app stopped) | empty (no answer).
app_state() {
    ctl "$1" eval 'case rabbit:is_running() of true -> running; false -> case rabbit:is_booting() of true -> booting; false -> stopped end end.' 2>/dev/null || true
}

# nodes_in KEY JSON: the node names listed under KEY in `cluster_status --formatter json`.
nodes_in() {
    { grep -o "\"$1\":\[[^]]*\]" <<<"$2" || true; } | { grep -o '"[^"]*@[^"]*"' || true; } | tr -d '"' | sort -u
}

lock() {
    exec 9<"$SELF"
    flock -w $((TIMEOUT * 3)) 9 || die "another scripts/cluster.sh start/stop is still running"
}

# --- folder and boot ---------------------------------------------------------------------------

prepare() {
    [[ $DIR == /* && $DIR != / ]] || die "FERRY_CLUSTER_DIR must be an absolute path (got '$DIR')"
    if [ -d "$DIR" ] && [ ! -e "$DIR/$MARK" ] && [ -n "$(ls -A "$DIR")" ]; then
        die "$DIR exists and is not a cluster folder (no $MARK in it); set FERRY_CLUSTER_DIR elsewhere"
    fi
    mkdir -p "$DIR"
    touch "$DIR/$MARK"
    local n d
    for n in 1 2 3; do
        d=$(ndir "$n")
        mkdir -p "$d/log" "$d/mnesia"
        # autoheal: a node paused (SIGSTOP) for longer than net_ticktime (60 s) comes back to a
        # partition; autoheal restarts the losing side (fewest client connections, then fewest
        # nodes) and the cluster is whole again. With the default (ignore) it stays split, and
        # pause_minority does not see it (the peers are back before the node notices they left).
        printf '%s\n' "# written by scripts/cluster.sh for $(node "$n")" \
            "listeners.tcp.local = 127.0.0.1:$(port "$n")" \
            "cluster_partition_handling = autoheal" >"$d/rabbitmq.conf"
        echo '[].' >"$d/enabled_plugins"
    done
    if [ "$(id -u)" = 0 ]; then chown -R "$RMQ_USER:$RMQ_USER" "$DIR"; fi
    "${AS_RMQ[@]}" test -w "$DIR/c1/mnesia" ||
        die "$DIR is not writable by the $RMQ_USER user (a parent folder closed to it?)"
}

# launch N: starts node N's VM detached (returns at once; wait_ready waits for the boot).
launch() {
    local n=$1 d
    d=$(ndir "$n")
    [ -n "$SERVER" ] || die "rabbitmq-server is not installed"
    rm -f "$d/rabbit.pid" # stale after a SIGKILL
    local vars=(
        "RABBITMQ_NODENAME=$(node "$n")"
        "RABBITMQ_CONFIG_FILE=$d/rabbitmq.conf"
        "RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config" # absent: /etc/rabbitmq's is not ours
        "RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins"
        "RABBITMQ_MNESIA_BASE=$d/mnesia"
        "RABBITMQ_LOG_BASE=$d/log"
        "RABBITMQ_PID_FILE=$d/rabbit.pid"
        "RABBITMQ_DIST_PORT=$(dist_port "$n")"
    )
    say "booting $(node "$n") (amqp 127.0.0.1:$(port "$n"), log $(logfile "$n"))"
    (cd "$d" && exec "${AS_RMQ[@]}" "${vars[@]}" "$SERVER" -detached) >"$d/startup.log" 2>&1 </dev/null 9<&- ||
        die "rabbitmq-server -detached failed for $(node "$n"); see $d/startup.log"
}

# listening N: node N's AMQP port accepts connections (seen from the socket table: no connection).
listening() { [ -n "$(ss -Hltn "sport = :$(port "$1")" 2>/dev/null)" ]; }

# wait_ready N: waits (bounded) until node N's RabbitMQ app runs; starts the app if it was left
# stopped, boots the VM again (once) if it is gone: killed just before, or a failed boot.
wait_ready() {
    local n=$1 t0=$SECONDS seen=$SECONDS asked=$SECONDS pid state="" stopped="" relaunched=0
    while :; do
        pid=$(beam_pid "$n" || true)
        if [ -z "$pid" ]; then
            state=""
            if ((SECONDS - seen > 5)); then
                if ((relaunched)); then
                    die "$(node "$n") exited while booting; see $(logfile "$n") and $(ndir "$n")/startup.log"
                fi
                say "$(node "$n") is gone: booting it again"
                relaunched=1
                launch "$n"
                seen=$SECONDS
            fi
        elif [ "$(proc_state "$pid")" = T ]; then
            die "$(node "$n") is paused (SIGSTOP), pid $pid: kill -CONT $pid"
        else
            seen=$SECONDS
            # Asking the node starts a CLI VM (about 1 CPU-second, on 2 cores beside 3 booting
            # nodes): ask once its AMQP port listens, else every 5 s (a stopped app has no listener).
            if listening "$n" || ((SECONDS - asked >= 5)); then
                asked=$SECONDS
                state=$(app_state "$n")
                case $state in
                running) return 0 ;;
                stopped)
                    stopped=${stopped:-$SECONDS}
                    # Long enough not to be a boot, nor an autoheal restart: an interrupted join
                    # left its app stopped.
                    if ((SECONDS - stopped >= 20)); then
                        say "$(node "$n") runs with its app stopped: start_app"
                        ctl "$n" start_app >/dev/null 2>&1 || true
                        stopped=""
                    fi
                    ;;
                *) stopped="" ;;
                esac
            fi
        fi
        if ((SECONDS - t0 >= TIMEOUT)); then
            local hint=""
            if [ "$state" = booting ]; then
                hint=" (a node waits for the peers it last ran with: \`scripts/cluster.sh start\` boots all three)"
            fi
            die "$(node "$n") did not finish booting within ${TIMEOUT}s (state: ${state:-no answer})$hint; see $(logfile "$n")"
        fi
        sleep 1
    done
}

# for_nodes FUNC N...: runs FUNC for each node in parallel; fails if any failed.
for_nodes() {
    local f=$1 n pids=() fail=0
    shift
    for n in "$@"; do
        "$f" "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || fail=1; done
    return "$fail"
}

boot_if_down() {
    local n=$1
    if ! beam_pid "$n" >/dev/null; then launch "$n"; fi
    wait_ready "$n"
}

# --- membership --------------------------------------------------------------------------------

# ensure_cluster N...: the given (running) nodes end up in one cluster, joined to the node that
# already knows the most members (ferry-c1 on a tie).
ensure_cluster() {
    local n seed="" best=-1 size
    declare -A disk=()
    for n in "$@"; do
        ctl "$n" cluster_status --formatter json >"$TMP/status.$n" 2>/dev/null &
    done
    wait
    for n in "$@"; do
        [ -s "$TMP/status.$n" ] || die "$(node "$n") does not answer cluster_status; see $(logfile "$n")"
        disk[$n]=$(nodes_in disk_nodes "$(cat "$TMP/status.$n")")
        size=$(count "${disk[$n]}")
        if ((size > best)); then
            best=$size
            seed=$n
        fi
    done
    for n in "$@"; do
        [ "$n" = "$seed" ] && continue
        if grep -qx "$(node "$n")" <<<"${disk[$seed]}" && grep -qx "$(node "$seed")" <<<"${disk[$n]}"; then
            continue
        fi
        say "joining $(node "$n") to $(node "$seed")"
        ctl "$n" stop_app >/dev/null || die "stop_app failed on $(node "$n"); see $(logfile "$n")"
        if grep -qx "$(node "$n")" <<<"${disk[$seed]}"; then
            # The cluster still lists it but the node lost its data: forget it first, else
            # join_cluster answers "already a member" and does nothing.
            ctl "$seed" forget_cluster_node "$(node "$n")" >/dev/null ||
                die "forget_cluster_node $(node "$n") failed on $(node "$seed")"
        fi
        ctl "$n" join_cluster "$(node "$seed")" >/dev/null ||
            die "join_cluster $(node "$seed") failed on $(node "$n"); see $(logfile "$n")"
        ctl "$n" start_app >/dev/null || die "start_app failed on $(node "$n"); see $(logfile "$n")"
    done
}

# running_seen N: the ferry nodes that node N lists as running (empty if it does not answer).
running_seen() {
    local json
    json=$(ctl "$1" cluster_status --formatter json 2>/dev/null) || return 0
    nodes_in running_nodes "$json"
}

# --- status ------------------------------------------------------------------------------------

# check_all [quiet]: one line per node; 0 when all three run and each sees 3 running nodes.
check_all() {
    local quiet=${1:-} n pid seen size ok=0
    for n in 1 2 3; do
        rm -f "$TMP/seen.$n"
        if beam_pid "$n" >/dev/null; then running_seen "$n" >"$TMP/seen.$n" & fi
    done
    wait
    for n in 1 2 3; do
        pid=$(beam_pid "$n" || true)
        if [ -z "$pid" ]; then
            [ -n "$quiet" ] || echo "cluster: $(node "$n") amqp 127.0.0.1:$(port "$n"): not running"
            ok=1
            continue
        fi
        seen=$(cat "$TMP/seen.$n" 2>/dev/null || true)
        size=$(count "$seen")
        if [ -z "$seen" ]; then
            [ -n "$quiet" ] || echo "cluster: $(node "$n") pid $pid amqp 127.0.0.1:$(port "$n"): no answer (state $(proc_state "$pid"))"
            ok=1
        else
            [ -n "$quiet" ] || echo "cluster: $(node "$n") pid $pid amqp 127.0.0.1:$(port "$n"): sees $size running: $(tr '\n' ' ' <<<"$seen")"
            [ "$size" = 3 ] || ok=1
        fi
    done
    return "$ok"
}

# heal: a partition that autoheal left (or has not yet) healed: restarts the app of each node
# outside the largest running view, as the RabbitMQ docs recommend. Nothing if a node is silent.
heal() {
    local n best="" view
    declare -A views=()
    for n in 1 2 3; do
        view=$(running_seen "$n")
        [ -n "$view" ] || return 0
        views[$n]=$view
        if (($(count "$view") > $(count "$best"))); then best=$view; fi
    done
    for n in 1 2 3; do
        grep -qx "$(node "$n")" <<<"$best" && continue
        say "$(node "$n") sees only $(tr '\n' ' ' <<<"${views[$n]}")(a partition): restarting its app"
        ctl "$n" stop_app >/dev/null || true
        ctl "$n" start_app >/dev/null || true
    done
}

# wait_whole: waits (bounded) until every node sees all three running; heals a partition once.
wait_whole() {
    local t0=$SECONDS healed=0
    until check_all quiet; do
        if ((SECONDS - t0 >= TIMEOUT)); then
            check_all >&2 || true
            die "the cluster did not come together within ${TIMEOUT}s; see $DIR/c*/log/"
        fi
        if ((!healed && SECONDS - t0 >= 15)); then
            heal
            healed=1
        fi
        sleep 2
    done
}

# --- stop --------------------------------------------------------------------------------------

# graceful_stop N [kill]: asks node N to stop (returns once it has). A paused (SIGSTOP) node
# cannot stop: with "kill" it gets SIGKILL, else that is an error.
graceful_stop() {
    local n=$1 mode=${2:-} pid
    pid=$(beam_pid "$n") || return 0
    if [ "$(proc_state "$pid")" = T ]; then
        [ "$mode" = kill ] || die "$(node "$n") is paused (SIGSTOP), pid $pid: kill -CONT $pid first"
        say "$(node "$n") is paused (SIGSTOP): killing pid $pid with SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
        return 0
    fi
    say "stopping $(node "$n") (pid $pid)"
    CTL_TIMEOUT=$TIMEOUT ctl "$n" stop >/dev/null 2>&1 || true
}

graceful_stop_or_kill() { graceful_stop "$1" kill; }

# vm_pids N...: "N:PID" for each of these nodes whose VM runs.
vm_pids() {
    local n pid
    for n in "$@"; do
        if pid=$(beam_pid "$n"); then echo "$n:$pid"; fi
    done
}

# exiting PID: a beam.smp that has not finished: alive, or dying (its environment already gone,
# its main thread maybe a zombie while the other threads end). Done once it is a lone zombie.
exiting() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = beam.smp ] || return 1
    [ "$(proc_state "$1")" != Z ] && return 0
    local tasks=("/proc/$1/task/"*)
    ((${#tasks[@]} > 1))
}

# wait_gone MODE N:PID...: waits until these VMs have exited; MODE "kill": SIGKILL after 30 s.
wait_gone() {
    local mode=$1 t0=$SECONDS e pid left
    shift
    while :; do
        left=()
        for e in "$@"; do
            pid=${e#*:}
            if exiting "$pid"; then left+=("$e"); fi
        done
        [ ${#left[@]} = 0 ] && return 0
        if [ "$mode" = kill ] && ((SECONDS - t0 >= 30)); then
            for e in "${left[@]}"; do
                pid=${e#*:}
                if owns "$pid" "${e%%:*}"; then # never a pid reused by someone else
                    say "killing $(node "${e%%:*}") (pid $pid) with SIGKILL"
                    kill -9 "$pid" 2>/dev/null || true
                fi
            done
            mode=killed
        elif ((SECONDS - t0 >= TIMEOUT)); then
            die "still running after ${TIMEOUT}s (node:pid): ${left[*]}"
        fi
        sleep 0.5
    done
}

# --- commands ----------------------------------------------------------------------------------

cmd_start() {
    if check_all quiet; then
        say "already running: ferry-c1..3@localhost, each sees 3 running nodes"
        urls
        return 0
    fi
    local t0=$SECONDS
    lock
    prepare
    for_nodes boot_if_down 1 2 3 || die "a node did not boot (see above)"
    ensure_cluster 1 2 3
    wait_whole
    say "cluster up in $((SECONDS - t0))s: ferry-c1..3@localhost"
    urls
}

cmd_stop() {
    local vms
    lock
    vms=$(vm_pids 1 2 3)
    for_nodes graceful_stop_or_kill 1 2 3 || true
    wait_gone kill $vms # N:PID words
    vms=$(vm_pids 1 2 3) # none, unless one was started behind our back
    [ -z "$vms" ] || wait_gone kill $vms
    if [ -d "$DIR" ] && [ ! -e "$DIR/$MARK" ]; then
        say "stopped: no ferry-c* node runs; $DIR kept: it has no $MARK, so it is not a cluster folder"
        return 0
    fi
    rm -rf "$DIR"
    say "stopped: no ferry-c* node runs, $DIR removed"
}

cmd_start_node() {
    local n=$1 m others=() seen t0=$SECONDS
    lock
    prepare
    boot_if_down "$n"
    for m in 1 2 3; do
        [ "$m" = "$n" ] && continue
        if beam_pid "$m" >/dev/null && [ "$(app_state "$m")" = running ]; then others+=("$m"); fi
    done
    ensure_cluster "$n" "${others[@]}"
    # Back in the cluster: it sees every running peer, and every running peer sees it.
    while :; do
        local back=1
        seen=$(running_seen "$n")
        grep -qx "$(node "$n")" <<<"$seen" || back=0
        for m in "${others[@]}"; do
            grep -qx "$(node "$m")" <<<"$seen" || back=0
            grep -qx "$(node "$n")" <<<"$(running_seen "$m")" || back=0
        done
        [ "$back" = 1 ] && break
        if ((SECONDS - t0 >= TIMEOUT)); then
            die "$(node "$n") runs but is not back in the cluster within ${TIMEOUT}s; see $(logfile "$n")"
        fi
        sleep 1
    done
    say "$(node "$n") runs (pid $(beam_pid "$n")) and is in the cluster with ${#others[@]} running peer(s), $((SECONDS - t0))s"
}

cmd_stop_node() {
    local n=$1
    local vms
    lock
    vms=$(vm_pids "$n")
    graceful_stop "$n"
    wait_gone wait $vms
    say "$(node "$n") stopped"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) check_all ;;
urls) urls ;;
pid)
    check_n "${2:-}"
    beam_pid "$2" || die "$(node "$2") is not running"
    ;;
start-node)
    check_n "${2:-}"
    cmd_start_node "$2"
    ;;
stop-node)
    check_n "${2:-}"
    cmd_stop_node "$2"
    ;;
*)
    sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
