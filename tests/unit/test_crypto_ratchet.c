/* crypto/ratchet: the Double Ratchet. In-order and out-of-order delivery,
 * replay, tampering (state unchanged), the skip window and the total cap,
 * save/restore, codecs, and a seeded randomized run of two parties with
 * interleaving, loss, duplication, reordering and tampering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/kdf.h"
#include "crypto/ratchet.h"
#include "crypto/wire.h"
#include "tests/support/test_env.h"

#define MSG_MAX 128

static struct test_env te;
static uint64_t seed;

/* A fresh pair: a initiates, b responds (as after X3DH). When b_other is
 * given, it gets a responder with the same keys but another AD. */
static void pair_ad(struct ratchet **a, struct ratchet **b, struct ratchet **b_other)
{
    uint8_t root[32], ad[64], spk_sk[32], spk_pk[32];

    env_random(&te.env, root, sizeof(root));
    env_random(&te.env, ad, sizeof(ad));
    env_random(&te.env, spk_sk, sizeof(spk_sk));
    assert_int_equal(crypto_scalarmult_base(spk_pk, spk_sk), 0);
    assert_int_equal(ratchet_new_initiator(&te.env, root, ad, spk_pk, a), MP_OK);
    assert_int_equal(ratchet_new_responder(&te.env, root, ad, spk_sk, spk_pk, b), MP_OK);
    if (b_other != NULL) {
        ad[63] ^= 1;
        assert_int_equal(ratchet_new_responder(&te.env, root, ad, spk_sk, spk_pk, b_other), MP_OK);
    }
}

static void pair(struct ratchet **a, struct ratchet **b)
{
    pair_ad(a, b, NULL);
}

struct msg {
    struct ratchet_header h;
    uint8_t ct[MSG_MAX + RATCHET_OVERHEAD];
    size_t ct_len;
    uint8_t pt[MSG_MAX];
    size_t pt_len;
};

static void send_msg(struct ratchet *r, struct msg *m, size_t len)
{
    assert_true(len <= MSG_MAX);
    env_random(&te.env, m->pt, len);
    m->pt_len = len;
    m->ct_len = len + RATCHET_OVERHEAD;
    assert_int_equal(ratchet_encrypt(r, m->pt, len, &m->h, m->ct), MP_OK);
}

static enum mp_err recv_msg(struct ratchet *r, const struct msg *m)
{
    uint8_t pt[MSG_MAX];
    enum mp_err err = ratchet_decrypt(r, &m->h, m->ct, m->ct_len, pt);
    if (err == MP_OK)
        assert_memory_equal(pt, m->pt, m->pt_len);
    return err;
}

static void expect_ok(struct ratchet *r, const struct msg *m)
{
    assert_int_equal(recv_msg(r, m), MP_OK);
}

/* The session's stored form: what "unchanged" is measured by. */
static void snapshot(const struct ratchet *r, struct buf *out)
{
    assert_int_equal(ratchet_state_encode(r, out), MP_OK);
}

static void assert_same(const struct ratchet *r, const struct buf *before)
{
    struct buf now;
    snapshot(r, &now);
    assert_int_equal(now.len, before->len);
    assert_memory_equal(now.data, before->data, now.len);
    buf_free(&now);
}

static struct ratchet *reload(struct ratchet *r)
{
    struct buf s;
    struct ratchet *back = NULL;
    snapshot(r, &s);
    assert_int_equal(ratchet_state_decode(&te.env, s.data, s.len, &back), MP_OK);
    assert_same(back, &s);
    buf_free(&s);
    ratchet_free(r);
    return back;
}

static void test_in_order_conversation(void **state)
{
    (void)state;
    struct ratchet *a, *b;
    struct msg m;
    uint8_t junk[16];

    pair(&a, &b);
    /* The responder speaks only after hearing from the initiator. */
    assert_int_equal(ratchet_encrypt(b, junk, 0, &m.h, m.ct), MP_ERR_INVAL);
    assert_false(ratchet_has_received(a));
    assert_false(ratchet_has_received(b));
    for (uint32_t round = 0; round < 4; round++) {
        for (uint32_t i = 0; i < 3; i++) {
            send_msg(a, &m, 10 * i);
            assert_int_equal(m.h.n, i);
            expect_ok(b, &m);
        }
        for (uint32_t i = 0; i < 2; i++) {
            send_msg(b, &m, 64);
            assert_int_equal(m.h.n, i);
            assert_int_equal(m.h.pn, round == 0 ? 0 : 2);
            assert_true(ratchet_has_received(b));
            assert_int_equal(ratchet_has_received(a), round > 0 || i > 0);
            expect_ok(a, &m);
        }
    }
    assert_int_equal(ratchet_skipped_count(a), 0);
    assert_int_equal(ratchet_skipped_count(b), 0);
    /* Too big to encrypt. */
    static uint8_t big[RATCHET_PLAINTEXT_MAX + 1];
    static uint8_t big_ct[RATCHET_PLAINTEXT_MAX + 1 + RATCHET_OVERHEAD];
    assert_int_equal(ratchet_encrypt(a, big, sizeof(big), &m.h, big_ct), MP_ERR_INVAL);
    assert_int_equal(ratchet_encrypt(a, big, RATCHET_PLAINTEXT_MAX, &m.h, big_ct), MP_OK);
    ratchet_free(a);
    ratchet_free(b);
}

