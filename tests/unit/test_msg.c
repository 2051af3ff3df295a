/* Unit tests for node/msg_wire.c: each codec round-trips exactly and refuses
 * what it must (wrong version, types, counts, sizes, bad UTF-8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/msg.h"
#include "node/outbox.h"
#include "tests/support/outbox_v3_wire.h"

static void test_text_round_trip(void **state)
{
    (void)state;
    struct msg m = {.sent_at_ms = 1796000000000ull, .counter = 42, .kind = MSG_KIND_TEXT};
    memset(m.id, 0xa5, sizeof(m.id));
    m.text = "h\xc3\xa9llo \xf0\x9f\x90\xa6";
    m.text_len = strlen(m.text);
    struct buf enc;
    assert_int_equal(msg_encode(&m, &enc), MP_OK);
    struct msg back;
    assert_int_equal(msg_decode(enc.data, enc.len, &back), MP_OK);
    assert_memory_equal(back.id, m.id, MSG_ID_BYTES);
    assert_int_equal(back.sent_at_ms, m.sent_at_ms);
    assert_int_equal(back.counter, 42);
    assert_int_equal(back.kind, MSG_KIND_TEXT);
    assert_int_equal(back.text_len, m.text_len);
    assert_string_equal(back.text, m.text);
    msg_clear(&back);

    /* Every strict prefix is refused, never half-read. */
    for (size_t cut = 0; cut < enc.len; cut++)
        assert_int_not_equal(msg_decode(enc.data, cut, &back), MP_OK);
    buf_free(&enc);
}

