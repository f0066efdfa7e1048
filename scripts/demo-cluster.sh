#!/usr/bin/env bash
# A 3-node rover-agent cluster on this machine (loopback only), then a crash:
#
#   1. builds the binary if it is missing and generates one cluster key (`keygen`);
#   2. starts node1..node3 on 127.0.0.1 (gossip UDP 17946-17948, API 17956-17958), each with
#      its own data dir in a temporary directory; node2 and node3 join node1;
#   3. waits until node1 lists all three alive and prints `members`;
#   4. kills node3 with `kill -9`, waits until node1 lists it failed and prints `members` again;
#   5. stops every agent it started (by PID, also on Ctrl-C or an error) and removes the
#      temporary directory.
#
# Environment: ROVER_BIN (binary to use, default target/debug/rover-agent),
# DEMO_GOSSIP_PORT / DEMO_API_PORT (first port of each range, default 17946 / 17956),
# ROVER_LOG (agent log filter; logs are shown only if something goes wrong).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${ROVER_BIN:-target/debug/rover-agent}
GOSSIP_PORT=${DEMO_GOSSIP_PORT:-17946}
API_PORT=${DEMO_API_PORT:-17956}
NODES=3
JOIN_TIMEOUT=30 # seconds for the cluster to form
FAIL_TIMEOUT=30 # seconds for node1 to declare node3 failed

# Settings from the caller's environment must not leak into the demo's agents.
while read -r var; do
    [[ $var == ROVER_BIN || $var == ROVER_LOG ]] || unset "$var"
done < <(compgen -e | grep '^ROVER_' || true)

if [[ ! -x $BIN ]]; then
    [[ -z ${ROVER_BIN:-} ]] || { echo "error: ROVER_BIN=$BIN is not an executable" >&2; exit 1; }
    echo "building rover-agent (cargo build -q) ..."
    cargo build -q
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rover-demo.XXXXXX")
declare -A PIDS=() # node name -> PID of its agent

cleanup() {
    local rc=$? name pid deadline
    trap - EXIT INT TERM
    for name in "${!PIDS[@]}"; do
        kill -TERM "${PIDS[$name]}" 2>/dev/null || true # graceful leave
    done
    deadline=$((SECONDS + 5))
    for name in "${!PIDS[@]}"; do
        pid=${PIDS[$name]}
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        # (grouped so that bash's "Killed" notice goes to /dev/null too)
        { kill -KILL "$pid"; wait "$pid"; } 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

gossip_addr() { echo "127.0.0.1:$((GOSSIP_PORT + $1 - 1))"; }
api_addr() { echo "127.0.0.1:$((API_PORT + $1 - 1))"; }

# Fails with the agent's log if one of the agents still meant to run has exited.
check_agents() {
    local name
    for name in "${!PIDS[@]}"; do
        if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            echo "error: $name exited; its log:" >&2
            cat "$WORK/$name.log" >&2
            return 1
        fi
    done
}

# wait_until TIMEOUT WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds.
wait_until() {
    local timeout=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        check_agents
        if ((SECONDS >= deadline)); then
            echo "error: timed out after ${timeout}s waiting until $what" >&2
            echo "members on node1:" >&2
            "$BIN" members --api "$(api_addr 1)" >&2 || true
            return 1
        fi
        sleep 0.2
    done
}

members() { "$BIN" members --api "$(api_addr 1)" "$@"; }
alive_names() { members --status alive 2>/dev/null | awk 'NR > 1 { print $1 }' | sort | xargs; }
all_alive() { [[ $(alive_names) == "node1 node2 node3" ]]; }
node3_failed() { members --status failed 2>/dev/null | awk 'NR > 1 && $1 == "node3"' | grep -q .; }

"$BIN" keygen >"$WORK/key"
chmod 600 "$WORK/key"
echo "cluster key in $WORK/key; agents' data dirs and logs in $WORK"

for i in $(seq 1 "$NODES"); do
    name=node$i
    args=(agent --node "$name" --bind "$(gossip_addr "$i")" --api "$(api_addr "$i")"
        --data-dir "$WORK/$name" --key-file "$WORK/key" --profile local)
    ((i > 1)) && args+=(--join "$(gossip_addr 1)")
    "$BIN" "${args[@]}" 2>"$WORK/$name.log" &
    PIDS[$name]=$!
    echo "started $name (PID ${PIDS[$name]}): gossip $(gossip_addr "$i"), API $(api_addr "$i")"
done

start=$SECONDS
wait_until "$JOIN_TIMEOUT" "node1 lists 3 members alive" all_alive
echo
echo "== node1 sees all three alive (after $((SECONDS - start))s):  rover-agent members --api $(api_addr 1)"
members

echo
echo "== kill -9 node3 (PID ${PIDS[node3]})"
{ kill -KILL "${PIDS[node3]}" && wait "${PIDS[node3]}"; } 2>/dev/null || true
unset 'PIDS[node3]'
start=$SECONDS
wait_until "$FAIL_TIMEOUT" "node1 lists node3 as failed" node3_failed
echo "== node1 declared node3 failed after $((SECONDS - start))s:"
members
echo
echo "stopping the other agents"
