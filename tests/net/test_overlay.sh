#!/usr/bin/env bash
# net test: 12 hosts, each in its own network namespace, form one overlay
# through host 1, and messages go between several pairs of them.
set -u
source "$(dirname "$0")/bed.sh"
bed_require
bed_init 12
bed_start_all

# Every host knows other DHT nodes, not only the bootstrap.
for ((i = 1; i <= BED_N; i++)); do
    bed_wait 30 "host $i to know at least 3 DHT peers" bed_has_peers "$i" 3
done
counts=""
for ((i = 1; i <= BED_N; i++)); do
    counts+=" h$i=$(bed_peer_count "$i")"
done
bed_log "DHT peers known:$counts"

# Pairs across the bed, none through host 1 only.
pairs=("2 12" "5 9" "12 1" "7 3" "11 6")
declare -A ids=()
for p in "${pairs[@]}"; do
    read -r a b <<<"$p"
    bed_contacts_both "$a" "$b"
done
for p in "${pairs[@]}"; do
    read -r a b <<<"$p"
    ids[$p]=$(bed_send "$a" "$b" "hello from $a to $b") || exit 1
    ids[r$p]=$(bed_send "$b" "$a" "and back from $b to $a") || exit 1
done
for p in "${pairs[@]}"; do
    read -r a b <<<"$p"
    bed_expect_delivery 30 "$a" "$b" "hello from $a to $b" "${ids[$p]}"
    bed_expect_delivery 30 "$b" "$a" "and back from $b to $a" "${ids[r$p]}"
done
bed_log "${#pairs[@]} pairs exchanged messages both ways, each delivered once"
echo PASS