static void test_text_limits(void **state)
{
    (void)state;
    struct msg m = {.kind = MSG_KIND_TEXT};
    struct buf enc;
    char *big = malloc(MSG_TEXT_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', MSG_TEXT_MAX + 1);
    big[MSG_TEXT_MAX + 1] = '\0';
    m.text = big;
    m.text_len = MSG_TEXT_MAX;
    assert_int_equal(msg_encode(&m, &enc), MP_OK); /* exactly the cap */
    struct msg back;
    assert_int_equal(msg_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.text_len, MSG_TEXT_MAX);
    msg_clear(&back);
    buf_free(&enc);
    m.text_len = MSG_TEXT_MAX + 1;
    assert_int_equal(msg_encode(&m, &enc), MP_ERR_INVAL);
    free(big);

    m.text = "a\xff";
    m.text_len = 2;
    assert_int_equal(msg_encode(&m, &enc), MP_ERR_INVAL); /* not UTF-8 */
    m.kind = 9;
    m.text = "a";
    m.text_len = 1;
    assert_int_equal(msg_encode(&m, &enc), MP_ERR_INVAL);
}

static void test_receipt_round_trip(void **state)
{
    (void)state;
    struct msg m = {.counter = 7, .kind = MSG_KIND_RECEIPT, .receipt_count = 3};
    for (unsigned i = 0; i < 3; i++)
        memset(m.receipt_ids[i], (int)i + 1, MSG_ID_BYTES);
    struct buf enc;
    assert_int_equal(msg_encode(&m, &enc), MP_OK);
    struct msg back;
    assert_int_equal(msg_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.kind, MSG_KIND_RECEIPT);
    assert_int_equal(back.receipt_count, 3);
    assert_memory_equal(back.receipt_ids, m.receipt_ids, 3 * MSG_ID_BYTES);
    assert_null(back.text);
    msg_clear(&back);
    /* A peek tells a receipt by its kind and id; a cut one not at all. */
    uint8_t id[MSG_ID_BYTES], kind = 0;
    memset(m.id, 9, MSG_ID_BYTES);
    buf_free(&enc);
    assert_int_equal(msg_encode(&m, &enc), MP_OK);
    assert_int_equal(msg_peek(enc.data, enc.len, id, &kind), MP_OK);
    assert_int_equal(kind, MSG_KIND_RECEIPT);
    assert_memory_equal(id, m.id, MSG_ID_BYTES);
    for (size_t cut = 0; cut < enc.len; cut++)
        assert_int_not_equal(msg_peek(enc.data, cut, id, &kind), MP_OK);
    buf_free(&enc);
    m.receipt_count = 0;
    assert_int_equal(msg_encode(&m, &enc), MP_ERR_INVAL);
    m.receipt_count = MSG_RECEIPT_IDS_MAX + 1;
    assert_int_equal(msg_encode(&m, &enc), MP_ERR_INVAL);
}

static void test_envelope_receipt_round_trip(void **state)
{
    (void)state;
    struct msg m = {.counter = 9, .kind = MSG_KIND_ENVELOPE_RECEIPT};
    memset(m.digest, 0xe7, sizeof(m.digest));
    struct buf enc;
    assert_int_equal(msg_encode(&m, &enc), MP_OK);
    struct msg back;
    assert_int_equal(msg_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.kind, MSG_KIND_ENVELOPE_RECEIPT);
    assert_int_equal(back.counter, 9);
    assert_memory_equal(back.digest, m.digest, sizeof(m.digest));
    msg_clear(&back);
    /* A digest one byte short is refused. */
    enc.data[enc.len - 33] = 31; /* bin8 length */
    assert_int_equal(msg_decode(enc.data, enc.len - 1, &back), MP_ERR_MALFORMED);
    buf_free(&enc);
}

static void test_msg_refuses(void **state)
{
    (void)state;
    struct msg back;
    /* [2, ...]: a newer version is named as such. */
    const uint8_t v2[] = {0x96, 0x02, 0xc4, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          0x00, 0x00, 0x01, 0xa1, 'x'};
    assert_int_equal(msg_decode(v2, sizeof(v2), &back), MP_ERR_WIRE_VERSION);
    /* Version 1 but the text holds a NUL. */
    const uint8_t nul[] = {0x96, 0x01, 0xc4, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                           0x00, 0x00, 0x01, 0xa2, 'x', 0};
    assert_int_equal(msg_decode(nul, sizeof(nul), &back), MP_ERR_MALFORMED);
    /* Same with a good text decodes: the test above failed for the NUL only. */
    const uint8_t good[] = {0x96, 0x01, 0xc4, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0x00, 0x00, 0x01, 0xa2, 'x', 'y'};
    assert_int_equal(msg_decode(good, sizeof(good), &back), MP_OK);
    assert_string_equal(back.text, "xy");
    msg_clear(&back);
    /* Kind 3 is unknown. */
    const uint8_t kind3[] = {0x96, 0x01, 0xc4, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                             0x00, 0x00, 0x03, 0xa1, 'x'};
    assert_int_equal(msg_decode(kind3, sizeof(kind3), &back), MP_ERR_MALFORMED);
}

static void test_bundle(void **state)
{
    (void)state;
    static struct msg_part parts[MSG_BUNDLE_MAX], back[MSG_BUNDLE_MAX];
    struct buf pts[3], enc;
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        struct msg m = {.kind = MSG_KIND_TEXT, .counter = (uint64_t)i + 1};
        char text[8];
        snprintf(text, sizeof(text), "hi %d", i);
        m.text = text;
        m.text_len = strlen(text);
        memset(m.id, i, MSG_ID_BYTES);
        assert_int_equal(msg_encode(&m, &pts[i]), MP_OK);
        parts[i].data = pts[i].data;
        parts[i].len = pts[i].len;
    }
    /* One message is its own plaintext: split gives it back whole. */
    assert_int_equal(msg_split(pts[0].data, pts[0].len, back, &n), MP_OK);
    assert_int_equal(n, 1);
    assert_ptr_equal(back[0].data, pts[0].data);
    assert_int_equal(back[0].len, pts[0].len);
    /* A bundle gives its messages in order, each a message again. */
    assert_int_equal(msg_bundle_encode(parts, 3, &enc), MP_OK);
    assert_true(enc.len <= MSG_BUNDLE_OVERHEAD + 3 * MSG_BUNDLE_PART_OVERHEAD + pts[0].len +
                               pts[1].len + pts[2].len);
    assert_int_equal(msg_split(enc.data, enc.len, back, &n), MP_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        struct msg m;
        assert_int_equal(back[i].len, pts[i].len);
        assert_memory_equal(back[i].data, pts[i].data, pts[i].len);
        assert_int_equal(msg_decode(back[i].data, back[i].len, &m), MP_OK);
        assert_true(m.counter == (uint64_t)i + 1);
        msg_clear(&m);
    }
    /* A bundle is not a message: msg_decode and msg_peek name its version. */
    struct msg m;
    uint8_t id[MSG_ID_BYTES], kind = 0;
    assert_int_equal(msg_decode(enc.data, enc.len, &m), MP_ERR_WIRE_VERSION);
    assert_int_equal(msg_peek(enc.data, enc.len, id, &kind), MP_ERR_WIRE_VERSION);
    /* A message peeks to its id and kind. */
    assert_int_equal(msg_peek(pts[2].data, pts[2].len, id, &kind), MP_OK);
    assert_int_equal(kind, MSG_KIND_TEXT);
    uint8_t id2[MSG_ID_BYTES];
    memset(id2, 2, sizeof(id2));
    assert_memory_equal(id, id2, MSG_ID_BYTES);
    for (size_t cut = 0; cut < enc.len; cut++)
        assert_int_not_equal(msg_split(enc.data, cut, back, &n), MP_OK);
    /* Counts out of range, and a bundle over the plaintext cap, are refused. */
    assert_int_equal(msg_bundle_encode(parts, 1, &enc), MP_ERR_INVAL);
    assert_int_equal(msg_bundle_encode(parts, MSG_BUNDLE_MAX + 1, &enc), MP_ERR_INVAL);
    uint8_t *big = calloc(1, MSG_WIRE_MAX);
    assert_non_null(big);
    struct msg_part two[2] = {{big, MSG_WIRE_MAX / 2}, {big, MSG_WIRE_MAX / 2}};
    assert_int_equal(msg_bundle_encode(two, 2, &enc), MP_ERR_TOO_BIG);
    free(big);
    /* [2, [bin]] (one part) and [2, [1]] (not bins), [3, ...] (a newer version). */
    static const uint8_t one_part[] = {0x92, 0x02, 0x91, 0xc4, 0x01, 0x00};
    static const uint8_t not_bin[] = {0x92, 0x02, 0x92, 0x01, 0x01};
    static const uint8_t newer[] = {0x92, 0x03, 0x90};
    assert_int_equal(msg_split(one_part, sizeof(one_part), back, &n), MP_ERR_MALFORMED);
    assert_int_equal(msg_split(not_bin, sizeof(not_bin), back, &n), MP_ERR_MALFORMED);
    assert_int_equal(msg_split(newer, sizeof(newer), back, &n), MP_ERR_WIRE_VERSION);
    for (int i = 0; i < 3; i++)
        buf_free(&pts[i]);
}

