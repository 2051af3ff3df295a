# tests/net/bed.sh: a test bed of real merpati nodes in network namespaces.
# Sourced by the tests/net/test_*.sh scripts (bash, run as root):
#
#   source bed.sh
#   bed_require                   # exit 77 (skip) without root or namespaces
#   bed_init 12                   # 12 hosts on one bridge (nothing running yet)
#   bed_start_all                 # init + run merpati in every host; host 1 is the bootstrap
#   bed_cli 3 send bob "hi"       # the CLI inside host 3, against host 3's data dir
#
# Layout of one run (P = the test's PID, R = P mod 200 + 20):
#   mpnPbr          the "switch": a namespace holding bridge br0
#   mpnPh<i>        host i: eth0 = 10.77.R.i/24, lo up, merpati listening on
#                   10.77.R.i:7700 with data dir $BED_DIR/h<i>
#   mpnPr<i>        only for lossy hosts (bed_init N --lossy "i j"): a namespace
#                   between host i and the switch where the lossy relay
#                   (lossy_relay.py) copies frames and drops some
#
# Helpers (i, j are host numbers): bed_start/bed_stop/bed_kill/bed_restart i,
# bed_link_down/bed_link_up i (pull / plug host i's cable at the switch),
# bed_addr i, bed_peer_count i, bed_has_peers i N, bed_contacts_both i j
# (contacts named h<j> on i, h<i> on j), bed_send i j TEXT (prints the id),
# bed_inbox_count j i TEXT, bed_msg_state i j ID, bed_expect_delivery SECS i j
# TEXT ID (arrives exactly once, sender sees "delivered"), bed_wait SECS WHAT
# CMD..., bed_fail MSG. Knobs (environment): MERPATI, BED_KEEP=1 (keep the
# data dirs and logs of a failed run), BED_LOG_LEVEL, BED_TCP_CUT_EVERY (s),
# BED_START_TIMEOUT_S.
#
# Adding a test: copy test_partition.sh (set -u; source bed.sh; bed_require;
# bed_init N; bed_start_all; then bed_* helpers), end with `echo PASS`, and add
# its name to the foreach list in CMakeLists.txt. Per-host settings go in
# BED_CONFIG_EXTRA[i] (config lines appended for host i) before it first
# starts; bed_prepare i creates a host's data dir and config without running
# it (for commands that work on a stopped node), bed_start_all takes the
# hosts to start (default: all; host 1 always first, as the bootstrap), and
# BED_NO_BOOTSTRAP="i j" leaves those hosts' bootstrap lists empty.
#
# Nothing is created in the namespace the test started in: every address and
# every packet stays inside the namespaces above. An EXIT/INT/TERM trap kills
# the processes started here and deletes the namespaces (their veths go with
# them), whatever way the test ends. Every wait here has a deadline and every
# loop a bounded count.

# The merpati binary: MERPATI (set by ctest) or the dev build.
BED_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MERPATI=${MERPATI:-$BED_SRC/../../build/dev/node/merpati}
BED_PORT=7700
BED_HOSTS_MAX=200
# How long one node may take to start answering on its control socket.
BED_START_TIMEOUT_S=${BED_START_TIMEOUT_S:-30}

BED_RUN=$$
BED_NET=$((BED_RUN % 200 + 20))
BED_PREFIX=mpn${BED_RUN}
BED_BR=${BED_PREFIX}br
BED_N=0
BED_DIR=""
BED_LOSSY=""
BED_LOSS_MODE=""
BED_T0=$(date +%s)
declare -a BED_PID=()
declare -a BED_RELAY_PID=()
declare -a BED_CONFIG_EXTRA=()

bed_log() { echo "[bed +$(($(date +%s) - BED_T0))s] $*"; }

bed_skip() {
    echo "SKIP: $*"
    exit 77
}

# Print the tail of every host's log and fail the test (on stderr, so that a
# failure inside $(...) is still shown; the caller there adds `|| exit 1`).
bed_fail() {
    exec 1>&2
    echo "FAIL: $*"
    local i
    for ((i = 1; i <= BED_N; i++)); do
        if [ -f "$BED_DIR/h$i/run.log" ]; then
            echo "---- host $i log (last 15 lines)"
            tail -n 15 "$BED_DIR/h$i/run.log"
        fi
    done
    exit 1
}

bed_ns() { echo "${BED_PREFIX}h$1"; }
bed_ip() { echo "10.77.$BED_NET.$1"; }