/* A sending chain ends at N = 2^32-2 (N = 2^32-1 is refused by every
 * receiver): the next encrypt fails with its own error, not INVAL, and a
 * reply from the peer starts a fresh chain. The state is edited on the wire:
 * an initiator that never received ends in Ns, Nr, PN, floor, [], [], so
 * its last six bytes are 05 00 00 00 90 90 after five messages. */
static void test_sending_chain_full(void **state)
{
    (void)state;
    struct ratchet *a, *b, *a2 = NULL;
    struct msg m;
    struct buf s;

    pair(&a, &b);
    for (int i = 0; i < 5; i++) {
        send_msg(a, &m, 8);
        expect_ok(b, &m);
    }
    snapshot(a, &s);
    static const uint8_t tail[] = {0x05, 0x00, 0x00, 0x00, 0x90, 0x90};
    static const uint8_t full[] = {0xce, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x00, 0x00, 0x90, 0x90};
    assert_true(s.len > sizeof(tail));
    assert_memory_equal(s.data + s.len - sizeof(tail), tail, sizeof(tail));
    uint8_t *edited = malloc(s.len - sizeof(tail) + sizeof(full));
    assert_non_null(edited);
    memcpy(edited, s.data, s.len - sizeof(tail));
    memcpy(edited + s.len - sizeof(tail), full, sizeof(full));
    assert_int_equal(
        ratchet_state_decode(&te.env, edited, s.len - sizeof(tail) + sizeof(full), &a2), MP_OK);
    free(edited);
    buf_free(&s);

    /* Message 2^32-2 is the last one; it still decrypts at b (a big gap is
     * refused by the window, so b only checks the error is TOO_FAR). */
    send_msg(a2, &m, 8);
    assert_int_equal(m.h.n, UINT32_MAX - 1);
    assert_int_equal(recv_msg(b, &m), MP_ERR_RATCHET_TOO_FAR);
    assert_int_equal(ratchet_encrypt(a2, m.pt, 8, &m.h, m.ct), MP_ERR_RATCHET_CHAIN_FULL);
    assert_int_equal(ratchet_encrypt(a2, m.pt, 8, &m.h, m.ct), MP_ERR_RATCHET_CHAIN_FULL);
    /* A reply from b (after a's fifth message) opens a new sending chain. */
    send_msg(b, &m, 8);
    expect_ok(a2, &m);
    send_msg(a2, &m, 8);
    assert_int_equal(m.h.n, 0);
    assert_int_equal(m.h.pn, UINT32_MAX);
    ratchet_free(a);
    ratchet_free(a2);
    ratchet_free(b);
}

/* A rolled-back state (saved, two messages sent, restored) sends a new
 * plaintext under a message key it used before. The nonce is fresh, so the
 * two ciphertexts do not share a keystream: XOR of the ciphertexts is not XOR
 * of the plaintexts, as it would be with a reused (key, nonce). The receiver
 * refuses the second message of the same number as a replay. */
static void test_rollback_does_not_reuse_nonce(void **state)
{
    (void)state;
    struct ratchet *a, *b, *old;
    struct msg m1, m2;
    struct buf saved;

    pair(&a, &b);
    snapshot(a, &saved);
    assert_int_equal(ratchet_state_decode(&te.env, saved.data, saved.len, &old), MP_OK);
    buf_free(&saved);
    send_msg(a, &m1, 64);
    send_msg(old, &m2, 64); /* the same state again: the same message key */
    assert_int_equal(m1.h.n, m2.h.n);
    assert_memory_equal(m1.h.dh, m2.h.dh, RATCHET_KEY_BYTES);
    assert_memory_not_equal(m1.ct, m2.ct, RATCHET_NONCE_BYTES);
    size_t same = 0;
    for (size_t i = 0; i < 64; i++) {
        uint8_t c = m1.ct[RATCHET_NONCE_BYTES + i] ^ m2.ct[RATCHET_NONCE_BYTES + i];
        same += c == (uint8_t)(m1.pt[i] ^ m2.pt[i]);
    }
    assert_true(same < 16); /* about 64/256 expected by chance */
    expect_ok(b, &m1);
    assert_int_equal(recv_msg(b, &m2), MP_ERR_RATCHET_REPLAY);
    ratchet_free(a);
    ratchet_free(old);
    ratchet_free(b);
}

