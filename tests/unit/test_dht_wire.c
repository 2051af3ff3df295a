/* Unit tests for the DHT codecs (dht_wire, record_wire), the msgpack bounds
 * check they use (crypto/wire.h, wire_bounded) and signed records (record). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/wire.h"
#include "dht/dht_wire.h"
#include "dht/record.h"
#include "dht/record_wire.h"
#include "tests/support/test_env.h"

static struct test_env te;

static void fill(struct dht_msg *m, unsigned type)
{
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)type;
    m->tid = 0xdeadbeef;
}

static void make_record(struct record *rec, size_t len)
{
    struct identity *id = NULL;
    uint8_t payload[RECORD_PAYLOAD_MAX];
    memset(payload, 0xab, sizeof(payload));
    assert_int_equal(identity_generate(&te.env, &id), MP_OK);
    assert_int_equal(record_make(id, RECORD_KIND_PREKEYS, 42, 5000, payload, len, rec), MP_OK);
    identity_free(id);
}

static void roundtrip(const struct dht_msg *m)
{
    uint8_t buf[DHT_WIRE_BODY_MAX];
    size_t len = 0;
    struct dht_msg out;
    assert_int_equal(dht_wire_encode(m, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(dht_wire_decode(buf, len, &out), MP_OK);
    assert_int_equal(out.type, m->type);
    assert_int_equal(out.tid, m->tid);
    assert_memory_equal(out.target, m->target, sizeof(m->target));
    assert_memory_equal(out.token, m->token, sizeof(m->token));
    assert_int_equal(out.node_count, m->node_count);
    for (unsigned i = 0; i < m->node_count; i++) {
        assert_memory_equal(out.nodes[i].pk, m->nodes[i].pk, 32);
        assert_true(addr_equal(&out.nodes[i].addr, &m->nodes[i].addr));
    }
    assert_int_equal(out.has_record, m->has_record);
    if (m->has_record)
        assert_memory_equal(&out.record, &m->record, sizeof(out.record));
    if (m->type == DHT_MSG_PONG)
        assert_true(addr_equal(&out.observed, &m->observed));
    assert_int_equal(out.status, m->status);
    /* Every strict prefix is rejected. */
    for (size_t cut = 0; cut < len; cut += 1 + len / 40)
        assert_int_not_equal(dht_wire_decode(buf, cut, &out), MP_OK);
}

static void test_every_message_roundtrips(void **state)
{
    (void)state;
    struct dht_msg m;
    fill(&m, DHT_MSG_PING);
    roundtrip(&m);
    fill(&m, DHT_MSG_FIND_NODE);
    memset(m.target, 0x11, sizeof(m.target));
    roundtrip(&m);
    fill(&m, DHT_MSG_GET);
    memset(m.target, 0x22, sizeof(m.target));
    roundtrip(&m);
    fill(&m, DHT_MSG_PONG);
    assert_int_equal(addr_parse("[2001:db8::1]:4000", &m.observed), MP_OK);
    roundtrip(&m);
    fill(&m, DHT_MSG_NODES);
    m.node_count = DHT_WIRE_NODES_MAX;
    for (unsigned i = 0; i < m.node_count; i++) {
        memset(m.nodes[i].pk, (int)i + 1, 32);
        assert_int_equal(addr_parse(i % 2 ? "192.0.2.7:65535" : "[::1]:1", &m.nodes[i].addr),
                         MP_OK);
    }
    roundtrip(&m);
    fill(&m, DHT_MSG_GOT);
    memset(m.token, 0x33, sizeof(m.token));
    m.node_count = 3;
    for (unsigned i = 0; i < m.node_count; i++) {
        memset(m.nodes[i].pk, (int)i + 9, 32);
        assert_int_equal(addr_parse("10.0.0.1:4000", &m.nodes[i].addr), MP_OK);
    }
    roundtrip(&m);
    fill(&m, DHT_MSG_GOT);
    m.has_record = true;
    make_record(&m.record, RECORD_PAYLOAD_MAX); /* the largest record fits a datagram */
    roundtrip(&m);
    fill(&m, DHT_MSG_PUT);
    memset(m.token, 0x44, sizeof(m.token));
    m.has_record = true;
    make_record(&m.record, 0);
    roundtrip(&m);
    fill(&m, DHT_MSG_PUT_ACK);
    m.status = DHT_PUT_BAD_TOKEN;
    roundtrip(&m);
}

