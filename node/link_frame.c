#include "node/link_frame.h"

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "crypto/secure.h"

void link_flow_init(struct link_flow *f)
{
    memset(f, 0, sizeof(*f));
    f->recv_msgs = LINK_WINDOW_MSGS;
    f->recv_bytes = LINK_WINDOW_BYTES;
    f->send_msgs = LINK_WINDOW_MSGS;
    f->send_bytes = LINK_WINDOW_BYTES;
}

static void drop_buffer(struct link_flow *f)
{
    if (f->buf != NULL) {
        secure_wipe(f->buf, f->total);
        free(f->buf);
    }
    f->buf = NULL;
    f->total = 0;
    f->have = 0;
    f->in_message = false;
}

void link_flow_free(struct link_flow *f)
{
    drop_buffer(f);
}

static enum link_violation take_data(struct link_flow *f, const uint8_t *frame, size_t len,
                                     enum link_event *event_out, const uint8_t **msg_out,
                                     size_t *len_out)
{
    if (len < LINK_FRAME_DATA_HEADER)
        return LINK_VIOLATION_MALFORMED;
    if (f->in_message)
        return LINK_VIOLATION_SEQUENCE;
    uint32_t total = bytes_get_u32(frame + 1);
    size_t chunk = len - LINK_FRAME_DATA_HEADER;
    if (total > LINK_MESSAGE_MAX)
        return LINK_VIOLATION_OVERSIZE;
    if (chunk > total)
        return LINK_VIOLATION_MALFORMED;
    /* The credit check comes before any allocation, so a peer can make us
     * hold no more than it was granted. */
    if (f->recv_msgs == 0 || total > f->recv_bytes)
        return LINK_VIOLATION_CREDIT;
    f->recv_msgs--;
    f->recv_bytes -= total;
    if (chunk == total) { /* the whole message in one frame: no copy */
        *event_out = LINK_EVENT_MESSAGE;
        *msg_out = frame + LINK_FRAME_DATA_HEADER;
        *len_out = total;
        return LINK_VIOLATION_NONE;
    }
    f->buf = malloc(total);
    if (f->buf == NULL)
        return LINK_VIOLATION_OVERSIZE; /* treated as too big for us: the link closes */
    f->total = total;
    f->have = chunk;
    f->in_message = true;
    memcpy(f->buf, frame + LINK_FRAME_DATA_HEADER, chunk);
    *event_out = LINK_EVENT_NONE;
    return LINK_VIOLATION_NONE;
}

static enum link_violation take_more(struct link_flow *f, const uint8_t *frame, size_t len,
                                     enum link_event *event_out, const uint8_t **msg_out,
                                     size_t *len_out)
{
    size_t chunk = len - LINK_FRAME_MORE_HEADER;
    if (!f->in_message)
        return LINK_VIOLATION_SEQUENCE;
    if (chunk == 0 || chunk > f->total - f->have)
        return LINK_VIOLATION_MALFORMED;
    memcpy(f->buf + f->have, frame + LINK_FRAME_MORE_HEADER, chunk);
    f->have += chunk;
    if (f->have < f->total) {
        *event_out = LINK_EVENT_NONE;
        return LINK_VIOLATION_NONE;
    }
    /* Complete: the buffer stays until the next frame or link_flow_free,
     * so the caller can deliver it in place. */
    f->in_message = false;
    *event_out = LINK_EVENT_MESSAGE;
    *msg_out = f->buf;
    *len_out = f->total;
    return LINK_VIOLATION_NONE;
}

static enum link_violation take_credit(struct link_flow *f, const uint8_t *frame, size_t len,
                                       enum link_event *event_out)
{
    if (len != LINK_FRAME_CREDIT_BYTES)
        return LINK_VIOLATION_MALFORMED;
    uint32_t msgs = bytes_get_u32(frame + 1);
    uint32_t bytes = bytes_get_u32(frame + 5);
    /* A grant can only give back what was used: past the window it is a lie. */
    if (msgs > LINK_WINDOW_MSGS - f->send_msgs || bytes > LINK_WINDOW_BYTES - f->send_bytes)
        return LINK_VIOLATION_CREDIT;
    f->send_msgs += msgs;
    f->send_bytes += bytes;
    *event_out = LINK_EVENT_CREDIT;
    return LINK_VIOLATION_NONE;
}

enum link_violation link_flow_input(struct link_flow *f, const uint8_t *frame, size_t len,
                                    enum link_event *event_out, const uint8_t **msg_out,
                                    size_t *len_out)
{
    *event_out = LINK_EVENT_NONE;
    *msg_out = NULL;
    *len_out = 0;
    /* A message completed by the previous frame has been delivered by now. */
    if (!f->in_message && f->buf != NULL)
        drop_buffer(f);
    if (len == 0 || len > LINK_FRAME_MAX)
        return LINK_VIOLATION_MALFORMED;
    switch (frame[0]) {
    case LINK_FRAME_DATA:
        return take_data(f, frame, len, event_out, msg_out, len_out);
    case LINK_FRAME_MORE:
        return take_more(f, frame, len, event_out, msg_out, len_out);
    case LINK_FRAME_CREDIT:
        return take_credit(f, frame, len, event_out);
    default:
        return LINK_VIOLATION_MALFORMED;
    }
}

void link_flow_delivered(struct link_flow *f, size_t len)
{
    f->return_msgs++;
    f->return_bytes += (uint32_t)len;
}

bool link_flow_grant(struct link_flow *f, uint8_t out[LINK_FRAME_CREDIT_BYTES])
{
    if (f->return_msgs < LINK_GRANT_MSGS && f->return_bytes < LINK_GRANT_BYTES)
        return false;
    out[0] = LINK_FRAME_CREDIT;
    bytes_put_u32(out + 1, f->return_msgs);
    bytes_put_u32(out + 5, f->return_bytes);
    f->recv_msgs += f->return_msgs;
    f->recv_bytes += f->return_bytes;
    f->return_msgs = 0;
    f->return_bytes = 0;
    return true;
}

bool link_flow_can_send(const struct link_flow *f, size_t len)
{
    return f->send_msgs > 0 && len <= f->send_bytes;
}

void link_flow_sent(struct link_flow *f, size_t len)
{
    f->send_msgs--;
    f->send_bytes -= (uint32_t)len;
}

size_t link_frame_wire_size(size_t len)
{
    size_t size = 2 + LINK_FRAME_DATA_HEADER + NOISE_TAG_BYTES;
    size_t first = len < LINK_FRAME_DATA_ROOM ? len : LINK_FRAME_DATA_ROOM;
    size_t rest = len - first;
    size_t more = (rest + LINK_FRAME_MORE_ROOM - 1) / LINK_FRAME_MORE_ROOM;
    return size + len + more * (2 + LINK_FRAME_MORE_HEADER + NOISE_TAG_BYTES);
}

size_t link_frame_header(size_t total, size_t offset, uint8_t out[LINK_FRAME_DATA_HEADER],
                         size_t *chunk_out)
{
    size_t left = total - offset;
    if (offset == 0) {
        out[0] = LINK_FRAME_DATA;
        bytes_put_u32(out + 1, (uint32_t)total);
        *chunk_out = left < LINK_FRAME_DATA_ROOM ? left : LINK_FRAME_DATA_ROOM;
        return LINK_FRAME_DATA_HEADER;
    }
    out[0] = LINK_FRAME_MORE;
    *chunk_out = left < LINK_FRAME_MORE_ROOM ? left : LINK_FRAME_MORE_ROOM;
    return LINK_FRAME_MORE_HEADER;
}