/* The first message decrypts by the documented formulas alone
 * (docs/PROTOCOL.md, "Double Ratchet"): KDF_RK, KDF_CK, HKDF-Expand, AD. */
static void test_first_message_matches_spec(void **state)
{
    (void)state;
    uint8_t root[32], ad[64], spk_sk[32], spk_pk[32];
    uint8_t shared[32], okm[64], mk[32], key[32], full_ad[105];
    struct ratchet *a;
    struct msg m;

    env_random(&te.env, root, sizeof(root));
    env_random(&te.env, ad, sizeof(ad));
    env_random(&te.env, spk_sk, sizeof(spk_sk));
    assert_int_equal(crypto_scalarmult_base(spk_pk, spk_sk), 0);
    assert_int_equal(ratchet_new_initiator(&te.env, root, ad, spk_pk, &a), MP_OK);
    send_msg(a, &m, 40);
    send_msg(a, &m, 41); /* the second: one KDF_CK step further */
    assert_int_equal(m.h.n, 1);
    assert_int_equal(m.h.pn, 0);

    assert_int_equal(crypto_scalarmult(shared, spk_sk, m.h.dh), 0);
    assert_int_equal(
        kdf_hkdf(root, 32, shared, 32, (const uint8_t *)"merpati ratchet root v1", 23, 64, okm),
        MP_OK);
    uint8_t ck[32], one = 1, two = 2;
    memcpy(ck, okm + 32, 32);
    kdf_hmac(ck, 32, &two, 1, ck); /* skip message 0 */
    kdf_hmac(ck, 32, &one, 1, mk);
    assert_int_equal(kdf_hkdf_expand(mk, (const uint8_t *)"merpati ratchet msg v1", 22, 32, key),
                     MP_OK);
    memcpy(full_ad, ad, 64);
    full_ad[64] = 1;
    memcpy(full_ad + 65, m.h.dh, 32);
    memset(full_ad + 97, 0, 4);                              /* pn = 0 */
    memcpy(full_ad + 101, (const uint8_t[]){0, 0, 0, 1}, 4); /* n = 1 */
    uint8_t pt[MSG_MAX];
    /* The nonce is the first 24 bytes of the message, random per message. */
    assert_int_equal(m.ct_len, 41 + RATCHET_OVERHEAD);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
                         pt, NULL, NULL, m.ct + RATCHET_NONCE_BYTES, m.ct_len - RATCHET_NONCE_BYTES,
                         full_ad, sizeof(full_ad), m.ct, key),
                     0);
    assert_memory_equal(pt, m.pt, m.pt_len);
    ratchet_free(a);
}

static void test_out_of_order_and_replay(void **state)
{
    (void)state;
    struct ratchet *a, *b;
    struct msg am[6], bm[2], x;

    pair(&a, &b);
    for (int i = 0; i < 4; i++)
        send_msg(a, &am[i], 20);
    /* 3 first: keys for 0..2 kept. */
    expect_ok(b, &am[3]);
    assert_int_equal(ratchet_skipped_count(b), 3);
    expect_ok(b, &am[1]);
    assert_int_equal(recv_msg(b, &am[1]), MP_ERR_RATCHET_REPLAY); /* consumed skipped key */
    assert_int_equal(recv_msg(b, &am[3]), MP_ERR_RATCHET_REPLAY); /* below nr */
    /* b answers; a steps; a's next chain arrives before a[0] and a[2]. */
    send_msg(b, &bm[0], 5);
    expect_ok(a, &bm[0]);
    send_msg(a, &am[4], 7);
    assert_int_equal(am[4].h.pn, 4);
    send_msg(a, &am[5], 7);
    expect_ok(b, &am[5]);
    expect_ok(b, &am[2]); /* old chain, kept key */
    expect_ok(b, &am[4]);
    expect_ok(b, &am[0]);
    assert_int_equal(ratchet_skipped_count(b), 0);
    /* Late duplicates of an ended chain and of the current one. */
    assert_int_equal(recv_msg(b, &am[0]), MP_ERR_RATCHET_REPLAY);
    assert_int_equal(recv_msg(b, &am[3]), MP_ERR_RATCHET_REPLAY);
    assert_int_equal(recv_msg(b, &am[5]), MP_ERR_RATCHET_REPLAY);
    assert_int_equal(recv_msg(a, &bm[0]), MP_ERR_RATCHET_REPLAY);
    /* A message number past the end an ended chain announced is a forgery. */
    x = am[0];
    x.h.n = 4;
    assert_int_equal(recv_msg(b, &x), MP_ERR_RATCHET_TAMPERED);
    ratchet_free(a);
    ratchet_free(b);
}