static void test_presence_round_trip(void **state)
{
    (void)state;
    struct msg_presence p = {.addr_count = 2, .mailbox_count = 1};
    memset(p.node_key, 7, sizeof(p.node_key));
    assert_int_equal(addr_parse("127.0.0.1:7700", &p.addrs[0]), MP_OK);
    assert_int_equal(addr_parse("[::1]:1", &p.addrs[1]), MP_OK);
    memset(p.mailboxes[0], 9, MSG_KEY_BYTES);
    assert_int_equal(addr_parse("10.1.2.3:7701", &p.mailbox_addrs[0]), MP_OK);
    uint8_t out[1000];
    size_t len = 0;
    assert_int_equal(msg_presence_encode(&p, out, sizeof(out), &len), MP_OK);
    struct msg_presence back;
    assert_int_equal(msg_presence_decode(out, len, &back), MP_OK);
    assert_memory_equal(back.node_key, p.node_key, MSG_KEY_BYTES);
    assert_int_equal(back.addr_count, 2);
    assert_true(addr_equal(&back.addrs[0], &p.addrs[0]));
    assert_true(addr_equal(&back.addrs[1], &p.addrs[1]));
    assert_int_equal(back.mailbox_count, 1);
    assert_memory_equal(back.mailboxes[0], p.mailboxes[0], MSG_KEY_BYTES);
    assert_true(addr_equal(&back.mailbox_addrs[0], &p.mailbox_addrs[0]));
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal(msg_presence_decode(out, cut, &back), MP_OK);
    p.addr_count = MSG_PRESENCE_ADDRS_MAX + 1;
    assert_int_equal(msg_presence_encode(&p, out, sizeof(out), &len), MP_ERR_INVAL);
    assert_int_equal(msg_presence_encode(&p, out, 10, &len), MP_ERR_INVAL);
    p.addr_count = 1;
    assert_int_equal(msg_presence_encode(&p, out, 10, &len), MP_ERR_TOO_BIG);
}

