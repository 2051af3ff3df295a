#!/usr/bin/env bash
# net test: packet loss. Hosts 5 and 6 reach the others through a lossy link:
# tc netem where the kernel has it, otherwise the in-test lossy relay
# (lossy_relay.py: drops UDP datagrams and cuts TCP connections now and then).
# The overlay still forms and every message arrives exactly once.
set -u
source "$(dirname "$0")/bed.sh"
bed_require
BED_TCP_CUT_EVERY=6
bed_init 6 --lossy "5 6" --loss 20
bed_start_all
for ((i = 1; i <= BED_N; i++)); do
    bed_wait 45 "host $i to know at least 3 DHT peers" bed_has_peers "$i" 3
done
counts=""
for ((i = 1; i <= BED_N; i++)); do
    counts+=" h$i=$(bed_peer_count "$i")"
done
bed_log "overlay formed despite the loss; DHT peers known:$counts"

# Lossy to lossy (two lossy links), clean to lossy, lossy to clean.
pairs=("5 6" "2 5" "6 3")
rounds=4
declare -A ids=()
for p in "${pairs[@]}"; do
    read -r a b <<<"$p"
    bed_contacts_both "$a" "$b"
done
for ((k = 1; k <= rounds; k++)); do
    for p in "${pairs[@]}"; do
        read -r a b <<<"$p"
        ids[$p.$k]=$(bed_send "$a" "$b" "lossy $k from $a to $b") || exit 1
        ids[r$p.$k]=$(bed_send "$b" "$a" "lossy $k back from $b to $a") || exit 1
    done
    sleep 1
done
for ((k = 1; k <= rounds; k++)); do
    for p in "${pairs[@]}"; do
        read -r a b <<<"$p"
        bed_expect_delivery 60 "$a" "$b" "lossy $k from $a to $b" "${ids[$p.$k]}"
        bed_expect_delivery 60 "$b" "$a" "lossy $k back from $b to $a" "${ids[r$p.$k]}"
    done
done
bed_log "$((rounds * ${#pairs[@]} * 2)) messages over lossy links, each delivered exactly once"
if [ "$BED_LOSS_MODE" = relay ]; then
    sleep 5 # the relays print their counters every 5 s
    for i in 5 6; do
        line=$(grep '^relay ' "$BED_DIR/relay$i.log" | tail -1)
        bed_log "host $i relay: $line"
        [[ "$line" =~ udp_dropped=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] ||
            bed_fail "host $i's relay dropped nothing: the test saw no loss"
    done
fi
echo PASS