/* Flip one bit of one thing and check decrypt fails without changing b. */
static void tamper_all(struct ratchet *b, const struct msg *m)
{
    struct buf before;
    snapshot(b, &before);
    for (size_t i = 0; i < m->ct_len; i++) {
        struct msg t = *m;
        t.ct[i] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(recv_msg(b, &t), MP_ERR_RATCHET_TAMPERED);
        assert_same(b, &before);
    }
    for (size_t i = 0; i < 32; i++) {
        struct msg t = *m;
        t.h.dh[i] ^= 0x01;
        assert_int_not_equal(recv_msg(b, &t), MP_OK);
        assert_same(b, &before);
    }
    for (uint32_t bit = 0; bit < 32; bit++) {
        struct msg t = *m;
        t.h.n ^= 1u << bit;
        assert_int_not_equal(recv_msg(b, &t), MP_OK);
        assert_same(b, &before);
        t = *m;
        t.h.pn ^= 1u << bit;
        assert_int_not_equal(recv_msg(b, &t), MP_OK);
        assert_same(b, &before);
    }
    /* Truncated and short ciphertexts. */
    struct msg t = *m;
    t.ct_len = m->ct_len - 1;
    assert_int_equal(recv_msg(b, &t),
                     t.ct_len >= RATCHET_OVERHEAD ? MP_ERR_RATCHET_TAMPERED : MP_ERR_MALFORMED);
    t.ct_len = RATCHET_OVERHEAD - 1;
    assert_int_equal(recv_msg(b, &t), MP_ERR_MALFORMED);
    assert_same(b, &before);
    buf_free(&before);
}

static void test_tamper_leaves_state_unchanged(void **state)
{
    (void)state;
    struct ratchet *a, *b, *b_other;
    struct msg m[4];

    pair_ad(&a, &b, &b_other);
    /* First message (a DH step on b's side), then in-chain with a gap, then a
     * kept key: every decrypt path. */
    send_msg(a, &m[0], 33);
    tamper_all(b, &m[0]);
    expect_ok(b, &m[0]);
    send_msg(a, &m[1], 1);
    send_msg(a, &m[2], 0);
    tamper_all(b, &m[2]);
    expect_ok(b, &m[2]);
    tamper_all(b, &m[1]);
    expect_ok(b, &m[1]);
    send_msg(b, &m[3], 12);
    tamper_all(a, &m[3]);
    expect_ok(a, &m[3]);
    /* Same keys, other session AD (other identities): refused. */
    assert_int_equal(recv_msg(b_other, &m[0]), MP_ERR_RATCHET_TAMPERED);
    ratchet_free(a);
    ratchet_free(b);
    ratchet_free(b_other);
}

static void test_low_order_header_key(void **state)
{
    (void)state;
    struct ratchet *a, *b;
    struct msg m;
    struct buf before;

    pair(&a, &b);
    send_msg(a, &m, 4);
    snapshot(b, &before);
    memset(m.h.dh, 0, 32);
    assert_int_equal(recv_msg(b, &m), MP_ERR_WEAK_KEY);
    assert_same(b, &before);
    buf_free(&before);
    ratchet_free(a);
    ratchet_free(b);
}

static void test_skip_window(void **state)
{
    (void)state;
    struct ratchet *a, *b;
    const uint32_t count = RATCHET_MAX_SKIP + 2;
    struct msg *m = calloc(count, sizeof(*m));

    assert_non_null(m);
    pair(&a, &b);
    for (uint32_t i = 0; i < count; i++)
        send_msg(a, &m[i], 8);
    struct buf before;
    snapshot(b, &before);
    assert_int_equal(recv_msg(b, &m[RATCHET_MAX_SKIP + 1]), MP_ERR_RATCHET_TOO_FAR);
    assert_same(b, &before);
    buf_free(&before);
    expect_ok(b, &m[RATCHET_MAX_SKIP]); /* exactly MAX_SKIP skipped: fine */
    assert_int_equal(ratchet_skipped_count(b), RATCHET_MAX_SKIP);
    expect_ok(b, &m[RATCHET_MAX_SKIP + 1]);
    for (uint32_t i = 0; i < RATCHET_MAX_SKIP; i += 97)
        expect_ok(b, &m[i]);
    /* Through PN too: the chain before a step may not hide more than MAX_SKIP. */
    struct msg r, late, n2;
    send_msg(b, &r, 3);
    expect_ok(a, &r);
    for (uint32_t i = 0; i <= RATCHET_MAX_SKIP; i++)
        send_msg(a, &late, 8); /* a's chain moves on; b never sees these */
    send_msg(b, &r, 3);
    send_msg(a, &n2, 8); /* still the same chain: in-chain window */
    assert_int_equal(recv_msg(b, &n2), MP_ERR_RATCHET_TOO_FAR);
    expect_ok(a, &r);
    send_msg(a, &n2, 8); /* new chain; pn says 2002 were sent before */
    assert_int_equal(n2.h.pn, RATCHET_MAX_SKIP + 2);
    assert_int_equal(recv_msg(b, &n2), MP_ERR_RATCHET_TOO_FAR);
    free(m);
    ratchet_free(a);
    ratchet_free(b);
}

