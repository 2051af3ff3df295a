#!/usr/bin/env bash
# net test: a partition then heal. Host 4's cable is pulled at the switch;
# messages sent to it and by it meanwhile are queued, and arrive once the
# link is back (direct delivery retries with backoff, at most 30 s apart:
# DELIVERY_RETRY_MAX_MS in node/delivery.h).
set -u
source "$(dirname "$0")/bed.sh"
bed_require
bed_init 5
bed_start_all
a=2
x=4
bed_wait 30 "host $a to know DHT peers" bed_has_peers "$a" 2
bed_wait 30 "host $x to know DHT peers" bed_has_peers "$x" 2
bed_contacts_both "$a" "$x"
id=$(bed_send "$a" "$x" "before the partition") || exit 1
bed_expect_delivery 30 "$a" "$x" "before the partition" "$id"

bed_link_down "$x"
bed_log "host $x cut off"
id1=$(bed_send "$a" "$x" "sent during the partition") || exit 1
id2=$(bed_send "$x" "$a" "written while cut off") || exit 1
sleep 6
[ "$(bed_msg_state "$a" "$x" "$id1")" != delivered ] || bed_fail "delivered across a cut link"
[ "$(bed_inbox_count "$x" "$a" "sent during the partition")" -eq 0 ] || bed_fail "arrived across a cut link"
bed_log "during the partition: host $a's message is $(bed_msg_state "$a" "$x" "$id1"), host $x's is $(bed_msg_state "$x" "$a" "$id2")"

bed_link_up "$x"
bed_log "link restored"
bed_expect_delivery 60 "$a" "$x" "sent during the partition" "$id1"
bed_expect_delivery 60 "$x" "$a" "written while cut off" "$id2"
bed_log "both messages arrived once after the heal"
echo PASS