static void test_link_round_trip(void **state)
{
    (void)state;
    struct msg_link l = {.type = MSG_LINK_ENVELOPE};
    buf_init(&l.envelope, MSG_LINK_ENVELOPE_MAX);
    uint8_t env[345];
    memset(env, 0x3c, sizeof(env));
    assert_int_equal(buf_append(&l.envelope, env, sizeof(env)), MP_OK);
    struct buf enc;
    assert_int_equal(msg_link_encode(&l, &enc), MP_OK);
    struct msg_link back;
    assert_int_equal(msg_link_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.type, MSG_LINK_ENVELOPE);
    assert_int_equal(back.envelope.len, sizeof(env));
    assert_memory_equal(back.envelope.data, env, sizeof(env));
    msg_link_clear(&back);
    buf_free(&enc);
    msg_link_clear(&l);

    struct msg_link ack = {.type = MSG_LINK_ACK};
    memset(ack.digest, 0xd1, sizeof(ack.digest));
    assert_int_equal(msg_link_encode(&ack, &enc), MP_OK);
    assert_int_equal(msg_link_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.type, MSG_LINK_ACK);
    assert_memory_equal(back.digest, ack.digest, sizeof(ack.digest));
    msg_link_clear(&back);
    buf_free(&enc);

    /* The ack that is also a delivery receipt: the same digest, its own type. */
    ack.type = MSG_LINK_DELIVERED;
    assert_int_equal(msg_link_encode(&ack, &enc), MP_OK);
    assert_int_equal(enc.data[1], 0x0b);
    assert_int_equal(msg_link_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.type, MSG_LINK_DELIVERED);
    assert_memory_equal(back.digest, ack.digest, sizeof(ack.digest));
    msg_link_clear(&back);
    buf_free(&enc);
    const uint8_t short_digest[] = {0x92, 0x0b, 0xc4, 0x01, 0x00};
    assert_int_equal(msg_link_decode(short_digest, sizeof(short_digest), &back), MP_ERR_MALFORMED);

    /* A hello keeps every feature bit, known or not; it has one field. */
    struct msg_link hello = {.type = MSG_LINK_HELLO,
                             .features = MSG_FEATURE_DELIVERED | 0x80000000u};
    assert_int_equal(msg_link_encode(&hello, &enc), MP_OK);
    assert_int_equal(msg_link_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.type, MSG_LINK_HELLO);
    assert_int_equal(back.features, MSG_FEATURE_DELIVERED | 0x80000000u);
    msg_link_clear(&back);
    buf_free(&enc);
    const uint8_t bare_hello[] = {0x91, 0x0c};
    assert_int_equal(msg_link_decode(bare_hello, sizeof(bare_hello), &back), MP_ERR_MALFORMED);

    const uint8_t unknown[] = {0x92, 0x0d, 0xc0}; /* type 13 */
    assert_int_equal(msg_link_decode(unknown, sizeof(unknown), &back), MP_ERR_WIRE_VERSION);
    const uint8_t empty_env[] = {0x92, 0x01, 0xc4, 0x00};
    assert_int_equal(msg_link_decode(empty_env, sizeof(empty_env), &back), MP_ERR_MALFORMED);
}

/* Every mailbox message survives encode and decode field for field, and
 * what the decoder would refuse the encoder refuses too. */