static void test_total_cap_drops_oldest(void **state)
{
    (void)state;
    struct ratchet *a, *b;
    /* Six chains, each leaving MAX_SKIP keys behind: 12000 > 10000. */
    enum { CHAINS = 6 };
    struct msg *first = calloc(CHAINS, sizeof(*first)), *second = calloc(CHAINS, sizeof(*second));
    struct msg m, reply;

    pair(&a, &b);
    for (int c = 0; c < CHAINS; c++) {
        send_msg(a, &first[c], 8);
        send_msg(a, &second[c], 8);
        for (uint32_t i = 2; i <= RATCHET_MAX_SKIP; i++)
            send_msg(a, &m, 8);
        expect_ok(b, &m); /* n = MAX_SKIP: keys 0..MAX_SKIP-1 kept */
        send_msg(b, &reply, 1);
        expect_ok(a, &reply);
    }
    assert_int_equal(ratchet_skipped_count(b), RATCHET_SKIPPED_MAX);
    /* The first chain's keys went first; they are "too old", not replays. */
    assert_int_equal(recv_msg(b, &first[0]), MP_ERR_RATCHET_TOO_FAR);
    assert_int_equal(recv_msg(b, &second[0]), MP_ERR_RATCHET_TOO_FAR);
    /* Exactly the oldest 2000 went: the second chain is whole. */
    for (int c = 1; c < CHAINS; c++) {
        expect_ok(b, &first[c]);
        expect_ok(b, &second[c]);
        assert_int_equal(recv_msg(b, &first[c]), MP_ERR_RATCHET_REPLAY);
    }
    /* Survives a reload with the same answers. */
    b = reload(b);
    assert_int_equal(recv_msg(b, &first[0]), MP_ERR_RATCHET_TOO_FAR);
    assert_int_equal(recv_msg(b, &second[CHAINS - 1]), MP_ERR_RATCHET_REPLAY);
    free(first);
    free(second);
    ratchet_free(a);
    ratchet_free(b);
}

/* Ended chains are remembered up to RATCHET_CHAINS_KEPT: a duplicate from an
 * older chain can no longer be named a replay, but it still never decrypts. */
static void test_chain_memory_is_bounded(void **state)
{
    (void)state;
    struct ratchet *a, *b;
    struct msg first, recent, m;

    pair(&a, &b);
    send_msg(a, &first, 4);
    expect_ok(b, &first);
    for (int i = 0; i < RATCHET_CHAINS_KEPT + 4; i++) {
        send_msg(b, &m, 4);
        expect_ok(a, &m);
        send_msg(a, &m, 4);
        expect_ok(b, &m);
        if (i == RATCHET_CHAINS_KEPT)
            recent = m;
    }
    assert_int_equal(recv_msg(b, &recent), MP_ERR_RATCHET_REPLAY);
    struct buf before;
    snapshot(b, &before);
    assert_int_equal(recv_msg(b, &first), MP_ERR_RATCHET_TAMPERED);
    assert_same(b, &before);
    buf_free(&before);
    ratchet_free(a);
    ratchet_free(b);
}

