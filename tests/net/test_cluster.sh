#!/usr/bin/env bash
# net test: a private cluster. Twelve hosts, all `cluster_only = true;` (no
# public network at all), form one cluster from a single token: host 1 runs
# `cluster create`, the other eleven `cluster join TOKEN`, and messages go
# between several pairs, each exactly once and seen as delivered.
# Host 13 is an outsider on the same subnet: it knows host 1's cluster address
# and node key but not the secret. It tries a tampered copy of the real token
# (refused, bad checksum) and then a token of its own with the same name and
# host 1 as its entry (a wrong secret): its table for the cluster stays empty,
# host 1 counts its datagrams as dropped (auth), and nothing sent inside the
# cluster ever reaches it.
set -u
source "$(dirname "$0")/bed.sh"
bed_require
members=12
outsider=13
cport=7800
bed_init $outsider
for ((i = 1; i <= outsider; i++)); do
    BED_CONFIG_EXTRA[$i]='cluster_only = true;'
done

# A cluster_only node runs with no network until it creates or joins one
# (its control socket answers), so every host starts first.
bed_start 1
for ((i = 2; i <= outsider; i++)); do bed_launch "$i"; done
for ((i = 2; i <= outsider; i++)); do bed_wait_up "$i"; done
n=$(bed_cli 1 --json status | jq '.networks | length')
[ "$n" -eq 0 ] || bed_fail "a cluster_only node with no cluster is on $n networks"
bed_log "$outsider nodes running, on no network yet"

# Host 1 creates the cluster: the token on stdout, the fingerprint on stderr.
token=$(bed_cli 1 cluster create team --port $cport 2>"$BED_DIR/create.err") ||
    bed_fail "cluster create: $(cat "$BED_DIR/create.err")"
[[ "$token" == mpc1* ]] || bed_fail "cluster create printed \"$token\", not a token"
fp=$(bed_cli 1 --json cluster list | jq -r '.clusters[] | select(.name == "team") | .fingerprint')
grep -q -- "$fp" "$BED_DIR/create.err" || bed_fail "create did not show the fingerprint $fp"
entry1=$(bed_cli 1 --json status | jq -r '.networks[] | select(.name == "team") | .dht.bootstrap')
[[ "$entry1" == *"@$(bed_ip 1):$cport" ]] || bed_fail "host 1's cluster entry is \"$entry1\""

for ((i = 2; i <= members; i++)); do
    out=$(bed_cli "$i" cluster join "$token" --port $cport 2>&1) || bed_fail "join on host $i: $out"
done
for ((i = 2; i <= members; i++)); do
    f=$(bed_cli "$i" --json cluster list | jq -r '.clusters[] | select(.name == "team") | .fingerprint')
    [ "$f" = "$fp" ] || bed_fail "host $i joined fingerprint \"$f\", host 1 made $fp"
done
# Every member meets more than the node it joined through: the cluster's own
# DHT, on the cluster's port.
cluster_peers_besides_1() {
    local k
    k=$(bed_cli "$1" --json peers --network team |
        jq --arg not "$(bed_ip 1):$cport" --arg p ":$cport" \
            '[.peers[] | select(.address != $not and (.address | endswith($p)))] | length') &&
        [ "$k" -ge "$2" ]
}
for ((i = 1; i <= members; i++)); do
    bed_wait 30 "host $i to know 3 cluster peers besides host 1" cluster_peers_besides_1 "$i" 3
done
bed_log "12 members; host 12 knows $(bed_peer_count 12) cluster peers"