static void test_mailbox_link_round_trip(void **state)
{
    (void)state;
    struct msg_link in[7];
    memset(in, 0, sizeof(in));
    in[0].type = MSG_LINK_MB_STORED;
    memset(in[0].digest, 0xd2, 32);
    in[0].status = MSG_MB_FULL;
    in[0].expires_s = 1790000000u;
    in[1].type = MSG_LINK_MB_HELLO;
    in[2].type = MSG_LINK_MB_CHALLENGE;
    memset(in[2].nonce, 0x4e, sizeof(in[2].nonce));
    in[3].type = MSG_LINK_MB_FETCH;
    memset(in[3].account, 0xac, sizeof(in[3].account));
    memset(in[3].sig, 0x51, sizeof(in[3].sig));
    in[4].type = MSG_LINK_MB_TAKEN;
    in[4].digest_count = MSG_MB_TAKEN_MAX;
    for (unsigned i = 0; i < MSG_MB_TAKEN_MAX; i++)
        memset(in[4].digests[i], (int)i, 32);
    in[5].type = MSG_LINK_MB_END;
    in[5].status = MSG_MB_END_REFUSED;
    in[6].type = MSG_LINK_MB_MAIL;
    for (size_t k = 0; k < 7; k++) {
        struct buf enc;
        struct msg_link back;
        buf_init(&in[k].envelope, MSG_LINK_ENVELOPE_MAX);
        if (k == 6)
            assert_int_equal(buf_append(&in[k].envelope, "sealed", 6), MP_OK);
        assert_int_equal(msg_link_encode(&in[k], &enc), MP_OK);
        assert_int_equal(msg_link_decode(enc.data, enc.len, &back), MP_OK);
        assert_int_equal(back.type, in[k].type);
        assert_int_equal(back.status, in[k].status);
        assert_true(back.expires_s == in[k].expires_s);
        assert_memory_equal(back.digest, in[k].digest, 32);
        assert_memory_equal(back.nonce, in[k].nonce, sizeof(back.nonce));
        assert_memory_equal(back.account, in[k].account, sizeof(back.account));
        assert_memory_equal(back.sig, in[k].sig, sizeof(back.sig));
        assert_int_equal(back.digest_count, in[k].digest_count);
        assert_memory_equal(back.digests, in[k].digests, sizeof(back.digests));
        assert_int_equal(back.envelope.len, in[k].envelope.len);
        msg_link_clear(&back);
        buf_free(&enc);
    }
    /* A store carries the expiry it may be held until. */
    struct msg_link store = {.type = MSG_LINK_MB_STORE, .expires_s = 1797000000u}, sback;
    struct buf senc;
    buf_init(&store.envelope, MSG_LINK_ENVELOPE_MAX);
    assert_int_equal(buf_append(&store.envelope, "sealed", 6), MP_OK);
    assert_int_equal(msg_link_encode(&store, &senc), MP_OK);
    assert_int_equal(msg_link_decode(senc.data, senc.len, &sback), MP_OK);
    assert_int_equal(sback.type, MSG_LINK_MB_STORE);
    assert_true(sback.expires_s == store.expires_s);
    assert_int_equal(sback.envelope.len, 6);
    msg_link_clear(&sback);
    msg_link_clear(&store);
    buf_free(&senc);
    /* Out of range: refused by the encoder. */
    struct buf enc;
    in[0].status = MSG_MB_STATUS_MAX + 1;
    assert_int_equal(msg_link_encode(&in[0], &enc), MP_ERR_INVAL);
    in[4].digest_count = 0;
    assert_int_equal(msg_link_encode(&in[4], &enc), MP_ERR_INVAL);
    in[6].type = MSG_LINK_MB_STORE;
    buf_free(&in[6].envelope);
    buf_init(&in[6].envelope, MSG_LINK_ENVELOPE_MAX);
    assert_int_equal(msg_link_encode(&in[6], &enc), MP_ERR_INVAL);
    /* A fetch with a short signature, and an unknown type, by hand. */
    static const uint8_t short_fetch[] = {0x93, 0x07, 0xc4, 0x01, 0x00, 0xc4, 0x01, 0x00};
    static const uint8_t unknown[] = {0x91, 0x0d};
    struct msg_link back;
    assert_int_equal(msg_link_decode(short_fetch, sizeof(short_fetch), &back), MP_ERR_MALFORMED);
    assert_int_equal(msg_link_decode(unknown, sizeof(unknown), &back), MP_ERR_WIRE_VERSION);
    for (size_t k = 0; k < 7; k++)
        msg_link_clear(&in[k]);
}