static void test_encode_refuses_what_it_cannot_say(void **state)
{
    (void)state;
    struct dht_msg m;
    uint8_t buf[DHT_WIRE_BODY_MAX];
    size_t len;
    fill(&m, 0x42);
    assert_int_equal(dht_wire_encode(&m, buf, sizeof(buf), &len), MP_ERR_INVAL);
    fill(&m, DHT_MSG_NODES);
    m.node_count = 1; /* address family none */
    assert_int_equal(dht_wire_encode(&m, buf, sizeof(buf), &len), MP_ERR_INVAL);
    fill(&m, DHT_MSG_FIND_NODE);
    assert_int_equal(dht_wire_encode(&m, buf, 10, &len), MP_ERR_TOO_BIG);
}

static void test_decode_rejects_malformed(void **state)
{
    (void)state;
    struct dht_msg m;
    static const uint8_t ping[] = {0x92, 0x00, 0x01};
    assert_int_equal(dht_wire_decode(ping, sizeof(ping), &m), MP_OK);
    static const uint8_t trailing[] = {0x92, 0x00, 0x01, 0xc0};
    assert_int_equal(dht_wire_decode(trailing, sizeof(trailing), &m), MP_ERR_MALFORMED);
    static const uint8_t unknown_type[] = {0x92, 0x07, 0x01};
    assert_int_equal(dht_wire_decode(unknown_type, sizeof(unknown_type), &m), MP_ERR_MALFORMED);
    static const uint8_t extra_field[] = {0x93, 0x00, 0x01, 0x01};
    assert_int_equal(dht_wire_decode(extra_field, sizeof(extra_field), &m), MP_ERR_MALFORMED);
    static const uint8_t neg_tid[] = {0x92, 0x00, 0xff};
    assert_int_equal(dht_wire_decode(neg_tid, sizeof(neg_tid), &m), MP_ERR_MALFORMED);
    static const uint8_t short_target[] = {0x93, 0x01, 0x01, 0xc4, 0x01, 0x00};
    assert_int_equal(dht_wire_decode(short_target, sizeof(short_target), &m), MP_ERR_MALFORMED);
    static const uint8_t not_array[] = {0x81, 0x00, 0x01};
    assert_int_equal(dht_wire_decode(not_array, sizeof(not_array), &m), MP_ERR_MALFORMED);
    /* PONG with a 5-byte address. */
    static const uint8_t bad_addr[] = {0x93, 0xcc, 0x80, 0x01, 0xc4, 0x05, 1, 2, 3, 4, 5};
    assert_int_equal(dht_wire_decode(bad_addr, sizeof(bad_addr), &m), MP_ERR_MALFORMED);
    /* NODES claiming 9 entries (more than DHT_WIRE_NODES_MAX). */
    uint8_t many[64] = {0x93, 0xcc, 0x81, 0x01, 0x99};
    for (unsigned i = 0; i < 9; i++)
        many[5 + i] = 0xc0;
    assert_int_equal(dht_wire_decode(many, 14, &m), MP_ERR_MALFORMED);
    /* PUT_ACK with an unknown status. */
    static const uint8_t bad_status[] = {0x93, 0xcc, 0x83, 0x01, 0x09};
    assert_int_equal(dht_wire_decode(bad_status, sizeof(bad_status), &m), MP_ERR_MALFORMED);
    /* An array32 claiming four billion elements in six bytes: refused
     * before msgpack-c could try to allocate for it. */
    static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_false(wire_bounded(huge, sizeof(huge)));
    assert_int_equal(dht_wire_decode(huge, sizeof(huge), &m), MP_ERR_MALFORMED);
    static const uint8_t huge_bin[] = {0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00};
    assert_false(wire_bounded(huge_bin, sizeof(huge_bin)));
    uint8_t big[DHT_WIRE_BODY_MAX + 1] = {0};
    assert_int_equal(dht_wire_decode(big, sizeof(big), &m), MP_ERR_TOO_BIG);
}

