/*
 * fuzz_link_frame: arbitrary bytes as the decrypted frames of one link
 * (node/link_frame.c: fragments, reassembly, credit).
 *
 * Input: one mode byte, then chunks of a 2-byte big-endian length and that
 * many bytes (a short last chunk takes what is left), each fed to
 * link_flow_input as one frame until the first violation (where a link would
 * close). Every delivered message is "delivered" (credit owed back) and
 * grants are taken as a link would send them. Mode bit 0 instead treats the
 * rest of the input as one message, fragments it as a sender does and feeds
 * the frames back: it must come out whole. Invariants that must hold for
 * any input abort the run: a message never exceeds LINK_MESSAGE_MAX, credit
 * never exceeds the window, and a receiver never holds more than granted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/link_frame.h"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_flow(const struct link_flow *f)
{
    check(f->recv_msgs + f->return_msgs <= LINK_WINDOW_MSGS);
    check((uint64_t)f->recv_bytes + f->return_bytes <= LINK_WINDOW_BYTES);
    check(f->send_msgs <= LINK_WINDOW_MSGS);
    check(f->send_bytes <= LINK_WINDOW_BYTES);
    check(f->total <= LINK_MESSAGE_MAX && f->have <= f->total);
}

static void round_trip(const uint8_t *msg, size_t len)
{
    static uint8_t frame[LINK_FRAME_MAX];
    struct link_flow f;
    size_t off = 0;
    bool got = false;

    if (len > LINK_MESSAGE_MAX)
        len = LINK_MESSAGE_MAX;
    link_flow_init(&f);
    do {
        size_t chunk = 0;
        size_t hlen = link_frame_header(len, off, frame, &chunk);
        enum link_event ev;
        const uint8_t *out = NULL;
        size_t out_len = 0;
        check(hlen + chunk <= LINK_FRAME_MAX);
        memcpy(frame + hlen, msg + off, chunk);
        off += chunk;
        check(link_flow_input(&f, frame, hlen + chunk, &ev, &out, &out_len) ==
              LINK_VIOLATION_NONE);
        if (ev == LINK_EVENT_MESSAGE) {
            check(off == len && out_len == len && (len == 0 || memcmp(out, msg, len) == 0));
            got = true;
        } else {
            check(ev == LINK_EVENT_NONE && off < len);
        }
    } while (off < len);
    check(got);
    link_flow_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct link_flow f;

    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode & 1) {
        round_trip(data, size);
        return 0;
    }
    link_flow_init(&f);
    while (size > 0) {
        size_t n = size >= 2 ? (size_t)data[0] << 8 | data[1] : 0;
        size_t skip = size >= 2 ? 2 : size;
        data += skip;
        size -= skip;
        if (n > size)
            n = size;
        enum link_event ev;
        const uint8_t *msg = NULL;
        size_t len = 0;
        enum link_violation v = link_flow_input(&f, data, n, &ev, &msg, &len);
        data += n;
        size -= n;
        if (v != LINK_VIOLATION_NONE)
            break;
        if (ev == LINK_EVENT_MESSAGE) {
            check(len <= LINK_MESSAGE_MAX && (len == 0 || msg != NULL));
            volatile uint8_t sink = len > 0 ? msg[len - 1] : 0; /* must be readable */
            (void)sink;
            link_flow_delivered(&f, len);
            uint8_t grant[LINK_FRAME_CREDIT_BYTES];
            link_flow_grant(&f, grant);
        }
        /* Mode bit 1: spend send credit as a sender would. */
        if ((mode & 2) && link_flow_can_send(&f, 1000))
            link_flow_sent(&f, 1000);
        check_flow(&f);
    }
    link_flow_free(&f);
    return 0;
}