static void test_codecs(void **state)
{
    (void)state;
    struct ratchet_header h = {{0}, 7, 0xfffffffe}, back;
    uint8_t wire[RATCHET_HEADER_WIRE_MAX + 1];
    size_t len;

    for (int i = 0; i < 32; i++)
        h.dh[i] = (uint8_t)(i * 7);
    assert_int_equal(ratchet_header_encode(&h, wire, &len), MP_OK);
    assert_true(len <= RATCHET_HEADER_WIRE_MAX);
    assert_int_equal(ratchet_header_decode(wire, len, &back), MP_OK);
    assert_memory_equal(&back, &h, sizeof(h));
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(ratchet_header_decode(wire, cut, &back), MP_ERR_MALFORMED);
    wire[len] = 0;
    assert_int_equal(ratchet_header_decode(wire, len + 1, &back), MP_ERR_MALFORMED);
    wire[1] = 9;
    assert_int_equal(ratchet_header_decode(wire, len, &back), MP_ERR_WIRE_VERSION);
    /* Strict types: a str where a bin belongs is refused. */
    assert_int_equal(ratchet_header_encode(&h, wire, &len), MP_OK);
    assert_int_equal(wire[2], 0xc4);
    wire[2] = 0xd9;
    assert_int_equal(ratchet_header_decode(wire, len, &back), MP_ERR_MALFORMED);

    /* State: a lying count or deep nesting is refused before allocation. */
    struct ratchet *r = NULL;
    const uint8_t liar[] = {0x9e, 0x01, 0xdd, 0x7f, 0xff, 0xff, 0xff};
    assert_false(wire_bounded(liar, sizeof(liar))); /* refused by the bound check itself */
    assert_int_equal(ratchet_state_decode(&te.env, liar, sizeof(liar), &r), MP_ERR_MALFORMED);
    uint8_t deep[64];
    memset(deep, 0x91, sizeof(deep));
    deep[63] = 0xc0;
    assert_int_equal(ratchet_state_decode(&te.env, deep, sizeof(deep), &r), MP_ERR_MALFORMED);
    assert_false(wire_bounded(deep, sizeof(deep)));
    assert_true(wire_bounded(deep + 40, sizeof(deep) - 40));
    assert_null(r);

    /* A state with a receiving chain but no remote key is refused. */
    struct ratchet *a, *b;
    struct buf s;
    struct msg m;
    pair(&a, &b);
    send_msg(a, &m, 10);
    assert_int_equal(recv_msg(b, &m), MP_OK);
    snapshot(b, &s);
    /* [14, 1, bin64 ad, bin32 rk, bin32 dhs_sk, bin32 dhs_pk, bin32 dhr ...]:
     * the remote key becomes nil. */
    const size_t dhr_at = 1 + 1 + (2 + 64) + 3 * (2 + 32);
    assert_int_equal(s.data[dhr_at], 0xc4);
    uint8_t *copy = malloc(s.len);
    memcpy(copy, s.data, dhr_at);
    copy[dhr_at] = 0xc0;
    memcpy(copy + dhr_at + 1, s.data + dhr_at + 34, s.len - dhr_at - 34);
    assert_int_equal(ratchet_state_decode(&te.env, copy, s.len - 33, &r), MP_ERR_MALFORMED);
    assert_int_equal(ratchet_state_decode(&te.env, s.data, s.len, &r), MP_OK);
    ratchet_free(r);
    for (size_t cut = 0; cut < s.len; cut += 5)
        assert_int_not_equal(ratchet_state_decode(&te.env, s.data, cut, &r), MP_OK);
    free(copy);
    buf_free(&s);
    ratchet_free(a);
    ratchet_free(b);
}

/* ---- the randomized run ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

#define TOTAL  3000 /* ordinary messages per seed */
#define WINDOW 16   /* deliveries pick among the oldest WINDOW messages in flight */
/* Bursts: one side sends BURST messages in a row while most of them wait in a
 * slow mailbox ("late", delivered at the very end in random order). Either
 * 90% of them are late at random (three bursts in four), or all but the last
 * BURST_TAIL (which then arrive more than RATCHET_MAX_SKIP ahead). Enough of them push the
 * receiver past RATCHET_SKIPPED_MAX kept keys, so the oldest are dropped. */
#define BURSTS     8
#define BURST      (RATCHET_MAX_SKIP + 100)
#define BURST_TAIL 40
#define SENT_MAX   (TOTAL + BURSTS * BURST)
#define SEEDS      3

struct flight {
    uint32_t id; /* index into sent[] */
};

/* What the test knows of each message, to judge every outcome by itself. */
struct meta {
    uint8_t to;     /* receiving side */
    uint32_t chain; /* sender's chain index (counts its ratchet key changes) */
    bool done;      /* decrypted once */
};

struct run_counts {
    uint32_t ok, replays, lost, tampered, reloads, too_far, late;
    bool dropped[2]; /* the side has held RATCHET_SKIPPED_MAX keys (drops) */
};

struct world {
    struct ratchet *party[2];
    struct msg *sent;
    struct meta *meta;
    uint32_t nsent;
    /* Per sender side and chain: the highest n decrypted + 1 (0: none). */
    uint32_t *next_n[2];
    uint32_t chains[2];     /* chains each side has sent on so far */
    uint8_t last_dh[2][32]; /* each side's current sending key */
    uint32_t max_chain[2];  /* per receiving side: newest sender chain decrypted + 1 */
    struct run_counts c;
    uint64_t seed;
};

static void world_send(struct world *w, int from, size_t len)
{
    struct msg *m = &w->sent[w->nsent];
    struct meta *x = &w->meta[w->nsent];

    send_msg(w->party[from], m, len);
    if (w->chains[from] == 0 || memcmp(m->h.dh, w->last_dh[from], 32) != 0) {
        memcpy(w->last_dh[from], m->h.dh, 32);
        w->chains[from]++;
    }
    x->to = (uint8_t)(1 - from);
    x->chain = w->chains[from] - 1;
    x->done = false;
    w->nsent++;
}

/* True when the test's bookkeeping says message id may fail with TOO_FAR:
 * more than RATCHET_MAX_SKIP past the highest decrypted in its chain (or,
 * opening a new chain, its PN past the previous one), after the receiver
 * dropped kept keys, or from a chain it no longer remembers. */
