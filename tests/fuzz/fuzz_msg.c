/* Fuzz target: the messaging codecs (node/msg_wire.c, node/outbox_wire.c). The first byte picks
 * the decoder (a sixth: msg_split); whatever decodes must encode back to a form that decodes to
 * the same value. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/msg.h"
#include "node/outbox.h"

static void fuzz_msg(const uint8_t *data, size_t size)
{
    struct msg m, again;
    struct buf enc;
    uint8_t id[MSG_ID_BYTES], kind = 0;
    bool peeked = msg_peek(data, size, id, &kind) == MP_OK;
    if (msg_decode(data, size, &m) != MP_OK)
        return;
    /* What decodes, peeks the same (peek checks less, so may say yes more often). */
    if (!peeked || kind != m.kind || memcmp(id, m.id, MSG_ID_BYTES) != 0)
        abort();
    if (msg_encode(&m, &enc) != MP_OK || msg_decode(enc.data, enc.len, &again) != MP_OK)
        abort();
    if (memcmp(m.id, again.id, MSG_ID_BYTES) != 0 || m.kind != again.kind ||
        m.counter != again.counter || m.sent_at_ms != again.sent_at_ms ||
        m.text_len != again.text_len || (m.text && memcmp(m.text, again.text, m.text_len)) ||
        m.receipt_count != again.receipt_count ||
        memcmp(m.receipt_ids, again.receipt_ids, (size_t)m.receipt_count * MSG_ID_BYTES) != 0)
        abort();
    msg_clear(&m);
    msg_clear(&again);
    buf_free(&enc);
}

/* Whatever splits must bundle again into bytes that split into the same parts. */
static void fuzz_split(const uint8_t *data, size_t size)
{
    static struct msg_part parts[MSG_BUNDLE_MAX], again[MSG_BUNDLE_MAX];
    size_t n = 0, m = 0;
    struct buf enc;
    if (msg_split(data, size, parts, &n) != MP_OK)
        return;
    if (n == 0 || n > MSG_BUNDLE_MAX)
        abort();
    if (n == 1) {
        if (parts[0].data != data || parts[0].len != size)
            abort();
        return;
    }
    if (msg_bundle_encode(parts, n, &enc) != MP_OK ||
        msg_split(enc.data, enc.len, again, &m) != MP_OK || m != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len != again[i].len ||
            (parts[i].len && memcmp(parts[i].data, again[i].data, parts[i].len) != 0))
            abort();
    }
    buf_free(&enc);
}

static void fuzz_presence(const uint8_t *data, size_t size)
{
    struct msg_presence p, again;
    uint8_t out[1000];
    size_t len = 0;
    if (msg_presence_decode(data, size, &p) != MP_OK)
        return;
    if (msg_presence_encode(&p, out, sizeof(out), &len) != MP_OK ||
        msg_presence_decode(out, len, &again) != MP_OK || p.addr_count != again.addr_count ||
        p.mailbox_count != again.mailbox_count ||
        memcmp(p.node_key, again.node_key, MSG_KEY_BYTES) != 0)
        abort();
    for (unsigned i = 0; i < p.addr_count; i++) {
        if (!addr_equal(&p.addrs[i], &again.addrs[i]))
            abort();
    }
    for (unsigned i = 0; i < p.mailbox_count; i++) {
        if (!addr_equal(&p.mailbox_addrs[i], &again.mailbox_addrs[i]) ||
            memcmp(p.mailboxes[i], again.mailboxes[i], MSG_KEY_BYTES) != 0)
            abort();
    }
}

static void fuzz_link(const uint8_t *data, size_t size)
{
    struct msg_link l, again;
    struct buf enc;
    if (msg_link_decode(data, size, &l) != MP_OK)
        return;
    if (msg_link_encode(&l, &enc) != MP_OK || msg_link_decode(enc.data, enc.len, &again) != MP_OK ||
        l.type != again.type || l.envelope.len != again.envelope.len ||
        (l.envelope.len && memcmp(l.envelope.data, again.envelope.data, l.envelope.len)) ||
        memcmp(l.digest, again.digest, sizeof(l.digest)) != 0 || l.status != again.status ||
        l.expires_s != again.expires_s || memcmp(l.nonce, again.nonce, sizeof(l.nonce)) != 0 ||
        memcmp(l.account, again.account, sizeof(l.account)) != 0 ||
        memcmp(l.sig, again.sig, sizeof(l.sig)) != 0 || l.digest_count != again.digest_count ||
        memcmp(l.digests, again.digests, sizeof(l.digests)) != 0)
        abort();
    msg_link_clear(&l);
    msg_link_clear(&again);
    buf_free(&enc);
}