static void test_wire_bounded_accepts_valid(void **state)
{
    (void)state;
    static const uint8_t map[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_true(wire_bounded(map, sizeof(map)));
    static const uint8_t nested[] = {0x91, 0x91, 0x91, 0xc0};
    assert_true(wire_bounded(nested, sizeof(nested)));
    assert_false(wire_bounded(nested, 3));
    static const uint8_t never[] = {0xc1};
    assert_false(wire_bounded(never, 1));
    assert_false(wire_bounded(NULL, 0));
}

static void test_record_roundtrip_and_sizes(void **state)
{
    (void)state;
    struct record rec, out;
    uint8_t buf[RECORD_WIRE_MAX];
    size_t len = 0;
    make_record(&rec, RECORD_PAYLOAD_MAX);
    assert_int_equal(record_wire_encode(&rec, buf, sizeof(buf), &len), MP_OK);
    assert_true(len <= RECORD_WIRE_MAX);
    assert_int_equal(record_wire_decode(buf, len, &out), MP_OK);
    assert_memory_equal(&out, &rec, sizeof(rec));
    assert_int_equal(record_wire_encode(&rec, buf, len - 1, &len), MP_ERR_TOO_BIG);
    rec.payload_len = RECORD_PAYLOAD_MAX + 1;
    assert_int_equal(record_wire_encode(&rec, buf, sizeof(buf), &len), MP_ERR_TOO_BIG);
    /* An unknown kind does not decode. */
    make_record(&rec, 3);
    assert_int_equal(record_wire_encode(&rec, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(buf[1], RECORD_KIND_PREKEYS);
    buf[1] = 9;
    assert_int_equal(record_wire_decode(buf, len, &out), MP_ERR_MALFORMED);
}

static void test_record_signature_and_expiry(void **state)
{
    (void)state;
    struct identity *owner = NULL, *other = NULL;
    struct record rec, bad;
    assert_int_equal(identity_generate(&te.env, &owner), MP_OK);
    assert_int_equal(identity_generate(&te.env, &other), MP_OK);
    assert_int_equal(record_make(owner, RECORD_KIND_PRESENCE, 7, 2000, (const uint8_t *)"hi", 2,
                                 &rec),
                     MP_OK);
    assert_int_equal(record_check(&rec, 1000), MP_OK);
    /* Any change to a signed field breaks the signature. */
    bad = rec;
    bad.seq = 8;
    assert_int_equal(record_check(&bad, 1000), MP_ERR_RECORD_FORGED);
    bad = rec;
    bad.payload[0] ^= 1;
    assert_int_equal(record_check(&bad, 1000), MP_ERR_RECORD_FORGED);
    bad = rec;
    bad.expires_s = 2001;
    assert_int_equal(record_check(&bad, 1000), MP_ERR_RECORD_FORGED);
    bad = rec;
    bad.kind = RECORD_KIND_PREKEYS;
    assert_int_equal(record_check(&bad, 1000), MP_ERR_RECORD_FORGED);
    bad = rec;
    memcpy(bad.owner, identity_public_key(other), RECORD_OWNER_BYTES);
    assert_int_equal(record_check(&bad, 1000), MP_ERR_RECORD_FORGED);
    /* Expiry: past, or too far ahead. */
    assert_int_equal(record_check(&rec, 2000), MP_ERR_RECORD_EXPIRED);
    assert_int_equal(record_make(owner, RECORD_KIND_PRESENCE, 7,
                                 1000 + RECORD_TTL_MAX_S + RECORD_SKEW_S + 1, NULL, 0, &bad),
                     MP_OK);
    assert_int_equal(record_check(&bad, 1000), MP_ERR_RECORD_EXPIRED);
    /* Limits of record_make. */
    uint8_t big[RECORD_PAYLOAD_MAX + 1] = {0};
    assert_int_equal(record_make(owner, RECORD_KIND_PRESENCE, 1, 2000, big, sizeof(big), &bad),
                     MP_ERR_TOO_BIG);
    assert_int_equal(record_make(owner, 0, 1, 2000, NULL, 0, &bad), MP_ERR_INVAL);
    /* Locations differ by kind and by owner. */
    uint8_t k1[32], k2[32], k3[32];
    record_key(RECORD_KIND_PRESENCE, identity_public_key(owner), k1);
    record_key(RECORD_KIND_PREKEYS, identity_public_key(owner), k2);
    record_key(RECORD_KIND_PRESENCE, identity_public_key(other), k3);
    assert_memory_not_equal(k1, k2, 32);
    assert_memory_not_equal(k1, k3, 32);
    identity_free(owner);
    identity_free(other);
}

int main(void)
{
    test_env_init(&te, test_env_seed(22));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_roundtrips),
        cmocka_unit_test(test_encode_refuses_what_it_cannot_say),
        cmocka_unit_test(test_decode_rejects_malformed),
        cmocka_unit_test(test_wire_bounded_accepts_valid),
        cmocka_unit_test(test_record_roundtrip_and_sizes),
        cmocka_unit_test(test_record_signature_and_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