# Messages between several pairs, each exactly once and delivered.
pairs="2:12 5:9 12:3 1:7 8:1"
declare -A ids=()
for p in $pairs; do
    a=${p%%:*} b=${p##*:}
    bed_contacts_both "$a" "$b"
done
for p in $pairs; do
    a=${p%%:*} b=${p##*:}
    ids[$p]=$(bed_send "$a" "$b" "in the cluster from $a to $b") || exit 1
done
for p in $pairs; do
    a=${p%%:*} b=${p##*:}
    bed_expect_delivery 40 "$a" "$b" "in the cluster from $a to $b" "${ids[$p]}"
done
n=$(bed_cli 1 --json status | jq '[.networks[] | select(.cluster | not)] | length')
[ "$n" -eq 0 ] || bed_fail "host 1 runs a public network although cluster_only is set"
bed_log "messages delivered between 5 pairs, on the cluster only"

# --- the outsider (host 13): no secret.
bad=${token:0:20}$([ "${token:20:1}" = q ] && echo p || echo q)${token:21}
out=$(bed_cli $outsider cluster join "$bad" --port $cport 2>&1)
rc=$?
[ $rc -eq 65 ] || bed_fail "a tampered token gave exit $rc, not 65: $out"
n=$(bed_cli $outsider --json cluster list | jq '.clusters | length')
[ "$n" -eq 0 ] || bed_fail "the tampered token joined something"

auth_drops() {
    bed_cli "$1" --json status | jq '[.networks[] | select(.name == "team") | .dht.dropped.auth // 0] | add // 0'
}
auth_grew() { [ "$(auth_drops 1)" -gt "$1" ]; }
auth0=$(auth_drops 1)
# A token with host 1 as its entry but a secret of the outsider's own: the
# same name, the same address and node key, a wrong secret.
out=$(bed_cli $outsider cluster create team --port $cport --bootstrap "$entry1" 2>&1) ||
    bed_fail "outsider's cluster create: $out"
fpo=$(bed_cli $outsider --json cluster list | jq -r '.clusters[0].fingerprint')
[ "$fpo" != "$fp" ] || bed_fail "the outsider's cluster has the members' fingerprint"
bed_wait 20 "host 1 to drop the outsider's datagrams (auth)" auth_grew "$auth0"
bed_log "host 1 dropped $(($(auth_drops 1) - auth0)) datagrams of the outsider (auth)"

# A message inside the cluster while the outsider keeps trying.
ai=$(bed_addr 4) && bed_cli $outsider contacts add "$ai" --name h4 >/dev/null ||
    bed_fail "contacts add on the outsider"
bed_contacts_both 6 4
bed_contacts_both 4 11
ido=$(bed_send $outsider 4 "from the outsider") || exit 1
id6=$(bed_send 6 4 "secret from 6 to 4") || exit 1
id11=$(bed_send 4 11 "secret from 4 to 11") || exit 1
bed_expect_delivery 40 6 4 "secret from 6 to 4" "$id6"
bed_expect_delivery 40 4 11 "secret from 4 to 11" "$id11"
sleep 3
n=$(bed_cli $outsider --json peers --network team | jq '.peers | length')
[ "$n" -eq 0 ] || bed_fail "the outsider knows $n cluster peers"
s=$(bed_cli $outsider --json status)
echo "$s" | jq -e '.messages.received == 0 and .mailbox.held == 0 and (.links.up // 0) == 0' >/dev/null ||
    bed_fail "the outsider got something: $(echo "$s" | jq -c '{messages, mailbox, links}')"
n=$(bed_cli $outsider --json inbox --limit 1000 | jq '.messages | length')
[ "$n" -eq 0 ] || bed_fail "the outsider's inbox holds $n messages"
grep -q -r -a "secret from" "$BED_DIR/h$outsider" && bed_fail "a message's text is in the outsider's data dir"
st=$(bed_msg_state $outsider 4 "$ido")
[ "$st" != delivered ] || bed_fail "the outsider's message was delivered into the cluster"
n=$(bed_inbox_count 4 $outsider "from the outsider")
[ "$n" -eq 0 ] || bed_fail "the outsider's message reached host 4"
for ((i = 1; i <= members; i++)); do
    bed_cli "$i" --json peers --network team | jq -e --arg o "$(bed_ip $outsider)" \
        'all(.peers[]; .address | startswith($o + ":") | not)' >/dev/null ||
        bed_fail "host $i has the outsider in its cluster table"
done
bed_log "the outsider learnt no member and read nothing (its message: $st)"
echo PASS
