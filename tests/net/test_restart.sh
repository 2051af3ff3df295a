#!/usr/bin/env bash
# net test: a killed host. Host 4 dies (kill -9); what is sent to it while it
# is down arrives once it is back, whether through the senders' retries or a
# mailbox. And what host 4 had queued when it died is still sent after the
# restart (its outbox is on disk before send returns). Last, a restart with
# the bootstrap node gone rejoins through the saved peers.
set -u
source "$(dirname "$0")/bed.sh"
bed_require
bed_init 5
bed_start_all
a=2
b=5
x=4
bed_wait 30 "host $x to know DHT peers" bed_has_peers "$x" 2
bed_contacts_both "$a" "$x"
bed_contacts_both "$b" "$x"
id=$(bed_send "$a" "$x" "while alive") || exit 1
bed_expect_delivery 30 "$a" "$x" "while alive" "$id"

# Host 4 queues a message it cannot deliver yet (cable out), then dies.
bed_link_down "$x"
idx=$(bed_send "$x" "$a" "queued before the crash") || exit 1
bed_kill "$x"
bed_link_up "$x"
bed_log "host $x killed with one message queued"

id1=$(bed_send "$a" "$x" "sent while host $x is down") || exit 1
id2=$(bed_send "$b" "$x" "also sent while it is down") || exit 1
sleep 5
[ "$(bed_msg_state "$a" "$x" "$id1")" != delivered ] || bed_fail "delivered to a dead host"

bed_start "$x"
bed_log "host $x restarted"
bed_expect_delivery 60 "$a" "$x" "sent while host $x is down" "$id1"
bed_expect_delivery 60 "$b" "$x" "also sent while it is down" "$id2"
bed_expect_delivery 60 "$x" "$a" "queued before the crash" "$idx"
bed_log "mail to and from the killed host arrived once after its restart"

# A clean stop saves the routing table: with the bootstrap host (1) gone too,
# host 4 rejoins through the peers it saved, and mail still reaches it.
bed_stop "$x"
bed_stop 1
id3=$(bed_send "$a" "$x" "after the bootstrap node left") || exit 1
bed_start "$x"
bed_wait 30 "host $x to rejoin through its saved peers" bed_has_peers_besides "$x" 1 2
bed_expect_delivery 60 "$a" "$x" "after the bootstrap node left" "$id3"
bed_log "host $x rejoined without the bootstrap node: $(bed_peer_count "$x") peers"
echo PASS
