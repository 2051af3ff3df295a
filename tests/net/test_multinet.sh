#!/usr/bin/env bash
# net test: one node on two networks. Hosts 1-5 are on the public network;
# host 5 also creates a private cluster that hosts 6 and 7 join with
# `cluster_only = true;` (they never touch the public network). Host 5 reaches
# host 3 (public only) and host 6 (cluster only), and each answers.
# What goes to host 6 stays in the cluster: with host 6 killed, host 5's mail
# for it is not left with mailboxes on the public network (mailboxes run on
# the primary network, here the public one): the public hosts hold nothing
# and host 5 stores nothing with any mailbox, and the mail arrives once host
# 6 is back. And host 6, cluster only, cannot reach public-only host 3.
set -u
source "$(dirname "$0")/bed.sh"
bed_require
both=5
pub=3
cl=6
cport=7800
bed_init 7
BED_CONFIG_EXTRA[6]='cluster_only = true;'
BED_CONFIG_EXTRA[7]='cluster_only = true;'
BED_NO_BOOTSTRAP="6 7"
bed_start_all
for ((i = 1; i <= 5; i++)); do
    bed_wait 30 "host $i to know public peers" bed_has_peers "$i" 3
done

token=$(bed_cli $both cluster create team --port $cport 2>/dev/null) || bed_fail "cluster create on host $both"
for i in 6 7; do
    out=$(bed_cli "$i" cluster join "$token" --port $cport 2>&1) || bed_fail "join on host $i: $out"
done
cluster_peers() { bed_cli "$1" --json peers --network team | jq '.peers | length'; }
has_cluster_peers() { [ "$(cluster_peers "$1")" -ge "$2" ]; }
for i in $both 6 7; do
    bed_wait 30 "host $i to know both other cluster members" has_cluster_peers "$i" 2
done
nets=$(bed_cli $both --json status | jq -r '[.networks[].name] | join(" ")')
[ "$nets" = "public team" ] || bed_fail "host $both is on \"$nets\", not \"public team\""
# The cluster's port is not the public network's, and no public host knows it.
for ((i = 1; i <= 4; i++)); do
    bed_cli "$i" --json peers | jq -e --arg p ":$cport" 'all(.peers[]; .address | endswith($p) | not)' \
        >/dev/null || bed_fail "host $i has a cluster address in its public table"
done
bed_log "host $both is on the public network and in cluster team with hosts 6 and 7"

# Each contact answers, on its own network.
bed_contacts_both $both $pub
bed_contacts_both $both $cl
id1=$(bed_send $both $pub "to the public-only host") || exit 1
id2=$(bed_send $both $cl "to the cluster-only host") || exit 1
bed_expect_delivery 40 $both $pub "to the public-only host" "$id1"
bed_expect_delivery 40 $both $cl "to the cluster-only host" "$id2"
id3=$(bed_send $pub $both "answer from the public-only host") || exit 1
id4=$(bed_send $cl $both "answer from the cluster-only host") || exit 1
bed_expect_delivery 40 $pub $both "answer from the public-only host" "$id3"
bed_expect_delivery 40 $cl $both "answer from the cluster-only host" "$id4"
bed_log "host $both reached a public-only and a cluster-only contact; both answered"

# Host 6 dies; mail for it waits on host 5, not with public mailboxes.
stored_public() {
    local i sum=0 s
    for ((i = 1; i <= 4; i++)); do
        s=$(bed_cli "$i" --json status | jq '.mailbox.stored') || return 1
        sum=$((sum + s))
    done
    echo $sum
}
s0=$(stored_public) || bed_fail "status on the public hosts"
bed_kill $cl
bed_log "host $cl killed"
id5=$(bed_send $both $cl "for the cluster host while it is down") || exit 1
# Host 5 finds host 6 unreachable (its "contacts offline" count: the point
# where mail for a contact on the primary network goes to mailboxes), then
# has some more seconds to get it wrong.
offline_seen() { [ "$(bed_cli $both --json status | jq '.messages.to_mailboxes.peers')" -ge 1 ]; }
bed_wait 40 "host $both to count host $cl as offline" offline_seen
sleep 8
s1=$(stored_public) || bed_fail "status on the public hosts"
[ "$s1" -eq "$s0" ] || bed_fail "public hosts stored $((s1 - s0)) envelopes while host $cl was down"
st=$(bed_cli $both --json status)
sent=$(echo "$st" | jq '.messages.to_mailboxes.stores_sent')
[ "$sent" -eq 0 ] || bed_fail "host $both sent $sent stores to mailboxes for a cluster-only contact"
state=$(bed_msg_state $both $cl "$id5")
[ "$state" = queued ] || [ "$state" = sent ] || bed_fail "the message for host $cl is \"$state\""
bed_log "host $cl offline: the message is still $state on host $both; no public mailbox holds it"
bed_start $cl
bed_expect_delivery 60 $both $cl "for the cluster host while it is down" "$id5"
bed_log "delivered in the cluster once host $cl was back"

# Cluster-only host 6 and public-only host 3 share no network.
a3=$(bed_addr $pub) || bed_fail "no address for host $pub"
bed_cli $cl contacts add "$a3" --name "h$pub" >/dev/null || bed_fail "contacts add on host $cl"
id6=$(bed_send $cl $pub "across networks") || exit 1
sleep 8
n=$(bed_inbox_count $pub $cl "across networks")
[ "$n" -eq 0 ] || bed_fail "cluster-only host $cl reached public-only host $pub"
state=$(bed_msg_state $cl $pub "$id6")
[ "$state" != delivered ] || bed_fail "host $cl sees its message to host $pub delivered"
echo PASS