# Skip (exit 77) unless this process can build namespaces and the tools exist.
bed_require() {
    if [ "${MERPATI_NET_TESTS:-ON}" = OFF ]; then
        bed_skip "net tests are off in this build (MERPATI_NET_TESTS=OFF, the default under" \
            "MERPATI_SANITIZE); configure with -DMERPATI_NET_TESTS=ON to run them"
    fi
    [ "$(id -u)" -eq 0 ] || bed_skip "net tests need root (ip netns, veth, bridge); run ctest as root"
    command -v ip >/dev/null || bed_skip "net tests need iproute2 (scripts/setup installs it)"
    command -v jq >/dev/null || bed_skip "net tests need jq (scripts/setup installs it)"
    [ -x "$MERPATI" ] || bed_skip "no merpati binary at $MERPATI (build first)"
    local probe=${BED_PREFIX}probe
    if ! ip netns add "$probe" 2>/dev/null; then
        bed_skip "network namespaces are unavailable here (ip netns add failed)"
    fi
    if ! ip -n "$probe" link add b0 type bridge 2>/dev/null ||
        ! ip -n "$probe" link add v0 type veth peer name v1 2>/dev/null; then
        ip netns del "$probe" 2>/dev/null
        bed_skip "veth or bridge devices are unavailable here"
    fi
    ip netns del "$probe"
}

# Delete namespaces left by runs that were killed before their trap ran
# (their PID is gone). Only our own prefix is touched.
bed_sweep_stale() {
    local ns pid n=0
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mpn[0-9]+(br|h[0-9]+|r[0-9]+|probe)$'); do
        pid=${ns#mpn}
        pid=${pid%%[a-z]*}
        if [ ! -d "/proc/$pid" ] && [ $n -lt 500 ]; then
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
            ip netns del "$ns" 2>/dev/null && n=$((n + 1))
        fi
    done
    [ $n -eq 0 ] || bed_log "removed $n namespaces left by earlier runs"
}

bed_teardown() {
    local rc=$?
    trap - EXIT INT TERM
    local i ns
    for pid in "${BED_PID[@]}" "${BED_RELAY_PID[@]}"; do
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${BED_PREFIX}(br|h[0-9]+|r[0-9]+)\$"); do
        # Anything else started inside our namespaces (a stray CLI call) goes too.
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    if [ -n "$BED_DIR" ] && [ -d "$BED_DIR" ]; then
        if [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ] || [ -z "${BED_KEEP:-}" ]; then
            rm -rf "$BED_DIR"
        else
            echo "bed: logs kept in $BED_DIR"
        fi
    fi
    bed_log "torn down (exit $rc)"
    exit "$rc"
}

# Can this kernel shape traffic with netem? Tried in a throwaway namespace.
bed_netem_works() {
    local ns=${BED_PREFIX}probe ok=1
    ip netns add "$ns" 2>/dev/null || return 1
    ip -n "$ns" link add v0 type veth peer name v1 &&
        ip netns exec "$ns" tc qdisc add dev v0 root netem loss 1% 2>/dev/null && ok=0
    ip netns del "$ns" 2>/dev/null
    return $ok
}

# One host's link to the switch: directly, or through a relay namespace.
bed_link_host() {
    local i=$1 ns
    ns=$(bed_ns "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    if [[ " $BED_LOSSY " == *" $i "* ]] && [ "$BED_LOSS_MODE" = relay ]; then
        local rns=${BED_PREFIX}r$i
        ip netns add "$rns"
        ip -n "$rns" link set lo up
        ip -n "$rns" link add name toh type veth peer name eth0 netns "$ns"
        ip -n "$rns" link add name tosw type veth peer name "h$i" netns "$BED_BR"
        ip -n "$rns" link set toh up promisc on
        ip -n "$rns" link set tosw up promisc on
        # No IPv6 chatter from the relay's own ports.
        ip netns exec "$rns" sh -c 'echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6' 2>/dev/null
    else
        ip -n "$BED_BR" link add "h$i" type veth peer name eth0 netns "$ns"
    fi
    ip -n "$BED_BR" link set "h$i" master br0 up
    ip -n "$ns" addr add "$(bed_ip "$i")/24" dev eth0
    if [ "$BED_LOSS_MODE" = relay ]; then
        # Segments of one MSS, so every frame the relay copies fits the MTU.
        ip -n "$ns" link set eth0 gso_max_segs 1 || return 1
    fi
    ip -n "$ns" link set eth0 up
    if [[ " $BED_LOSSY " == *" $i "* ]] && [ "$BED_LOSS_MODE" = netem ]; then
        # Both directions: out of the host, and out of the switch towards it.
        ip netns exec "$ns" tc qdisc add dev eth0 root netem loss "${BED_LOSS_PCT}%"
        ip netns exec "$BED_BR" tc qdisc add dev "h$i" root netem loss "${BED_LOSS_PCT}%"
    fi
}

# bed_init N [--lossy "i j ..." [--loss PCT]]: build N hosts on one switch.
bed_init() {
    BED_N=$1
    shift
    BED_LOSS_PCT=20
    while [ $# -gt 0 ]; do
        case $1 in
        --lossy) BED_LOSSY=$2; shift 2 ;;
        --loss) BED_LOSS_PCT=$2; shift 2 ;;
        *) echo "bed_init: unknown flag $1"; exit 2 ;;
        esac
    done
    [ "$BED_N" -ge 1 ] && [ "$BED_N" -le $BED_HOSTS_MAX ] || { echo "bed_init: 1..$BED_HOSTS_MAX hosts"; exit 2; }
    trap bed_teardown EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    bed_sweep_stale
    BED_DIR=$(mktemp -d /tmp/mpnet.XXXXXX)
    if [ -n "$BED_LOSSY" ]; then
        if bed_netem_works; then
            BED_LOSS_MODE=netem
            bed_log "netem available: hosts $BED_LOSSY lose ${BED_LOSS_PCT}% of packets each way"
        else
            BED_LOSS_MODE=relay
            command -v python3 >/dev/null ||
                bed_skip "netem unavailable and no python3 for the lossy relay (scripts/setup installs it)"
            echo "netem unavailable: using the in-test lossy relay (hosts $BED_LOSSY, ${BED_LOSS_PCT}% of UDP dropped each way, TCP connections cut now and then)"
        fi
    fi
    ip netns add "$BED_BR"
    ip -n "$BED_BR" link set lo up
    ip -n "$BED_BR" link add br0 type bridge
    ip -n "$BED_BR" link set br0 up
    local i
    for ((i = 1; i <= BED_N; i++)); do
        bed_link_host "$i" || bed_fail "cannot build host $i"
    done
    if [ "$BED_LOSS_MODE" = relay ]; then
        for i in $BED_LOSSY; do
            bed_relay_start "$i"
        done
    fi
    bed_log "$BED_N hosts on 10.77.$BED_NET.0/24 (namespaces ${BED_PREFIX}*, data in $BED_DIR)"
}

