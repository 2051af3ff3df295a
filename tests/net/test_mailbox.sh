#!/usr/bin/env bash
# net test: mailboxes. Host x is killed (kill -9); host a sends to it and sees
# the message go to x's mailboxes (history state "mailbox"; other hosts hold
# it). Then a stops cleanly, so no retry of a's can deliver it, and x comes
# back: it fetches the message from its mailboxes and has it exactly once,
# and the mailboxes let go of it. Last, a starts again and learns "delivered".
# Every host fetches every 2 s (mailbox.fetch_interval) to keep it quick.
set -u
source "$(dirname "$0")/bed.sh"
bed_require
n=6
a=2
x=5
bed_init $n
for ((i = 1; i <= n; i++)); do
    BED_CONFIG_EXTRA[$i]='mailbox = { fetch_interval = 2; };'
done
bed_start_all
for ((i = 1; i <= n; i++)); do
    bed_wait 30 "host $i to know DHT peers" bed_has_peers "$i" 3
done
bed_contacts_both $a $x
# Host a's address, read while it runs (`merpati id` asks the daemon).
addr_a=$(bed_addr $a) || bed_fail "no address for host $a"
# How many times host x's inbox holds TEXT from a (bed_inbox_count needs a up).
count_on_x() {
    bed_cli $x --json inbox --from "$addr_a" --limit 1000 |
        jq --arg t "$1" '[.messages[] | select(.text == $t)] | length'
}
on_x() { [ "$(count_on_x "$1")" -ge 1 ]; }
id=$(bed_send $a $x "while x is up") || exit 1
bed_expect_delivery 30 $a $x "while x is up" "$id"

# What the other hosts hold for others (not a, not x).
held_elsewhere() {
    local i sum=0 h
    for ((i = 1; i <= n; i++)); do
        [ "$i" -eq $a ] || [ "$i" -eq $x ] || [ -z "${BED_PID[$i]:-}" ] && continue
        h=$(bed_cli "$i" --json status | jq '.mailbox.held') || return 1
        sum=$((sum + h))
    done
    echo $sum
}
held0=$(held_elsewhere)
[ "$held0" -eq 0 ] || bed_fail "mailboxes hold $held0 envelopes before anything was sent to them"

bed_kill $x
bed_log "host $x killed"
text="left in the mailboxes for $x"
id=$(bed_send $a $x "$text") || exit 1
in_mailbox() { [ "$(bed_msg_state $a $x "$id")" = mailbox ]; }
bed_wait 45 "host $a's history to show the message in state mailbox" in_mailbox
where=$(bed_cli $a --json mailboxes "h$x") || bed_fail "merpati mailboxes h$x on host $a"
bed_log "mailboxes of host $x as host $a sees them: $(echo "$where" | jq -r '[.mailboxes[].addr] | join(" ")')"
[ "$(echo "$where" | jq '.mailboxes | length')" -ge 1 ] || bed_fail "no mailbox listed for host $x: $where"
held_some() { [ "$(held_elsewhere)" -ge 1 ]; }
bed_wait 10 "another host to hold the envelope" held_some
bed_log "$(held_elsewhere) copies held by mailbox nodes"
to_mb=$(bed_cli $a --json status | jq '.messages.to_mailboxes.held')
[ "$to_mb" -ge 1 ] || bed_fail "host $a's status says $to_mb messages held by mailboxes"

# What each host holds now, and has had taken from it so far.
declare -a held_before=() taken_before=()
for ((i = 1; i <= n; i++)); do
    [ "$i" -eq $a ] || [ "$i" -eq $x ] && continue
    st=$(bed_cli "$i" --json status) || bed_fail "status on host $i"
    held_before[$i]=$(echo "$st" | jq '.mailbox.held')
    taken_before[$i]=$(echo "$st" | jq '.mailbox.taken')
done

# The sender goes away before the recipient returns.
bed_stop $a
bed_log "host $a stopped; host $x starts again"
bed_start $x
# bed_wait without failing: 0 once CMD succeeds within SECS, else 1.
try_wait() {
    local secs=$1 k
    shift
    for ((k = 0; k < secs * 2; k++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}
if ! try_wait 30 on_x "$text"; then
    for ((i = 1; i <= n; i++)); do
        [ -n "${BED_PID[$i]:-}" ] &&
            echo "host $i: $(bed_cli "$i" --json status | jq -c '{mailbox, to_mailboxes: .messages.to_mailboxes, received: .messages.received, links}')" >&2
    done
    bed_fail "\"$text\" did not reach host $x from its mailboxes within 30 s"
fi
c=$(count_on_x "$text")
[ "$c" -eq 1 ] || bed_fail "\"$text\" is $c times in host $x's inbox"
f=$(bed_cli $x --json status | jq '.mailbox.fetched')
[ "$f" -ge 1 ] || bed_fail "host $x says it fetched $f envelopes from its mailboxes"
# Every mailbox that held the envelope hands it out and deletes it once x
# took it (what they hold afterwards is x's receipt, waiting for a).
all_taken() {
    local i t
    for ((i = 1; i <= n; i++)); do
        [ -n "${held_before[$i]:-}" ] && [ "${held_before[$i]}" -ge 1 ] || continue
        t=$(bed_cli "$i" --json status | jq '.mailbox.taken') || return 1
        [ "$t" -gt "${taken_before[$i]}" ] || return 1
    done
}
bed_wait 20 "every mailbox to have the envelope taken by host $x" all_taken
bed_log "host $x fetched the message while host $a was stopped; its mailboxes let go of it"

# The sender returns and learns it was delivered; still only one copy on x.
bed_start $a
bed_wait 40 "host $a to see the message delivered" bed_delivered $a $x "$id"
sleep 3
c=$(bed_inbox_count $x $a "$text")
[ "$c" -eq 1 ] || bed_fail "\"$text\" is $c times in host $x's inbox after host $a returned"
echo PASS