static void test_outbox_round_trip(void **state)
{
    (void)state;
    struct outbox_entry e = {.state = OUTBOX_SENT, .created_ms = 1796000000123ull};
    memset(e.to, 0x42, sizeof(e.to));
    buf_init(&e.plaintext, MSG_WIRE_MAX);
    buf_init(&e.envelope, MSG_LINK_ENVELOPE_MAX);
    assert_int_equal(buf_append(&e.plaintext, "plain", 5), MP_OK);
    struct buf enc;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_OK); /* empty envelope: not sealed yet */
    struct outbox_entry back;
    assert_int_equal(outbox_entry_decode(enc.data, enc.len, &back), MP_OK);
    assert_memory_equal(back.to, e.to, 32);
    assert_int_equal(back.state, OUTBOX_SENT);
    assert_int_equal(back.created_ms, e.created_ms);
    assert_int_equal(back.plaintext.len, 5);
    assert_memory_equal(back.plaintext.data, "plain", 5);
    assert_int_equal(back.envelope.len, 0);
    outbox_entry_clear(&back);
    for (size_t cut = 0; cut < enc.len; cut++)
        assert_int_not_equal(outbox_entry_decode(enc.data, cut, &back), MP_OK);
    buf_free(&enc);
    /* Sealed: the entry says so, and its envelope is kept apart (never
     * written within); one holding an envelope it does not mark sealed
     * would lose it, so is refused. */
    assert_int_equal(buf_append(&e.envelope, "sealed!", 7), MP_OK);
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_ERR_INVAL);
    e.sealed = true;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_OK);
    assert_int_equal(outbox_entry_decode(enc.data, enc.len, &back), MP_OK);
    assert_true(back.sealed);
    assert_int_equal(back.envelope.len, 0);
    assert_memory_equal(back.plaintext.data, "plain", 5);
    outbox_entry_clear(&back);
    buf_free(&enc);
    /* Held by mailboxes until an expiry: state and expiry survive. */
    e.state = OUTBOX_MAILBOX;
    e.expires_ms = 1797209600000ull;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_OK);
    assert_int_equal(outbox_entry_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.state, OUTBOX_MAILBOX);
    assert_true(back.expires_ms == e.expires_ms);
    outbox_entry_clear(&back);
    buf_free(&enc);
    /* The head of a bundle lists the entries riding in its envelope. */
    uint64_t riders[3] = {7, 9, 1ull << 40};
    e.riders = riders;
    e.rider_count = 3;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_OK);
    assert_int_equal(outbox_entry_decode(enc.data, enc.len, &back), MP_OK);
    assert_int_equal(back.rider_count, 3);
    assert_memory_equal(back.riders, riders, sizeof(riders));
    outbox_entry_clear(&back);
    buf_free(&enc);
    e.rider_count = MSG_BUNDLE_MAX;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_ERR_INVAL);
    /* Riders on an entry not sealed, and nothing else wrong: only a sealed
     * head has riders, in an entry or a state row. */
    buf_free(&e.envelope);
    e.rider_count = 3;
    e.sealed = false;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_ERR_INVAL);
    uint8_t unsealed_row[OUTBOX_STATE_ROW_MAX];
    size_t unsealed_len = 0;
    assert_int_equal(outbox_state_encode(&e, unsealed_row, &unsealed_len), MP_ERR_INVAL);
    e.sealed = true;
    e.riders = NULL;
    e.rider_count = 0;
    e.state = OUTBOX_EXPIRED;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_OK);
    buf_free(&enc);
    e.state = 9;
    assert_int_equal(outbox_entry_encode(&e, &enc), MP_ERR_INVAL);

    /* A state row: state, expiry, seal and riders, nothing else of the entry. */
    uint8_t row[OUTBOX_STATE_ROW_MAX];
    size_t row_len = 0;
    uint64_t two_riders[2] = {11, 1ull << 50};
    e.state = OUTBOX_MAILBOX;
    e.expires_ms = 1797209600000ull;
    e.sealed = true;
    e.riders = two_riders;
    e.rider_count = 2;
    assert_int_equal(outbox_state_encode(&e, row, &row_len), MP_OK);
    assert_int_equal(row_len, 13 + 2 * 8);
    struct outbox_entry moved = {.state = OUTBOX_QUEUED, .created_ms = 5};
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_OK);
    assert_int_equal(moved.state, OUTBOX_MAILBOX);
    assert_true(moved.expires_ms == 1797209600000ull);
    assert_true(moved.created_ms == 5);
    assert_true(moved.sealed);
    assert_int_equal(moved.rider_count, 2);
    assert_memory_equal(moved.riders, two_riders, sizeof(two_riders));
    /* Short, long, another version, a state, flag or count out of range:
     * refused, e unchanged. */
    moved.state = OUTBOX_SENT;
    for (size_t cut = 0; cut < row_len; cut++)
        assert_int_not_equal(outbox_state_decode(row, cut, &moved), MP_OK);
    uint8_t longer[13 + 2 * 8 + 1] = {0};
    memcpy(longer, row, row_len);
    assert_int_equal(outbox_state_decode(longer, sizeof(longer), &moved), MP_ERR_MALFORMED);
    row[0] = 3;
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_ERR_WIRE_VERSION);
    row[0] = 2;
    row[1] = 0;
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_ERR_MALFORMED);
    row[1] = OUTBOX_STATE_MAX + 1;
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_ERR_MALFORMED);
    row[1] = OUTBOX_SENT;
    row[10] = 0x02; /* a flag no version has */
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_ERR_MALFORMED);
    row[10] = 0x00; /* riders, not sealed: only a head has riders */
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_ERR_MALFORMED);
    row[10] = 0x01;
    row[12] = 3; /* three riders in the room of two */
    assert_int_equal(outbox_state_decode(row, row_len, &moved), MP_ERR_MALFORMED);
    /* More riders than a bundle has, their room there too. */
    static uint8_t many[OUTBOX_STATE_ROW_MAX + 8];
    memcpy(many, row, OUTBOX_STATE_FIXED);
    many[11] = MSG_BUNDLE_MAX >> 8;
    many[12] = MSG_BUNDLE_MAX & 0xff;
    assert_int_equal(outbox_state_decode(many, OUTBOX_STATE_FIXED + 8 * MSG_BUNDLE_MAX, &moved),
                     MP_ERR_MALFORMED);
    assert_int_equal(moved.state, OUTBOX_SENT);
    assert_int_equal(moved.rider_count, 2);
    /* Version 1 (format 2 stores): state and expiry only; the entry's own
     * seal and riders stand. */
    const uint8_t v1_row[10] = {1, OUTBOX_DELIVERED, 0, 0, 0, 0, 0, 0, 0, 9};
    assert_int_equal(outbox_state_decode(v1_row, sizeof(v1_row), &moved), MP_OK);
    assert_int_equal(moved.state, OUTBOX_DELIVERED);
    assert_true(moved.expires_ms == 9);
    assert_true(moved.sealed);
    assert_int_equal(moved.rider_count, 2);
    assert_int_equal(outbox_state_decode(v1_row, sizeof(v1_row) - 1, &moved), MP_ERR_MALFORMED);
    outbox_entry_clear(&moved);
    moved.state = 0; /* never written as a row */
    assert_int_equal(outbox_state_encode(&moved, row, &row_len), MP_ERR_INVAL);
    e.riders = NULL;
    e.rider_count = 0;
    outbox_entry_clear(&e);

    /* A version 1 entry (written before mailboxes: six fields, no expiry) is
     * still read, so mail queued before an upgrade goes out after it:
     * [1, bin32 to, 1, 7, bin "pt", bin ""]. */
    uint8_t v1[2 + 2 + 32 + 1 + 1 + 4 + 2 + 1]; /* + 1: the expiry of the v2 form */
    size_t n = 0;
    v1[n++] = 0x96;
    v1[n++] = 0x01;
    v1[n++] = 0xc4;
    v1[n++] = 32;
    memset(v1 + n, 0x42, 32);
    n += 32;
    v1[n++] = 0x01;
    v1[n++] = 0x07;
    v1[n++] = 0xc4;
    v1[n++] = 2;
    v1[n++] = 'p';
    v1[n++] = 't';
    v1[n++] = 0xc4;
    v1[n++] = 0;
    assert_int_equal(outbox_entry_decode(v1, n, &back), MP_OK);
    assert_int_equal(back.state, OUTBOX_QUEUED);
    assert_int_equal(back.created_ms, 7);
    assert_true(back.expires_ms == 0);
    assert_int_equal(back.plaintext.len, 2);
    outbox_entry_clear(&back);
    /* The same as version 2 (seven fields, with expiry, no riders). */
    v1[0] = 0x97;
    v1[1] = 0x02;
    v1[n++] = 0x09;
    assert_int_equal(outbox_entry_decode(v1, n, &back), MP_OK);
    assert_true(back.expires_ms == 9);
    assert_int_equal(back.rider_count, 0);
    outbox_entry_clear(&back);
    /* Version 3 held the envelope within, where version 4 has the sealed
     * flag: read with its envelope, and so sealed (the store's migration
     * moves it apart): [3, bin32 to, 1, 7, bin "pt", bin "env", 9, [5]]. */
    uint8_t v3[sizeof(v1) + 3 + 2];
    memcpy(v3, v1, n - 3); /* up to the empty envelope */
    size_t m = n - 3;
    v3[0] = 0x98;
    v3[1] = 0x03;
    v3[m++] = 0xc4;
    v3[m++] = 3;
    memcpy(v3 + m, "env", 3);
    m += 3;
    v3[m++] = 0x09;
    v3[m++] = 0x91;
    v3[m++] = 0x05;
    assert_int_equal(outbox_entry_decode(v3, m, &back), MP_OK);
    assert_true(back.sealed);
    assert_int_equal(back.envelope.len, 3);
    assert_memory_equal(back.envelope.data, "env", 3);
    assert_true(back.expires_ms == 9);
    assert_int_equal(back.rider_count, 1);
    assert_true(back.riders[0] == 5);
    struct buf again; /* the tests' encoder of version 3 writes these very bytes */
    assert_int_equal(outbox_v3_encode(&back, &again), MP_OK);
    assert_int_equal(again.len, m);
    assert_memory_equal(again.data, v3, m);
    buf_free(&again);
    outbox_entry_clear(&back);
    /* A head whose envelope went once it was sent still lists its riders:
     * sealed too, so that its state row, written as it moves on, holds
     * both (riders without the seal are refused). */
    uint8_t v3_sent[sizeof(v3)];
    size_t k = n - 3;
    memcpy(v3_sent, v3, k);
    v3_sent[k++] = 0xc4;
    v3_sent[k++] = 0;
    v3_sent[k++] = 0x09;
    v3_sent[k++] = 0x91;
    v3_sent[k++] = 0x05;
    assert_int_equal(outbox_entry_decode(v3_sent, k, &back), MP_OK);
    assert_true(back.sealed);
    assert_int_equal(back.envelope.len, 0);
    back.state = OUTBOX_DELIVERED;
    uint8_t head_row[OUTBOX_STATE_ROW_MAX];
    size_t head_len = 0;
    assert_int_equal(outbox_state_encode(&back, head_row, &head_len), MP_OK);
    back.sealed = false;
    assert_int_equal(outbox_state_encode(&back, head_row, &head_len), MP_ERR_INVAL);
    outbox_entry_clear(&back);
    /* Nor does a version 4 entry list riders without the seal: refused to
     * encode, and to decode (the seal flag, 0xc3, turned false, 0xc2). */
    uint64_t one_rider = 5;
    struct outbox_entry head = {.state = OUTBOX_QUEUED, .riders = &one_rider, .rider_count = 1};
    assert_int_equal(outbox_entry_encode(&head, &enc), MP_ERR_INVAL);
    head.sealed = true;
    assert_int_equal(outbox_entry_encode(&head, &enc), MP_OK);
    uint8_t *flag = memchr(enc.data, 0xc3, enc.len);
    assert_non_null(flag);
    *flag = 0xc2;
    assert_int_equal(outbox_entry_decode(enc.data, enc.len, &back), MP_ERR_MALFORMED);
    buf_free(&enc);

    struct outbox_event ev = {.type = OUTBOX_EVENT_MESSAGE, .at_ms = 5, .request = true};
    memset(ev.peer, 1, 32);
    memset(ev.id, 2, MSG_ID_BYTES);
    buf_init(&ev.plaintext, MSG_WIRE_MAX);
    assert_int_equal(buf_append(&ev.plaintext, "xyz", 3), MP_OK);
    assert_int_equal(outbox_event_encode(&ev, &enc), MP_OK);
    struct outbox_event evb;
    assert_int_equal(outbox_event_decode(enc.data, enc.len, &evb), MP_OK);
    assert_int_equal(evb.type, OUTBOX_EVENT_MESSAGE);
    assert_int_equal(evb.at_ms, 5);
    assert_true(evb.request);
    assert_memory_equal(evb.peer, ev.peer, 32);
    assert_memory_equal(evb.id, ev.id, MSG_ID_BYTES);
    assert_int_equal(evb.plaintext.len, 3);
    outbox_event_clear(&evb);
    for (size_t cut = 0; cut < enc.len; cut++)
        assert_int_not_equal(outbox_event_decode(enc.data, cut, &evb), MP_OK);
    buf_free(&enc);
    outbox_event_clear(&ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_round_trip),    cmocka_unit_test(test_text_limits),
        cmocka_unit_test(test_receipt_round_trip),
        cmocka_unit_test(test_envelope_receipt_round_trip), cmocka_unit_test(test_msg_refuses),
        cmocka_unit_test(test_presence_round_trip), cmocka_unit_test(test_link_round_trip),
        cmocka_unit_test(test_mailbox_link_round_trip),
        cmocka_unit_test(test_outbox_round_trip), cmocka_unit_test(test_bundle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