static bool may_be_far(const struct world *w, uint32_t id)
{
    const struct meta *x = &w->meta[id];
    const struct msg *m = &w->sent[id];
    int rx = x->to, tx = 1 - rx;
    uint32_t nn = w->next_n[tx][x->chain];
    bool new_chain = x->chain + 1 > w->max_chain[rx];
    uint32_t prev_nn = x->chain > 0 ? w->next_n[tx][x->chain - 1] : 0;

    return m->h.n > nn + RATCHET_MAX_SKIP ||
           (new_chain && x->chain > 0 && m->h.pn > prev_nn + RATCHET_MAX_SKIP) ||
           w->c.dropped[rx] || w->max_chain[rx] > x->chain + RATCHET_CHAINS_KEPT - 1;
}

/* Deliver message id; judge the outcome against what the test knows. */
static enum mp_err world_deliver(struct world *w, uint32_t id)
{
    struct meta *x = &w->meta[id];
    const struct msg *m = &w->sent[id];
    int rx = x->to, tx = 1 - rx;
    struct ratchet *r = w->party[rx];
    bool far = may_be_far(w, id);
    enum mp_err err = recv_msg(r, m);
    uint32_t nn = w->next_n[tx][x->chain];
    bool forgotten = w->max_chain[rx] > x->chain + RATCHET_CHAINS_KEPT - 1;
    bool ok;

    if (err == MP_OK) {
        ok = !x->done;
        x->done = true;
        w->c.ok++;
        if (m->h.n + 1 > nn)
            w->next_n[tx][x->chain] = m->h.n + 1;
        if (x->chain + 1 > w->max_chain[rx])
            w->max_chain[rx] = x->chain + 1;
    } else if (err == MP_ERR_RATCHET_REPLAY) {
        ok = x->done;
        w->c.replays++;
    } else if (err == MP_ERR_RATCHET_TOO_FAR) {
        ok = far;
        w->c.too_far++;
    } else if (err == MP_ERR_RATCHET_TAMPERED) {
        ok = forgotten;
    } else {
        ok = false;
    }
    if (!ok)
        fail_msg("seed %llu: message %u (chain %u, n %u, pn %u, %s) gave %s",
                 (unsigned long long)w->seed, id, x->chain, m->h.n, m->h.pn,
                 x->done ? "done" : "new", mp_errname(err));
    if (ratchet_skipped_count(r) >= RATCHET_SKIPPED_MAX)
        w->c.dropped[rx] = true;
    return err;
}