/* An entry's state row: what decodes encodes (as version 2) to a row that
 * decodes to the same; a version 2 row to the very same bytes. */
static void fuzz_state(const uint8_t *data, size_t size)
{
    struct outbox_entry e = {0}, again = {0};
    uint8_t enc[OUTBOX_STATE_ROW_MAX];
    size_t len = 0;
    if (outbox_state_decode(data, size, &e) != MP_OK)
        return;
    if (outbox_state_encode(&e, enc, &len) != MP_OK ||
        outbox_state_decode(enc, len, &again) != MP_OK || again.state != e.state ||
        again.expires_ms != e.expires_ms || again.sealed != e.sealed ||
        again.rider_count != e.rider_count ||
        (e.rider_count && memcmp(e.riders, again.riders, e.rider_count * sizeof(*e.riders))) ||
        (data[0] == 2 && (len != size || memcmp(enc, data, size) != 0)))
        abort();
    outbox_entry_clear(&e);
    outbox_entry_clear(&again);
}

static void fuzz_outbox(const uint8_t *data, size_t size)
{
    struct outbox_entry e, again;
    struct buf enc;
    fuzz_state(data, size);
    if (outbox_entry_decode(data, size, &e) != MP_OK)
        return;
    /* An older entry's envelope within makes it sealed; only the mark is
     * written again. */
    if ((e.envelope.len > 0 && !e.sealed) || outbox_entry_encode(&e, &enc) != MP_OK ||
        outbox_entry_decode(enc.data, enc.len, &again) != MP_OK || e.state != again.state ||
        e.created_ms != again.created_ms || memcmp(e.to, again.to, MSG_KEY_BYTES) != 0 ||
        e.plaintext.len != again.plaintext.len || e.sealed != again.sealed ||
        again.envelope.len != 0 ||
        (e.plaintext.len && memcmp(e.plaintext.data, again.plaintext.data, e.plaintext.len)) ||
        e.expires_ms != again.expires_ms || e.rider_count != again.rider_count ||
        (e.rider_count && memcmp(e.riders, again.riders, e.rider_count * sizeof(*e.riders))))
        abort();
    outbox_entry_clear(&e);
    outbox_entry_clear(&again);
    buf_free(&enc);
}

static void fuzz_event(const uint8_t *data, size_t size)
{
    struct outbox_event ev, again;
    struct buf enc;
    if (outbox_event_decode(data, size, &ev) != MP_OK)
        return;
    if (outbox_event_encode(&ev, &enc) != MP_OK ||
        outbox_event_decode(enc.data, enc.len, &again) != MP_OK || ev.type != again.type ||
        ev.at_ms != again.at_ms || ev.request != again.request ||
        memcmp(ev.peer, again.peer, MSG_KEY_BYTES) != 0 ||
        memcmp(ev.id, again.id, MSG_ID_BYTES) != 0 || ev.plaintext.len != again.plaintext.len ||
        (ev.plaintext.len && memcmp(ev.plaintext.data, again.plaintext.data, ev.plaintext.len)))
        abort();
    outbox_event_clear(&ev);
    outbox_event_clear(&again);
    buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 6) {
    case 5:
        fuzz_split(data + 1, size - 1);
        break;
    case 3:
        fuzz_outbox(data + 1, size - 1);
        break;
    case 4:
        fuzz_event(data + 1, size - 1);
        break;
    case 0:
        fuzz_msg(data + 1, size - 1);
        break;
    case 1:
        fuzz_presence(data + 1, size - 1);
        break;
    default:
        fuzz_link(data + 1, size - 1);
        break;
    }
    return 0;
}