bed_relay_start() {
    local i=$1
    ip netns exec "${BED_PREFIX}r$i" python3 "$BED_SRC/lossy_relay.py" --a toh --b tosw \
        --udp-loss "$BED_LOSS_PCT" --tcp-cut-every "${BED_TCP_CUT_EVERY:-40}" \
        >"$BED_DIR/relay$i.log" 2>&1 &
    BED_RELAY_PID[$i]=$!
}

# The merpati CLI inside host i, on host i's data dir.
bed_cli() {
    local i=$1
    shift
    timeout 60 ip netns exec "$(bed_ns "$i")" "$MERPATI" --data-dir "$BED_DIR/h$i" "$@"
}

# bed_wait SECONDS WHAT CMD...: run CMD every 0.5 s until it succeeds, or fail.
bed_wait() {
    local secs=$1 what=$2
    shift 2
    local tries=$((secs * 2)) k
    for ((k = 0; k < tries; k++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    bed_fail "timed out after ${secs}s waiting for $what"
}

# Write host i's config: its own address, the fixed port, host 1 as bootstrap.
bed_write_config() {
    local i=$1 boot=""
    [ "$i" -ne 1 ] && [ -n "${BED_BOOTSTRAP:-}" ] && [[ " ${BED_NO_BOOTSTRAP:-} " != *" $i "* ]] &&
        boot="\"$BED_BOOTSTRAP\""
    cat >"$BED_DIR/h$i/merpati.conf" <<EOF
# written by tests/net/bed.sh for host $i
listen = "$(bed_ip "$i")";
port = $BED_PORT;
log_level = "${BED_LOG_LEVEL:-info}";
bootstrap = [ $boot ];
${BED_CONFIG_EXTRA[$i]:-}
EOF
}

# Host i's data dir and config (merpati init), once; the node is not started.
bed_prepare() {
    local i=$1
    if [ ! -f "$BED_DIR/h$i/merpati.conf" ]; then
        bed_cli "$i" init >"$BED_DIR/init$i.log" 2>&1 || { cat "$BED_DIR/init$i.log"; bed_fail "merpati init on host $i"; }
        bed_write_config "$i"
    fi
}

# Start host i's node (bed_prepare on first start) without waiting for it.
bed_launch() {
    local i=$1
    bed_prepare "$i"
    # ip netns exec runs merpati in place, so $! is merpati's own PID.
    ip netns exec "$(bed_ns "$i")" "$MERPATI" --data-dir "$BED_DIR/h$i" run >>"$BED_DIR/h$i/run.log" 2>&1 &
    BED_PID[$i]=$!
}

bed_up() { bed_cli "$1" status >/dev/null 2>&1; }

bed_wait_up() {
    bed_wait "$BED_START_TIMEOUT_S" "host $1's node to answer" bed_up "$1"
}

bed_start() {
    bed_launch "$1"
    bed_wait_up "$1"
}

# bed_start_all [HOSTS...]: start host 1, then the given hosts (default: all
# the others) bootstrapping from it.
bed_start_all() {
    local i hosts=("$@")
    if [ ${#hosts[@]} -eq 0 ]; then
        for ((i = 2; i <= BED_N; i++)); do hosts+=("$i"); done
    fi
    bed_start 1
    BED_BOOTSTRAP=$(bed_cli 1 --json status | jq -r .dht.bootstrap)
    [[ "$BED_BOOTSTRAP" == *"@$(bed_ip 1):$BED_PORT" ]] || bed_fail "host 1's entry is \"$BED_BOOTSTRAP\""
    for i in "${hosts[@]}"; do
        [ "$i" -ne 1 ] && bed_launch "$i"
    done
    for i in "${hosts[@]}"; do
        bed_wait_up "$i"
    done
    bed_log "${#hosts[@]} more nodes running; bootstrap $BED_BOOTSTRAP"
}

# kill -9 host i's node (no chance to save anything).
bed_kill() {
    local i=$1
    [ -n "${BED_PID[$i]:-}" ] || return 0
    kill -9 "${BED_PID[$i]}" 2>/dev/null
    wait "${BED_PID[$i]}" 2>/dev/null
    BED_PID[$i]=""
}

# Stop host i's node cleanly.
bed_stop() {
    bed_cli "$1" stop >/dev/null 2>&1 || bed_kill "$1"
    wait "${BED_PID[$1]}" 2>/dev/null
    BED_PID[$1]=""
}

bed_restart() {
    bed_kill "$1"
    bed_start "$1"
}

# Cut / restore host i's cable at the switch (a partition of one host).
bed_link_down() { ip -n "$BED_BR" link set "h$1" down; }
bed_link_up() { ip -n "$BED_BR" link set "h$1" up; }

# Host i's account address (mp1...).
bed_addr() { bed_cli "$1" id; }

# Number of DHT peers host i knows.
bed_peer_count() { bed_cli "$1" --json peers | jq '.peers | length'; }

bed_has_peers() {
    local n
    n=$(bed_peer_count "$1") && [ "$n" -ge "${2:-1}" ]
}

# bed_has_peers_besides i k N: host i knows at least N DHT peers other than host k.
bed_has_peers_besides() {
    local n
    n=$(bed_cli "$1" --json peers |
        jq --arg not "$(bed_ip "$2"):$BED_PORT" '[.peers[] | select(.address != $not)] | length') &&
        [ "$n" -ge "$3" ]
}

# Make hosts i and j contacts of each other, named h<i> / h<j>.
bed_contacts_both() {
    local i=$1 j=$2 ai aj
    ai=$(bed_addr "$i") && aj=$(bed_addr "$j") || bed_fail "no address for host $i or $j"
    bed_cli "$i" contacts add "$aj" --name "h$j" >/dev/null || bed_fail "contacts add on host $i"
    bed_cli "$j" contacts add "$ai" --name "h$i" >/dev/null || bed_fail "contacts add on host $j"
}

# bed_send i j TEXT: send from host i to host j's address; prints the id.
bed_send() {
    local out id
    out=$(bed_cli "$1" --json send "h$2" "$3" 2>&1) || bed_fail "send from host $1 to host $2: $out"
    id=$(echo "$out" | jq -r .id)
    [ -n "$id" ] && [ "$id" != null ] || bed_fail "send from host $1 gave no id: $out"
    echo "$id"
}

# How many times host j's inbox holds TEXT from host i (0 if none).
bed_inbox_count() {
    local j=$1 i=$2 text=$3 from
    from=$(bed_addr "$i") || return 1
    bed_cli "$j" --json inbox --from "$from" --limit 1000 |
        jq --arg t "$text" '[.messages[] | select(.text == $t)] | length'
}

bed_received() { [ "$(bed_inbox_count "$@")" -ge 1 ]; }

# The state of message ID in host i's history with host j (queued, sent, delivered...).
bed_msg_state() {
    bed_cli "$1" --json history "h$2" | jq -r --arg id "$3" '.messages[] | select(.id == $id) | .state'
}

bed_delivered() { [ "$(bed_msg_state "$@")" = delivered ]; }

# bed_expect_delivery SECS i j TEXT ID: the message arrives exactly once on j
# and i learns it was delivered.
bed_expect_delivery() {
    local secs=$1 i=$2 j=$3 text=$4 id=$5 n
    bed_wait "$secs" "\"$text\" to reach host $j" bed_received "$j" "$i" "$text"
    bed_wait "$secs" "host $i to see \"$text\" delivered" bed_delivered "$i" "$j" "$id"
    n=$(bed_inbox_count "$j" "$i" "$text")
    [ "$n" -eq 1 ] || bed_fail "\"$text\" is $n times in host $j's inbox, not once"
}