static void run_seed(uint64_t run_seed, struct run_counts *out)
{
    struct world w;
    struct flight *pool = calloc(4 * SENT_MAX, sizeof(*pool));
    uint32_t *late = calloc(SENT_MAX, sizeof(*late));
    uint32_t npool = 0, nlate = 0, bursts = 0;
    bool b_heard = false;

    memset(&w, 0, sizeof(w));
    w.seed = run_seed;
    w.sent = calloc(SENT_MAX, sizeof(*w.sent));
    w.meta = calloc(SENT_MAX, sizeof(*w.meta));
    w.next_n[0] = calloc(SENT_MAX, sizeof(uint32_t));
    w.next_n[1] = calloc(SENT_MAX, sizeof(uint32_t));
    assert_true(pool && late && w.sent && w.meta && w.next_n[0] && w.next_n[1]);
    rng_state = run_seed;
    pair(&w.party[0], &w.party[1]);
    while (w.nsent < SENT_MAX - (BURSTS - bursts) * BURST || npool > 0) {
        uint32_t roll = below(100);
        bool may_send = w.nsent - bursts * BURST < TOTAL;
        if (may_send && bursts < BURSTS &&
            w.nsent - bursts * BURST >= (bursts + 1) * TOTAL / (BURSTS + 1)) {
            /* A burst from a to b, most of it held in a slow mailbox (all
             * to one side, so its kept keys pass the cap). */
            int from = 0;
            bool tail_only = bursts % 4 == 3;
            for (uint32_t i = 0; i < BURST; i++) {
                uint32_t id = w.nsent;
                world_send(&w, from, 8);
                bool held = tail_only ? i < BURST - BURST_TAIL : below(100) < 90;
                if (held)
                    late[nlate++] = id;
                else
                    pool[npool++].id = id;
            }
            bursts++;
            continue;
        }
        if (may_send && (roll < 45 || npool == 0)) {
            /* Send, from a random side (b only once it has heard from a). */
            int from = b_heard ? (int)below(2) : 0;
            pool[npool++].id = w.nsent;
            world_send(&w, from, below(MSG_MAX + 1));
            continue;
        }
        if (npool == 0)
            break;
        uint32_t at = below(npool < WINDOW ? npool : WINDOW);
        uint32_t id = pool[at].id;
        struct ratchet *r = w.party[w.meta[id].to];
        roll = below(100);
        if (roll < 5 && may_send) {
            w.c.lost++; /* lost in transit */
        } else if (roll < 9) {
            /* A tampered copy first: an error, and no change at all (the
             * whole state compared while it is small, its counters after). */
            struct msg t = w.sent[id];
            struct buf before = {0};
            size_t kept = ratchet_skipped_count(r);
            bool full = kept < 1000;
            if (full)
                snapshot(r, &before);
            uint32_t where = below((uint32_t)t.ct_len + 3);
            bool body = where < t.ct_len;
            if (body)
                t.ct[where] ^= (uint8_t)(1u << below(8));
            else if (where == t.ct_len)
                t.h.dh[below(32)] ^= (uint8_t)(1u << below(8));
            else if (where == t.ct_len + 1)
                t.h.n ^= 1u << below(32);
            else
                t.h.pn ^= 1u << below(32);
            enum mp_err err = recv_msg(r, &t);
            assert_int_not_equal(err, MP_OK);
            if (body && !may_be_far(&w, id))
                assert_int_equal(err,
                                 w.meta[id].done ? MP_ERR_RATCHET_REPLAY : MP_ERR_RATCHET_TAMPERED);
            else if (body)
                assert_true(
                    err == MP_ERR_RATCHET_TOO_FAR ||
                    err == (w.meta[id].done ? MP_ERR_RATCHET_REPLAY : MP_ERR_RATCHET_TAMPERED));
            if (full) {
                assert_same(r, &before);
                buf_free(&before);
            }
            assert_int_equal(ratchet_skipped_count(r), kept);
            w.c.tampered++;
            continue; /* the genuine one stays in flight */
        } else {
            enum mp_err err = world_deliver(&w, id);
            if (err == MP_OK && w.meta[id].to == 1)
                b_heard = true;
            if (err == MP_ERR_RATCHET_TOO_FAR && !w.meta[id].done)
                late[nlate++] = id; /* the mailbox keeps it: retried at the end */
            else if (below(100) < 8 && npool < 4 * SENT_MAX) {
                /* Duplicated: another copy stays in flight, somewhere later. */
                pool[npool++].id = id;
                uint32_t j = below(npool);
                struct flight tmp = pool[j];
                pool[j] = pool[npool - 1];
                pool[npool - 1] = tmp;
            }
        }
        memmove(&pool[at], &pool[at + 1], (npool - at - 1) * sizeof(pool[0]));
        npool--;
        if (below(1000) < 3) {
            /* Save and restore one side mid-conversation. */
            int who = (int)below(2);
            w.party[who] = reload(w.party[who]);
            w.c.reloads++;
        }
    }
    /* The slow mailbox delivers what it held, in random order. */
    while (nlate > 0) {
        uint32_t at = below(nlate);
        uint32_t id = late[at];
        late[at] = late[--nlate];
        world_deliver(&w, id);
        w.c.late++;
    }
    uint32_t unique = 0;
    for (uint32_t i = 0; i < w.nsent; i++)
        unique += w.meta[i].done;
    assert_int_equal(unique, w.c.ok);
    print_message("seed %llu: %u sent, %u decrypted once, %u lost, %u duplicates refused, "
                  "%u tampered refused, %u too far, %u late, %u reloads, drops %d/%d\n",
                  (unsigned long long)run_seed, w.nsent, w.c.ok, w.c.lost, w.c.replays,
                  w.c.tampered, w.c.too_far, w.c.late, w.c.reloads, w.c.dropped[0], w.c.dropped[1]);
    *out = w.c;
    free(pool);
    free(late);
    free(w.sent);
    free(w.meta);
    free(w.next_n[0]);
    free(w.next_n[1]);
    ratchet_free(w.party[0]);
    ratchet_free(w.party[1]);
}

/* Seeded runs: every message decrypts to its exact plaintext once, or fails
 * with the error the test's own bookkeeping predicts (REPLAY for a
 * duplicate, TOO_FAR past the window or after drops, TAMPERED for a forgery);
 * each run reaches the window and the cap. */
static void test_randomized_exchange(void **state)
{
    (void)state;
    for (uint64_t k = 0; k < SEEDS; k++) {
        struct run_counts c;
        run_seed(seed + k, &c);
        assert_true(c.replays > 0 && c.tampered > 0 && c.reloads > 0 && c.lost > 0);
        assert_true(c.too_far > 0);
        assert_true(c.dropped[0] || c.dropped[1]);
        assert_true(c.late > 0);
    }
}

int main(void)
{
    seed = test_env_seed(20261130);
    test_env_init(&te, seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_conversation),
        cmocka_unit_test(test_sending_chain_full),
        cmocka_unit_test(test_rollback_does_not_reuse_nonce),
        cmocka_unit_test(test_first_message_matches_spec),
        cmocka_unit_test(test_out_of_order_and_replay),
        cmocka_unit_test(test_tamper_leaves_state_unchanged),
        cmocka_unit_test(test_low_order_header_key),
        cmocka_unit_test(test_skip_window),
        cmocka_unit_test(test_total_cap_drops_oldest),
        cmocka_unit_test(test_chain_memory_is_bounded),
        cmocka_unit_test(test_codecs),
        cmocka_unit_test(test_randomized_exchange),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
