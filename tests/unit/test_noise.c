/*
 * Noise link handshake: the published vectors (cacophony, snow) byte for
 * byte, then what a peer can do wrong: tamper, wrong keys, wrong PSK, wrong
 * prologue, low-order keys (Wycheproof X25519), nonce exhaustion and rekey.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "crypto/noise.h"
#include "crypto/noise_testing.h"
#include "tests/support/test_env.h"

#ifndef NOISE_VECTORS_DIR
#error "NOISE_VECTORS_DIR must name tests/vectors"
#endif

#define HEX_MAX 4096 /* bytes of one decoded vector field */

static struct test_env te;

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t len = 0;

    assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, NULL), 0);
    return len;
}

static json_t *load_json(const char *name)
{
    char path[1024];
    json_error_t jerr;

    snprintf(path, sizeof(path), "%s/%s", NOISE_VECTORS_DIR, name);
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL)
        fail_msg("%s: %s (line %d)", path, jerr.text, jerr.line);
    return doc;
}

static enum noise_pattern pattern_of(const char *name)
{
    static const enum noise_pattern all[] = {NOISE_PATTERN_IK, NOISE_PATTERN_XX,
                                             NOISE_PATTERN_IKPSK2, NOISE_PATTERN_XXPSK3,
                                             NOISE_PATTERN_IKPSK1};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(noise_protocol_name(all[i]), name) == 0)
            return all[i];
    }
    fail_msg("unexpected protocol %s", name);
    return NOISE_PATTERN_IK;
}

#define N_PATTERNS 5

static bool is_ik(enum noise_pattern p)
{
    return p == NOISE_PATTERN_IK || p == NOISE_PATTERN_IKPSK2 || p == NOISE_PATTERN_IKPSK1;
}

static unsigned handshake_messages(enum noise_pattern p)
{
    return is_ik(p) ? 2 : 3;
}

static bool has_psk(enum noise_pattern p)
{
    return p != NOISE_PATTERN_IK && p != NOISE_PATTERN_XX;
}

/* Keys of one side of a vector, decoded. */
struct side {
    uint8_t prologue[HEX_MAX];
    size_t prologue_len;
    uint8_t s[32], e[32], rs[32], psk[32];
    bool has_rs, has_psk;
};

static void load_side(json_t *v, const char *who, struct side *sd)
{
    char key[64];
    json_t *j;

    memset(sd, 0, sizeof(*sd));
    snprintf(key, sizeof(key), "%s_prologue", who);
    sd->prologue_len =
        unhex(json_string_value(json_object_get(v, key)), sd->prologue, sizeof(sd->prologue));
    snprintf(key, sizeof(key), "%s_static", who);
    assert_int_equal(unhex(json_string_value(json_object_get(v, key)), sd->s, 32), 32);
    snprintf(key, sizeof(key), "%s_ephemeral", who);
    assert_int_equal(unhex(json_string_value(json_object_get(v, key)), sd->e, 32), 32);
    snprintf(key, sizeof(key), "%s_remote_static", who);
    if ((j = json_object_get(v, key)) != NULL) {
        assert_int_equal(unhex(json_string_value(j), sd->rs, 32), 32);
        sd->has_rs = true;
    }
    snprintf(key, sizeof(key), "%s_psks", who);
    if ((j = json_object_get(v, key)) != NULL && json_array_size(j) > 0) {
        assert_int_equal(json_array_size(j), 1);
        assert_int_equal(unhex(json_string_value(json_array_get(j, 0)), sd->psk, 32), 32);
        sd->has_psk = true;
    }
}

static struct noise_handshake *start(enum noise_pattern p, bool initiator, const struct side *sd)
{
    struct noise_config cfg = {
        .pattern = p,
        .initiator = initiator,
        .prologue = sd->prologue,
        .prologue_len = sd->prologue_len,
        .s = sd->s,
        .rs = sd->has_rs ? sd->rs : NULL,
        .psk = sd->has_psk ? sd->psk : NULL,
        .fixed_ephemeral = sd->e,
    };
    struct noise_handshake *hs = NULL;

    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_OK);
    return hs;
}

static void run_vector(json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "protocol_name"));
    enum noise_pattern p = pattern_of(name);
    struct side is, rsd;
    static uint8_t payload[NOISE_MAX_MESSAGE], expect[NOISE_MAX_MESSAGE];
    static uint8_t out[NOISE_MAX_MESSAGE], got[NOISE_MAX_MESSAGE];
    size_t out_len = 0, got_len = 0;
    struct noise_cipher *c[2][2] = {{NULL}}; /* [side][0 send, 1 recv]; side 0 initiator */

    load_side(v, "init", &is);
    load_side(v, "resp", &rsd);
    assert_int_equal(is.has_psk, has_psk(p));
    struct noise_handshake *hs[2] = {start(p, true, &is), start(p, false, &rsd)};
    json_t *msgs = json_object_get(v, "messages");
    size_t n = json_array_size(msgs);
    unsigned nh = handshake_messages(p);
    assert_true(n > nh);

    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        size_t plen =
            unhex(json_string_value(json_object_get(m, "payload")), payload, sizeof(payload));
        size_t clen =
            unhex(json_string_value(json_object_get(m, "ciphertext")), expect, sizeof(expect));
        int from = (int)(i % 2), to = 1 - from;
        if (i < nh) {
            assert_int_equal(noise_handshake_next(hs[from]), NOISE_STEP_WRITE);
            assert_int_equal(noise_handshake_next(hs[to]), NOISE_STEP_READ);
            assert_int_equal(
                noise_handshake_write(hs[from], payload, plen, out, sizeof(out), &out_len), MP_OK);
            assert_int_equal(noise_handshake_read(hs[to], out, out_len, got, sizeof(got), &got_len),
                             MP_OK);
        } else {
            if (i == nh) {
                for (int sd = 0; sd < 2; sd++) {
                    assert_int_equal(noise_handshake_next(hs[sd]), NOISE_STEP_SPLIT);
                    assert_int_equal(noise_handshake_split(hs[sd], &c[sd][0], &c[sd][1]), MP_OK);
                }
            }
            assert_int_equal(
                noise_cipher_encrypt(c[from][0], payload, plen, out, sizeof(out), &out_len), MP_OK);
            assert_int_equal(
                noise_cipher_decrypt(c[to][1], out, out_len, got, sizeof(got), &got_len), MP_OK);
        }
        if (out_len != clen || memcmp(out, expect, clen) != 0)
            fail_msg("%s: message %zu differs from the vector", name, i);
        assert_int_equal(got_len, plen);
        assert_memory_equal(got, payload, plen);
    }

    uint8_t h0[NOISE_HASH_BYTES], h1[NOISE_HASH_BYTES], hv[NOISE_HASH_BYTES];
    assert_int_equal(noise_handshake_hash(hs[0], h0), MP_OK);
    assert_int_equal(noise_handshake_hash(hs[1], h1), MP_OK);
    assert_memory_equal(h0, h1, sizeof(h0));
    json_t *jh = json_object_get(v, "handshake_hash");
    if (jh != NULL) {
        assert_int_equal(unhex(json_string_value(jh), hv, sizeof(hv)), NOISE_HASH_BYTES);
        assert_memory_equal(h0, hv, sizeof(h0));
    }
    /* Each side learned the other's static key. */
    uint8_t rk[32], pk[32];
    assert_int_equal(noise_handshake_remote_static(hs[0], rk), MP_OK);
    crypto_scalarmult_base(pk, rsd.s);
    assert_memory_equal(rk, pk, 32);
    assert_int_equal(noise_handshake_remote_static(hs[1], rk), MP_OK);
    crypto_scalarmult_base(pk, is.s);
    assert_memory_equal(rk, pk, 32);

    for (int sd = 0; sd < 2; sd++) {
        noise_handshake_free(hs[sd]);
        noise_cipher_free(c[sd][0]);
        noise_cipher_free(c[sd][1]);
    }
}

static void test_vectors(void **state)
{
    (void)state;
    json_t *doc = load_json("noise-vectors.json");
    json_t *vs = json_object_get(doc, "vectors");
    unsigned seen[N_PATTERNS] = {0}, hashes = 0;

    for (size_t i = 0; i < json_array_size(vs); i++) {
        json_t *v = json_array_get(vs, i);
        run_vector(v);
        seen[pattern_of(json_string_value(json_object_get(v, "protocol_name")))]++;
        hashes += json_object_get(v, "handshake_hash") != NULL;
    }
    /* Every implemented protocol is covered, with its handshake hash. */
    for (int p = 0; p < N_PATTERNS; p++)
        assert_true(seen[p] >= 1);
    assert_true(hashes >= N_PATTERNS);
    json_decref(doc);
}

/* ---- live handshakes between two parties ---- */

struct party {
    uint8_t s[32], pub[32];
};

static void party_make(struct party *pt)
{
    env_random(&te.env, pt->s, 32);
    crypto_scalarmult_base(pt->pub, pt->s);
}

struct run {
    enum noise_pattern p;
    const uint8_t *prologue[2];
    size_t prologue_len[2];
    const uint8_t *psk[2];
    const uint8_t *rs[2]; /* what each side dials / expects */
    struct party *me[2];
    /* Tampering: flip `mask` at byte `pos` of handshake message `msg`. */
    int tamper_msg;
    size_t tamper_pos;
    uint8_t tamper_mask;
};

struct outcome {
    enum mp_err err;   /* the first failure, MP_OK if none */
    int failed_side;   /* who met it: 0 initiator, 1 responder */
    unsigned at_msg;   /* at which handshake message */
    bool leaked;       /* payload_out held plaintext after a failed read */
    size_t msg_len[3]; /* lengths of the handshake messages sent */
    struct noise_handshake *hs[2];
};

static const uint8_t hs_payload[] = "hello, link";

/* True when the first 4 bytes of the payload appear anywhere in buf. */
static bool holds_payload(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(buf + i, hs_payload, 4) == 0)
            return true;
    }
    return false;
}

static void play(const struct run *r, struct outcome *o)
{
    static uint8_t msg[NOISE_MAX_MESSAGE], got[NOISE_MAX_MESSAGE];
    size_t len = 0, got_len = 0;

    memset(o, 0, sizeof(*o));
    for (int sd = 0; sd < 2; sd++) {
        struct noise_config cfg = {
            .pattern = r->p,
            .initiator = sd == 0,
            .prologue = r->prologue[sd],
            .prologue_len = r->prologue_len[sd],
            .s = r->me[sd]->s,
            .rs = r->rs[sd],
            .psk = r->psk[sd],
        };
        assert_int_equal(noise_handshake_new(&te.env, &cfg, &o->hs[sd]), MP_OK);
    }
    for (unsigned i = 0; i < handshake_messages(r->p); i++) {
        int from = (int)(i % 2), to = 1 - from;
        enum mp_err err = noise_handshake_write(o->hs[from], hs_payload, sizeof(hs_payload), msg,
                                                sizeof(msg), &len);
        if (err != MP_OK) {
            o->err = err, o->failed_side = from, o->at_msg = i;
            return;
        }
        o->msg_len[i] = len;
        if (r->tamper_msg == (int)i && r->tamper_pos < len)
            msg[r->tamper_pos] ^= r->tamper_mask;
        memset(got, 0xa5, sizeof(got));
        err = noise_handshake_read(o->hs[to], msg, len, got, sizeof(got), &got_len);
        if (err != MP_OK) {
            o->err = err, o->failed_side = to, o->at_msg = i;
            /* Nothing of the message may be left in the payload buffer. */
            o->leaked = holds_payload(got, sizeof(got));
            return;
        }
        /* (An altered clear payload, XX message 1, is caught one message later.) */
        if (r->tamper_msg != (int)i) {
            assert_int_equal(got_len, sizeof(hs_payload));
            assert_memory_equal(got, hs_payload, sizeof(hs_payload));
        }
    }
}

static void outcome_free(struct outcome *o)
{
    noise_handshake_free(o->hs[0]);
    noise_handshake_free(o->hs[1]);
}

static void assert_poisoned(struct noise_handshake *hs)
{
    uint8_t buf[NOISE_MAX_MESSAGE];
    struct noise_cipher *a = NULL, *b = NULL;
    size_t len = 0;

    assert_int_equal(noise_handshake_next(hs), NOISE_STEP_FAILED);
    assert_int_equal(noise_handshake_split(hs, &a, &b), MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_hash(hs, buf), MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_remote_static(hs, buf), MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_write(hs, NULL, 0, buf, sizeof(buf), &len),
                     MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_read(hs, buf, 64, buf, sizeof(buf), &len), MP_ERR_NOISE_STATE);
    assert_null(a);
    assert_null(b);
}

/* A straightforward run between a and b; rs set as the pattern needs. */
static void run_init(struct run *r, enum noise_pattern p, struct party *a, struct party *b)
{
    static const uint8_t psk[32] = "private cluster secret 32 bytes";
    memset(r, 0, sizeof(*r));
    r->p = p;
    r->me[0] = a, r->me[1] = b;
    r->tamper_msg = -1;
    if (is_ik(p))
        r->rs[0] = b->pub;
    if (has_psk(p))
        r->psk[0] = r->psk[1] = psk;
}

static const enum noise_pattern all_patterns[N_PATTERNS] = {
    NOISE_PATTERN_IK, NOISE_PATTERN_XX, NOISE_PATTERN_IKPSK2, NOISE_PATTERN_XXPSK3,
    NOISE_PATTERN_IKPSK1};

static void test_live_handshake_and_transport(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    uint8_t prologue[NOISE_MERPATI_PROLOGUE_MAX];
    size_t plen = 0;
    assert_int_equal(
        noise_prologue(NOISE_PROTOCOL_VERSION, (const uint8_t *)"main", 4, prologue, &plen), MP_OK);

    for (size_t k = 0; k < N_PATTERNS; k++) {
        struct run r;
        struct outcome o;
        run_init(&r, all_patterns[k], &a, &b);
        r.prologue[0] = r.prologue[1] = prologue;
        r.prologue_len[0] = r.prologue_len[1] = plen;
        r.rs[1] = a.pub; /* the responder also insists on knowing the initiator */
        play(&r, &o);
        assert_int_equal(o.err, MP_OK);

        struct noise_cipher *c[2][2];
        uint8_t h[2][NOISE_HASH_BYTES], rk[32];
        for (int sd = 0; sd < 2; sd++) {
            assert_int_equal(noise_handshake_split(o.hs[sd], &c[sd][0], &c[sd][1]), MP_OK);
            assert_int_equal(noise_handshake_next(o.hs[sd]), NOISE_STEP_DONE);
            assert_int_equal(noise_handshake_split(o.hs[sd], &c[sd][0], &c[sd][1]),
                             MP_ERR_NOISE_STATE);
            assert_int_equal(noise_handshake_hash(o.hs[sd], h[sd]), MP_OK);
        }
        assert_memory_equal(h[0], h[1], NOISE_HASH_BYTES);
        assert_int_equal(noise_handshake_remote_static(o.hs[0], rk), MP_OK);
        assert_memory_equal(rk, b.pub, 32);
        assert_int_equal(noise_handshake_remote_static(o.hs[1], rk), MP_OK);
        assert_memory_equal(rk, a.pub, 32);

        /* Both directions, several messages, in place. */
        for (int i = 0; i < 20; i++) {
            int from = i % 3 == 0, to = 1 - from;
            uint8_t buf[128], text[64];
            size_t len = 0, tlen = 0;
            snprintf((char *)text, sizeof(text), "message %d from %d", i, from);
            size_t n = strlen((char *)text);
            memcpy(buf, text, n);
            assert_int_equal(noise_cipher_encrypt(c[from][0], buf, n, buf, sizeof(buf), &len),
                             MP_OK);
            assert_int_equal(len, n + NOISE_TAG_BYTES);
            assert_memory_not_equal(buf, text, n);
            assert_int_equal(noise_cipher_decrypt(c[to][1], buf, len, buf, sizeof(buf), &tlen),
                             MP_OK);
            assert_int_equal(tlen, n);
            assert_memory_equal(buf, text, n);
        }
        for (int sd = 0; sd < 2; sd++) {
            noise_cipher_free(c[sd][0]);
            noise_cipher_free(c[sd][1]);
        }
        outcome_free(&o);
    }
}

/* Two handshakes with the same keys differ (fresh ephemerals from the env). */
static void test_ephemerals_are_fresh(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    struct run r;
    struct outcome o1, o2;
    uint8_t h1[NOISE_HASH_BYTES], h2[NOISE_HASH_BYTES];

    run_init(&r, NOISE_PATTERN_IK, &a, &b);
    play(&r, &o1);
    play(&r, &o2);
    assert_int_equal(o1.err, MP_OK);
    assert_int_equal(o2.err, MP_OK);
    assert_int_equal(noise_handshake_hash(o1.hs[0], h1), MP_OK);
    assert_int_equal(noise_handshake_hash(o2.hs[0], h2), MP_OK);
    assert_memory_not_equal(h1, h2, sizeof(h1));
    outcome_free(&o1);
    outcome_free(&o2);
}

static void test_wrong_remote_static(void **state)
{
    (void)state;
    struct party a, b, c;
    party_make(&a);
    party_make(&b);
    party_make(&c);
    struct run r;
    struct outcome o;

    /* IK: a dials c's key but reaches b: b cannot open a's first message. */
    static const enum noise_pattern iks[] = {NOISE_PATTERN_IK, NOISE_PATTERN_IKPSK2,
                                             NOISE_PATTERN_IKPSK1};
    for (int k = 0; k < 3; k++) {
        run_init(&r, iks[k], &a, &b);
        r.rs[0] = c.pub;
        play(&r, &o);
        assert_int_equal(o.err, MP_ERR_NOISE_PEER_KEY);
        assert_int_equal(o.failed_side, 1);
        assert_int_equal(o.at_msg, 0);
        assert_false(o.leaked);
        assert_poisoned(o.hs[1]);
        outcome_free(&o);
    }

    /* XX: a expects c but b answers: a refuses b's key in message 2. */
    for (int k = 0; k < 2; k++) {
        run_init(&r, k ? NOISE_PATTERN_XXPSK3 : NOISE_PATTERN_XX, &a, &b);
        r.rs[0] = c.pub;
        play(&r, &o);
        assert_int_equal(o.err, MP_ERR_NOISE_PEER_KEY);
        assert_int_equal(o.failed_side, 0);
        assert_int_equal(o.at_msg, 1);
        assert_false(o.leaked);
        assert_poisoned(o.hs[0]);
        outcome_free(&o);
    }

    /* XX and IK: the responder expects c but a calls. */
    for (size_t k = 0; k < N_PATTERNS; k++) {
        run_init(&r, all_patterns[k], &a, &b);
        r.rs[1] = c.pub;
        play(&r, &o);
        assert_int_equal(o.err, MP_ERR_NOISE_PEER_KEY);
        assert_int_equal(o.failed_side, 1);
        assert_poisoned(o.hs[1]);
        outcome_free(&o);
    }
}

/* IK: an answer that was not made for this first message (a replayed
 * message 2 of another session: what an impostor could send) fails at the
 * initiator with PEER_KEY (PSK in IKpsk2, where the PSK is mixed there). */
static void test_ik_foreign_answer(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    static const enum noise_pattern iks[] = {NOISE_PATTERN_IK, NOISE_PATTERN_IKPSK2,
                                             NOISE_PATTERN_IKPSK1};

    for (int k = 0; k < 3; k++) {
        enum noise_pattern p = iks[k];
        struct run r;
        struct outcome o1, o2;
        uint8_t m1[256], m2[256], got[256];
        size_t l1 = 0, l2 = 0, gl = 0;

        run_init(&r, p, &a, &b);
        play(&r, &o1); /* a complete, earlier session */
        assert_int_equal(o1.err, MP_OK);
        outcome_free(&o1);

        /* Record a fresh message 2 from session one. */
        struct noise_config ci = {
            .pattern = p, .initiator = true, .s = a.s, .rs = b.pub, .psk = r.psk[0]};
        struct noise_config cr = {.pattern = p, .initiator = false, .s = b.s, .psk = r.psk[1]};
        assert_int_equal(noise_handshake_new(&te.env, &ci, &o1.hs[0]), MP_OK);
        assert_int_equal(noise_handshake_new(&te.env, &cr, &o1.hs[1]), MP_OK);
        assert_int_equal(noise_handshake_write(o1.hs[0], NULL, 0, m1, sizeof(m1), &l1), MP_OK);
        assert_int_equal(noise_handshake_read(o1.hs[1], m1, l1, got, sizeof(got), &gl), MP_OK);
        assert_int_equal(noise_handshake_write(o1.hs[1], NULL, 0, m2, sizeof(m2), &l2), MP_OK);

        /* Session two's initiator gets session one's answer. */
        assert_int_equal(noise_handshake_new(&te.env, &ci, &o2.hs[0]), MP_OK);
        assert_int_equal(noise_handshake_write(o2.hs[0], NULL, 0, m1, sizeof(m1), &l1), MP_OK);
        assert_int_equal(noise_handshake_read(o2.hs[0], m2, l2, got, sizeof(got), &gl),
                         p == NOISE_PATTERN_IKPSK2 ? MP_ERR_NOISE_PSK : MP_ERR_NOISE_PEER_KEY);
        assert_poisoned(o2.hs[0]);
        noise_handshake_free(o2.hs[0]);
        outcome_free(&o1);
    }
}

static void test_wrong_psk(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    static const uint8_t other[32] = "another cluster's secret, 32 b.";
    struct run r;
    struct outcome o;

    /* IKpsk2 mixes the PSK at the end of message 2: the initiator notices. */
    run_init(&r, NOISE_PATTERN_IKPSK2, &a, &b);
    r.psk[1] = other;
    play(&r, &o);
    assert_int_equal(o.err, MP_ERR_NOISE_PSK);
    assert_int_equal(o.failed_side, 0);
    assert_int_equal(o.at_msg, 1);
    assert_false(o.leaked);
    assert_poisoned(o.hs[0]);
    outcome_free(&o);

    /* IKpsk1 mixes it at the end of message 1: the responder notices and
     * need not answer an outsider at all. */
    run_init(&r, NOISE_PATTERN_IKPSK1, &a, &b);
    r.psk[0] = other;
    play(&r, &o);
    assert_int_equal(o.err, MP_ERR_NOISE_PSK);
    assert_int_equal(o.failed_side, 1);
    assert_int_equal(o.at_msg, 0);
    assert_false(o.leaked);
    assert_poisoned(o.hs[1]);
    outcome_free(&o);

    /* XXpsk3 mixes it at the end of message 3: the responder notices. */
    run_init(&r, NOISE_PATTERN_XXPSK3, &a, &b);
    r.psk[0] = other;
    play(&r, &o);
    assert_int_equal(o.err, MP_ERR_NOISE_PSK);
    assert_int_equal(o.failed_side, 1);
    assert_int_equal(o.at_msg, 2);
    assert_false(o.leaked);
    assert_poisoned(o.hs[1]);
    outcome_free(&o);
}

static void test_wrong_prologue(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    uint8_t main_net[NOISE_MERPATI_PROLOGUE_MAX], test_net[NOISE_MERPATI_PROLOGUE_MAX],
        v2[NOISE_MERPATI_PROLOGUE_MAX];
    size_t lm = 0, lt = 0, l2 = 0;
    assert_int_equal(noise_prologue(1, (const uint8_t *)"main", 4, main_net, &lm), MP_OK);
    assert_int_equal(noise_prologue(1, (const uint8_t *)"test", 4, test_net, &lt), MP_OK);
    assert_int_equal(noise_prologue(2, (const uint8_t *)"main", 4, v2, &l2), MP_OK);

    struct {
        enum noise_pattern p;
        const uint8_t *other;
        size_t other_len;
        enum mp_err err;
        int side;
        unsigned msg;
    } cases[] = {
        /* XX: message 1 is clear, the first encrypted field is b's key in message 2. */
        {NOISE_PATTERN_XX, test_net, lt, MP_ERR_NOISE_PROLOGUE, 0, 1},
        {NOISE_PATTERN_XX, v2, l2, MP_ERR_NOISE_PROLOGUE, 0, 1},
        /* XXpsk3 encrypts message 1's payload already. */
        {NOISE_PATTERN_XXPSK3, test_net, lt, MP_ERR_NOISE_PROLOGUE, 1, 0},
        /* IK: indistinguishable from a wrong dialed key (docs/PROTOCOL.md). */
        {NOISE_PATTERN_IK, test_net, lt, MP_ERR_NOISE_PEER_KEY, 1, 0},
        {NOISE_PATTERN_IKPSK2, v2, l2, MP_ERR_NOISE_PEER_KEY, 1, 0},
        {NOISE_PATTERN_IKPSK1, test_net, lt, MP_ERR_NOISE_PEER_KEY, 1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        struct outcome o;
        run_init(&r, cases[i].p, &a, &b);
        r.prologue[0] = main_net, r.prologue_len[0] = lm;
        r.prologue[1] = cases[i].other, r.prologue_len[1] = cases[i].other_len;
        play(&r, &o);
        assert_int_equal(o.err, cases[i].err);
        assert_int_equal(o.failed_side, cases[i].side);
        assert_int_equal(o.at_msg, cases[i].msg);
        assert_false(o.leaked);
        assert_poisoned(o.hs[cases[i].side]);
        outcome_free(&o);
    }
}

/* Flip each bit pattern at every byte of every handshake message: the
 * handshake never completes on the side that reads the altered data. */
/* What the receiver must report when byte `pos` of handshake message m is
 * altered: the docs/PROTOCOL.md table ("Noise links", Errors) applied to the
 * field that holds the byte. With the test payload (P = 12 bytes), a message
 * is e (32, clear), s (32 + 16 once a key exists), payload (P, + 16 once a key
 * exists). An altered e or first encrypted field spoils that field; a later
 * field is reached only if the first one opened. */
struct tamper_expect {
    enum noise_pattern p;
    unsigned msg;
    int side;          /* who detects it: 0 initiator, 1 responder */
    unsigned at_msg;   /* in which message */
    size_t first_end;  /* bytes [0, first_end) spoil the first encrypted field */
    enum mp_err first; /* ... and are reported so */
    enum mp_err later; /* bytes from first_end on (the payload after s) */
};

static const struct tamper_expect tamper_table[] = {
    /* IK: -> e, es, s, ss + payload; <- e, ee, se + payload */
    {NOISE_PATTERN_IK, 0, 1, 0, 80, MP_ERR_NOISE_PEER_KEY, MP_ERR_NOISE_DECRYPT},
    {NOISE_PATTERN_IK, 1, 0, 1, SIZE_MAX, MP_ERR_NOISE_PEER_KEY, MP_ERR_NOISE_PEER_KEY},
    {NOISE_PATTERN_IKPSK2, 0, 1, 0, 80, MP_ERR_NOISE_PEER_KEY, MP_ERR_NOISE_DECRYPT},
    {NOISE_PATTERN_IKPSK2, 1, 0, 1, SIZE_MAX, MP_ERR_NOISE_PSK, MP_ERR_NOISE_PSK},
    {NOISE_PATTERN_IKPSK1, 0, 1, 0, 80, MP_ERR_NOISE_PEER_KEY, MP_ERR_NOISE_PSK},
    {NOISE_PATTERN_IKPSK1, 1, 0, 1, SIZE_MAX, MP_ERR_NOISE_PEER_KEY, MP_ERR_NOISE_PEER_KEY},
    /* XX: -> e + clear payload (caught by the initiator in message 2);
     * <- e, ee, s, es + payload; -> s, se + payload */
    {NOISE_PATTERN_XX, 0, 0, 1, SIZE_MAX, MP_ERR_NOISE_PROLOGUE, MP_ERR_NOISE_PROLOGUE},
    {NOISE_PATTERN_XX, 1, 0, 1, 80, MP_ERR_NOISE_PROLOGUE, MP_ERR_NOISE_DECRYPT},
    {NOISE_PATTERN_XX, 2, 1, 2, 48, MP_ERR_NOISE_DECRYPT, MP_ERR_NOISE_DECRYPT},
    /* XXpsk3: message 1's payload is encrypted (MixKey(e)); psk ends message 3. */
    {NOISE_PATTERN_XXPSK3, 0, 1, 0, SIZE_MAX, MP_ERR_NOISE_PROLOGUE, MP_ERR_NOISE_PROLOGUE},
    {NOISE_PATTERN_XXPSK3, 1, 0, 1, 80, MP_ERR_NOISE_DECRYPT, MP_ERR_NOISE_DECRYPT},
    {NOISE_PATTERN_XXPSK3, 2, 1, 2, 48, MP_ERR_NOISE_DECRYPT, MP_ERR_NOISE_PSK},
};

static void test_tamper_every_byte(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    unsigned runs = 0, rows = 0;

    for (size_t t = 0; t < sizeof(tamper_table) / sizeof(tamper_table[0]); t++) {
        const struct tamper_expect *x = &tamper_table[t];
        /* Learn the message length from an honest run. */
        struct run r;
        struct outcome o;
        run_init(&r, x->p, &a, &b);
        play(&r, &o);
        assert_int_equal(o.err, MP_OK);
        size_t len = o.msg_len[x->msg];
        outcome_free(&o);
        assert_true(len >= 32);
        for (size_t pos = 0; pos < len; pos++) {
            enum mp_err want = pos < x->first_end ? x->first : x->later;
            r.tamper_msg = (int)x->msg;
            r.tamper_pos = pos;
            r.tamper_mask = (uint8_t)(1u << (pos % 8));
            play(&r, &o);
            runs++;
            if (o.err != want || o.failed_side != x->side || o.at_msg != x->at_msg)
                fail_msg("%s msg %u byte %zu: got %s (side %d, msg %u), want %s (side %d, "
                         "msg %u)",
                         noise_protocol_name(x->p), x->msg, pos, mp_errname(o.err), o.failed_side,
                         o.at_msg, mp_errname(want), x->side, x->at_msg);
            assert_false(o.leaked);
            assert_poisoned(o.hs[o.failed_side]);
            outcome_free(&o);
        }
        rows++;
    }
    /* Every byte of the 12 handshake messages of the five patterns was tried. */
    size_t messages = 0;
    for (size_t k = 0; k < N_PATTERNS; k++)
        messages += handshake_messages(all_patterns[k]);
    assert_int_equal(rows, messages);
    assert_true(runs > 500);
}

static void test_truncated_and_oversized(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    static uint8_t msg[NOISE_MAX_MESSAGE + 1], got[NOISE_MAX_MESSAGE];
    size_t len = 0, gl = 0;

    for (size_t k = 0; k < N_PATTERNS; k++) {
        struct run r;
        run_init(&r, all_patterns[k], &a, &b);
        struct noise_config ci = {
            .pattern = r.p, .initiator = true, .s = a.s, .rs = r.rs[0], .psk = r.psk[0]};
        struct noise_config cr = {.pattern = r.p, .initiator = false, .s = b.s, .psk = r.psk[1]};
        struct noise_handshake *i = NULL, *s = NULL;
        assert_int_equal(noise_handshake_new(&te.env, &ci, &i), MP_OK);
        assert_int_equal(noise_handshake_write(i, NULL, 0, msg, sizeof(msg), &len), MP_OK);
        noise_handshake_free(i);
        /* Every truncation of a valid first message fails cleanly. */
        for (size_t cut = 0; cut < len; cut++) {
            assert_int_equal(noise_handshake_new(&te.env, &cr, &s), MP_OK);
            enum mp_err err = noise_handshake_read(s, msg, cut, got, sizeof(got), &gl);
            assert_int_not_equal(err, MP_OK);
            assert_poisoned(s);
            noise_handshake_free(s);
        }
        /* Over the Noise limit. */
        assert_int_equal(noise_handshake_new(&te.env, &cr, &s), MP_OK);
        assert_int_equal(noise_handshake_read(s, msg, NOISE_MAX_MESSAGE + 1, got, sizeof(got), &gl),
                         MP_ERR_TOO_BIG);
        assert_poisoned(s);
        noise_handshake_free(s);
    }
}

static void test_payload_caps(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    static uint8_t payload[NOISE_MAX_MESSAGE], msg[NOISE_MAX_MESSAGE], got[NOISE_MAX_MESSAGE];
    size_t len = 0, gl = 0;
    struct run r;
    run_init(&r, NOISE_PATTERN_IK, &a, &b);
    struct noise_config ci = {.pattern = r.p, .initiator = true, .s = a.s, .rs = b.pub};
    struct noise_config cr = {.pattern = r.p, .initiator = false, .s = b.s};
    struct noise_handshake *i = NULL, *s = NULL;

    randombytes_buf(payload, sizeof(payload));
    /* The largest payload fills a message of exactly NOISE_MAX_MESSAGE. */
    assert_int_equal(noise_handshake_new(&te.env, &ci, &i), MP_OK);
    assert_int_equal(
        noise_handshake_write(i, payload, NOISE_MAX_HANDSHAKE_PAYLOAD, msg, sizeof(msg), &len),
        MP_OK);
    assert_int_equal(len, NOISE_MAX_MESSAGE);
    assert_int_equal(noise_handshake_new(&te.env, &cr, &s), MP_OK);
    /* A payload buffer one byte short is refused, and the handshake dies. */
    assert_int_equal(noise_handshake_read(s, msg, len, got, NOISE_MAX_HANDSHAKE_PAYLOAD - 1, &gl),
                     MP_ERR_TOO_BIG);
    assert_poisoned(s);
    noise_handshake_free(s);
    assert_int_equal(noise_handshake_new(&te.env, &cr, &s), MP_OK);
    assert_int_equal(noise_handshake_read(s, msg, len, got, sizeof(got), &gl), MP_OK);
    assert_int_equal(gl, NOISE_MAX_HANDSHAKE_PAYLOAD);
    assert_memory_equal(got, payload, gl);
    noise_handshake_free(i);
    noise_handshake_free(s);

    /* One byte more does not fit, and leaves nothing in the output. */
    assert_int_equal(noise_handshake_new(&te.env, &ci, &i), MP_OK);
    memset(msg, 0, sizeof(msg));
    assert_int_equal(
        noise_handshake_write(i, payload, NOISE_MAX_HANDSHAKE_PAYLOAD + 1, msg, sizeof(msg), &len),
        MP_ERR_TOO_BIG);
    for (size_t k = 0; k < 200; k++)
        assert_int_equal(msg[k], 0);
    assert_poisoned(i);
    noise_handshake_free(i);

    /* A small output buffer is refused the same way. */
    assert_int_equal(noise_handshake_new(&te.env, &ci, &i), MP_OK);
    assert_int_equal(noise_handshake_write(i, payload, 10, msg, 32 + 48 + 10 + 15, &len),
                     MP_ERR_TOO_BIG);
    assert_poisoned(i);
    noise_handshake_free(i);
}

static void test_state_machine(void **state)
{
    (void)state;
    struct party a, b;
    party_make(&a);
    party_make(&b);
    uint8_t msg[256], psk[32] = {1};
    size_t len = 0;
    struct noise_handshake *hs = NULL;
    struct noise_cipher *c1 = NULL, *c2 = NULL;
    static uint8_t big[NOISE_PROLOGUE_MAX + 1];

    /* Config checks. */
    struct noise_config cfg = {.pattern = NOISE_PATTERN_IK, .initiator = true, .s = a.s};
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_ERR_INVAL); /* no rs */
    cfg.rs = b.pub;
    cfg.psk = psk;
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_ERR_INVAL); /* psk in IK */
    cfg.pattern = NOISE_PATTERN_XXPSK3;
    cfg.psk = NULL;
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_ERR_INVAL); /* no psk */
    cfg.pattern = NOISE_PATTERN_XX;
    cfg.prologue = big;
    cfg.prologue_len = sizeof(big);
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_ERR_INVAL);
    cfg.prologue_len = NOISE_PROLOGUE_MAX;
    cfg.s = NULL;
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_ERR_INVAL);
    cfg.s = a.s;
    cfg.pattern = (enum noise_pattern)7;
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_ERR_INVAL);
    assert_null(hs);

    /* A responder that writes first is poisoned. */
    struct noise_config cr = {.pattern = NOISE_PATTERN_XX, .initiator = false, .s = b.s};
    assert_int_equal(noise_handshake_new(&te.env, &cr, &hs), MP_OK);
    assert_int_equal(noise_handshake_next(hs), NOISE_STEP_READ);
    assert_int_equal(noise_handshake_hash(hs, msg), MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_remote_static(hs, msg), MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_split(hs, &c1, &c2), MP_ERR_NOISE_STATE);
    assert_int_equal(noise_handshake_write(hs, NULL, 0, msg, sizeof(msg), &len),
                     MP_ERR_NOISE_STATE);
    assert_poisoned(hs);
    noise_handshake_free(hs);

    /* An initiator that reads first is poisoned. */
    cfg.prologue_len = 0;
    cfg.prologue = NULL;
    cfg.pattern = NOISE_PATTERN_XX;
    assert_int_equal(noise_handshake_new(&te.env, &cfg, &hs), MP_OK);
    assert_int_equal(noise_handshake_read(hs, msg, 32, msg, sizeof(msg), &len), MP_ERR_NOISE_STATE);
    assert_poisoned(hs);
    noise_handshake_free(hs);
    noise_handshake_free(NULL);
    noise_cipher_free(NULL);
}

static void test_prologue_format(void **state)
{
    (void)state;
    uint8_t out[NOISE_MERPATI_PROLOGUE_MAX];
    uint8_t id[NOISE_NETWORK_ID_MAX + 1];
    size_t len = 0;
    static const uint8_t expect[] = {'m', 'e', 'r', 'p', 'a', 't', 'i', '/',
                                     0,   1,   4,   'm', 'a', 'i', 'n'};

    assert_int_equal(noise_prologue(1, (const uint8_t *)"main", 4, out, &len), MP_OK);
    assert_int_equal(len, sizeof(expect));
    assert_memory_equal(out, expect, sizeof(expect));
    assert_int_equal(noise_prologue(0x0102, (const uint8_t *)"x", 1, out, &len), MP_OK);
    assert_int_equal(len, 8 + 2 + 1 + 1);
    assert_memory_equal(out, "merpati/\x01\x02\x01x", len);

    memset(id, 'n', sizeof(id));
    assert_int_equal(noise_prologue(65535, id, NOISE_NETWORK_ID_MAX, out, &len), MP_OK);
    assert_int_equal(len, NOISE_MERPATI_PROLOGUE_MAX);
    assert_int_equal(noise_prologue(1, id, NOISE_NETWORK_ID_MAX + 1, out, &len), MP_ERR_INVAL);
    assert_int_equal(noise_prologue(1, id, 0, out, &len), MP_ERR_INVAL);
    assert_int_equal(noise_prologue(0, id, 4, out, &len), MP_ERR_INVAL);
    assert_int_equal(noise_prologue(65536, id, 4, out, &len), MP_ERR_INVAL);
    /* Different versions and ids give different prologues. */
    uint8_t o2[NOISE_MERPATI_PROLOGUE_MAX];
    size_t l2 = 0;
    assert_int_equal(noise_prologue(1, (const uint8_t *)"ab", 2, out, &len), MP_OK);
    assert_int_equal(noise_prologue(1, (const uint8_t *)"abc", 3, o2, &l2), MP_OK);
    assert_int_not_equal(len, l2);
}

/* The collision of the old decimal encoding: version 1 with the id "1" and
 * 49 'x' (50 bytes) against version 12 with 49 'x' both read
 * "merpati/1" 0x32 0x31 "xxx...", since the length byte 50 is '2' and '1' is
 * 49. With a fixed-width version they differ, and the version can always be
 * read back from the same two bytes. */
static void test_prologue_no_collision(void **state)
{
    (void)state;
    uint8_t id1[50], id12[49], a[NOISE_MERPATI_PROLOGUE_MAX], b[NOISE_MERPATI_PROLOGUE_MAX];
    size_t la = 0, lb = 0;

    id1[0] = '1';
    memset(id1 + 1, 'x', 49);
    memset(id12, 'x', 49);
    assert_int_equal(noise_prologue(1, id1, sizeof(id1), a, &la), MP_OK);
    assert_int_equal(noise_prologue(12, id12, sizeof(id12), b, &lb), MP_OK);
    assert_false(la == lb && memcmp(a, b, la) == 0);
    for (unsigned v = 1; v <= NOISE_PROTOCOL_VERSION_MAX; v += 257) {
        assert_int_equal(noise_prologue(v, id12, sizeof(id12), a, &la), MP_OK);
        assert_int_equal(((unsigned)a[8] << 8) | a[9], v);
        assert_int_equal(a[10], sizeof(id12));
    }
}

/* Wycheproof X25519: every public key that makes the shared secret zero is
 * refused with NOISE_LOW_ORDER, whether it comes from the peer (an "e" in
 * a message) or from the caller (the key an IK initiator dials); every other
 * key is not mistaken for one. */
static void test_low_order_wycheproof(void **state)
{
    (void)state;
    json_t *doc = load_json("wycheproof-x25519_test.json");
    json_t *groups = json_object_get(doc, "testGroups");
    unsigned zero = 0, other = 0;
    uint8_t msg[256], got[256];
    size_t gl = 0, len = 0;

    for (size_t g = 0; g < json_array_size(groups); g++) {
        json_t *tests = json_object_get(json_array_get(groups, g), "tests");
        for (size_t t = 0; t < json_array_size(tests); t++) {
            json_t *tc = json_array_get(tests, t);
            uint8_t pub[32], priv[32], shared[32], zeros[32] = {0};
            assert_int_equal(unhex(json_string_value(json_object_get(tc, "public")), pub, 32), 32);
            assert_int_equal(unhex(json_string_value(json_object_get(tc, "private")), priv, 32),
                             32);
            assert_int_equal(unhex(json_string_value(json_object_get(tc, "shared")), shared, 32),
                             32);
            bool is_zero = memcmp(shared, zeros, 32) == 0;
            enum mp_err want = is_zero ? MP_ERR_NOISE_LOW_ORDER : MP_ERR_NOISE_PEER_KEY;
            zero += is_zero;
            other += !is_zero;

            /* The peer's ephemeral: an IK responder whose static is `priv`
             * gets `pub` as e (es = DH(priv, pub)), then junk. */
            struct noise_config cr = {.pattern = NOISE_PATTERN_IK, .initiator = false, .s = priv};
            struct noise_handshake *hs = NULL;
            memset(msg, 0x42, sizeof(msg));
            memcpy(msg, pub, 32);
            assert_int_equal(noise_handshake_new(&te.env, &cr, &hs), MP_OK);
            assert_int_equal(noise_handshake_read(hs, msg, 32 + 48 + 16, got, sizeof(got), &gl),
                             want);
            assert_poisoned(hs);
            noise_handshake_free(hs);

            /* The dialed key: an IK initiator with ephemeral `priv` and rs `pub`. */
            struct noise_config ci = {.pattern = NOISE_PATTERN_IK,
                                      .initiator = true,
                                      .s = priv,
                                      .rs = pub,
                                      .fixed_ephemeral = priv};
            assert_int_equal(noise_handshake_new(&te.env, &ci, &hs), MP_OK);
            assert_int_equal(noise_handshake_write(hs, NULL, 0, msg, sizeof(msg), &len),
                             is_zero ? MP_ERR_NOISE_LOW_ORDER : MP_OK);
            noise_handshake_free(hs);
        }
    }
    assert_int_equal(zero, 31);
    assert_int_equal(zero + other, 518);
    json_decref(doc);
}

/* The cipher itself against libsodium: the nonce is 4 zero bytes then the
 * 64-bit counter little-endian, and REKEY is the first 32 bytes of
 * ENCRYPT(k, 2^64-1, "", 32 zeros). */
static void test_cipher_known_answers(void **state)
{
    (void)state;
    uint8_t key[32], rekeyed[48], zeros[32] = {0}, nonce[12] = {0};
    uint8_t ct[64], expect[64];
    size_t len = 0;
    struct noise_cipher *c = NULL;
    static const uint8_t text[] = "transport";

    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(noise_cipher_new(key, &c), MP_OK);
    noise_cipher_set_nonce(c, UINT64_C(0x0102030405060708));
    assert_int_equal(noise_cipher_encrypt(c, text, sizeof(text), ct, sizeof(ct), &len), MP_OK);
    uint8_t le[12] = {0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
    crypto_aead_chacha20poly1305_ietf_encrypt(expect, NULL, text, sizeof(text), NULL, 0, NULL, le,
                                              key);
    assert_int_equal(len, sizeof(text) + 16);
    assert_memory_equal(ct, expect, len);
    assert_int_equal(noise_cipher_nonce(c), UINT64_C(0x0102030405060709));

    noise_cipher_rekey(c);
    memset(nonce + 4, 0xff, 8);
    crypto_aead_chacha20poly1305_ietf_encrypt(rekeyed, NULL, zeros, 32, NULL, 0, NULL, nonce, key);
    noise_cipher_set_nonce(c, 0);
    assert_int_equal(noise_cipher_encrypt(c, text, sizeof(text), ct, sizeof(ct), &len), MP_OK);
    memset(le, 0, sizeof(le));
    crypto_aead_chacha20poly1305_ietf_encrypt(expect, NULL, text, sizeof(text), NULL, 0, NULL, le,
                                              rekeyed);
    assert_memory_equal(ct, expect, len);
    noise_cipher_free(c);
}

static void cipher_pair(struct noise_cipher **tx, struct noise_cipher **rx)
{
    uint8_t key[32];
    env_random(&te.env, key, sizeof(key));
    assert_int_equal(noise_cipher_new(key, tx), MP_OK);
    assert_int_equal(noise_cipher_new(key, rx), MP_OK);
}

static enum mp_err send_one(struct noise_cipher *tx, struct noise_cipher *rx, int i)
{
    uint8_t buf[64], out[64];
    size_t len = 0, ol = 0;
    int n = snprintf((char *)buf, sizeof(buf), "msg %d", i);
    enum mp_err err = noise_cipher_encrypt(tx, buf, (size_t)n, buf, sizeof(buf), &len);
    if (err != MP_OK)
        return err;
    err = noise_cipher_decrypt(rx, buf, len, out, sizeof(out), &ol);
    if (err == MP_OK) {
        assert_int_equal(ol, (size_t)n);
        assert_memory_equal(out, "msg ", 4);
    }
    return err;
}

static void test_nonce_exhaustion(void **state)
{
    (void)state;
    struct noise_cipher *tx = NULL, *rx = NULL;
    cipher_pair(&tx, &rx);
    noise_cipher_set_rekey_interval(tx, 0);
    noise_cipher_set_rekey_interval(rx, 0);
    noise_cipher_set_nonce(tx, UINT64_MAX - 2);
    noise_cipher_set_nonce(rx, UINT64_MAX - 2);
    assert_int_equal(send_one(tx, rx, 1), MP_OK);
    assert_int_equal(send_one(tx, rx, 2), MP_OK); /* nonce 2^64-2: the last one */
    assert_int_equal(noise_cipher_nonce(tx), UINT64_MAX);
    uint8_t buf[64];
    size_t len = 0;
    assert_int_equal(noise_cipher_encrypt(tx, buf, 4, buf, sizeof(buf), &len), MP_ERR_NOISE_NONCE);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(noise_cipher_decrypt(rx, buf, 20, buf, sizeof(buf), &len), MP_ERR_NOISE_NONCE);
    /* Rekeying does not make nonces reusable. */
    noise_cipher_rekey(tx);
    assert_int_equal(noise_cipher_encrypt(tx, buf, 4, buf, sizeof(buf), &len), MP_ERR_NOISE_NONCE);
    noise_cipher_free(tx);
    noise_cipher_free(rx);
}

static void test_rekey(void **state)
{
    (void)state;
    struct noise_cipher *tx = NULL, *rx = NULL;

    /* Explicit rekey on both ends keeps them in step. */
    cipher_pair(&tx, &rx);
    assert_int_equal(send_one(tx, rx, 0), MP_OK);
    noise_cipher_rekey(tx);
    noise_cipher_rekey(rx);
    assert_int_equal(send_one(tx, rx, 1), MP_OK);
    /* One end alone: the other cannot read it, and its nonce does not move. */
    noise_cipher_rekey(tx);
    assert_int_equal(send_one(tx, rx, 2), MP_ERR_NOISE_DECRYPT);
    assert_int_equal(noise_cipher_nonce(rx), 2);
    noise_cipher_free(tx);
    noise_cipher_free(rx);

    /* Automatic rekey every 3 messages, both ends: 10 messages pass. */
    cipher_pair(&tx, &rx);
    noise_cipher_set_rekey_interval(tx, 3);
    noise_cipher_set_rekey_interval(rx, 3);
    for (int i = 0; i < 10; i++)
        assert_int_equal(send_one(tx, rx, i), MP_OK);
    noise_cipher_free(tx);
    noise_cipher_free(rx);

    /* Only the sender rekeys every 3: message 4 (nonce 3) fails. */
    cipher_pair(&tx, &rx);
    noise_cipher_set_rekey_interval(tx, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_one(tx, rx, i), MP_OK);
    assert_int_equal(send_one(tx, rx, 3), MP_ERR_NOISE_DECRYPT);
    noise_cipher_free(tx);
    noise_cipher_free(rx);

    /* The default interval is NOISE_REKEY_INTERVAL on both ends. */
    cipher_pair(&tx, &rx);
    noise_cipher_set_nonce(tx, NOISE_REKEY_INTERVAL - 1);
    noise_cipher_set_nonce(rx, NOISE_REKEY_INTERVAL - 1);
    assert_int_equal(send_one(tx, rx, 0), MP_OK);
    assert_int_equal(send_one(tx, rx, 1), MP_OK);
    noise_cipher_set_rekey_interval(rx, 0);
    noise_cipher_set_nonce(tx, 2 * NOISE_REKEY_INTERVAL - 1);
    noise_cipher_set_nonce(rx, 2 * NOISE_REKEY_INTERVAL - 1);
    assert_int_equal(send_one(tx, rx, 2), MP_OK);
    assert_int_equal(send_one(tx, rx, 3), MP_ERR_NOISE_DECRYPT);
    noise_cipher_free(tx);
    noise_cipher_free(rx);
}

static void test_transport_errors(void **state)
{
    (void)state;
    struct noise_cipher *tx = NULL, *rx = NULL;
    static uint8_t buf[NOISE_MAX_MESSAGE + 1], out[NOISE_MAX_MESSAGE];
    size_t len = 0, ol = 0;

    cipher_pair(&tx, &rx);
    memset(buf, 'x', sizeof(buf));
    /* The largest payload makes a 65535-byte message. */
    assert_int_equal(
        noise_cipher_encrypt(tx, buf, NOISE_MAX_TRANSPORT_PAYLOAD, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(len, NOISE_MAX_MESSAGE);
    /* Tampered: refused, then the genuine message still decrypts. */
    buf[100] ^= 1;
    assert_int_equal(noise_cipher_decrypt(rx, buf, len, out, sizeof(out), &ol),
                     MP_ERR_NOISE_DECRYPT);
    buf[100] ^= 1;
    assert_int_equal(noise_cipher_decrypt(rx, buf, len, out, sizeof(out), &ol), MP_OK);
    assert_int_equal(ol, NOISE_MAX_TRANSPORT_PAYLOAD);
    /* Replayed: refused. */
    assert_int_equal(noise_cipher_decrypt(rx, buf, len, out, sizeof(out), &ol),
                     MP_ERR_NOISE_DECRYPT);
    assert_int_equal(
        noise_cipher_encrypt(tx, buf, NOISE_MAX_TRANSPORT_PAYLOAD + 1, buf, sizeof(buf), &len),
        MP_ERR_TOO_BIG);
    assert_int_equal(noise_cipher_encrypt(tx, buf, 10, buf, 25, &len), MP_ERR_TOO_BIG);
    assert_int_equal(noise_cipher_decrypt(rx, buf, NOISE_MAX_MESSAGE + 1, out, sizeof(out), &ol),
                     MP_ERR_TOO_BIG);
    assert_int_equal(noise_cipher_decrypt(rx, buf, 15, out, sizeof(out), &ol), MP_ERR_MALFORMED);
    assert_int_equal(noise_cipher_decrypt(rx, buf, 40, out, 23, &ol), MP_ERR_TOO_BIG);
    /* An empty message is a bare tag. */
    assert_int_equal(noise_cipher_encrypt(tx, NULL, 0, buf, sizeof(buf), &len), MP_OK);
    assert_int_equal(len, NOISE_TAG_BYTES);
    assert_int_equal(noise_cipher_decrypt(rx, buf, len, NULL, 0, &ol), MP_OK);
    assert_int_equal(ol, 0);
    noise_cipher_free(tx);
    noise_cipher_free(rx);
}

int main(void)
{
    test_env_init(&te, test_env_seed(3));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_live_handshake_and_transport),
        cmocka_unit_test(test_ephemerals_are_fresh),
        cmocka_unit_test(test_wrong_remote_static),
        cmocka_unit_test(test_ik_foreign_answer),
        cmocka_unit_test(test_wrong_psk),
        cmocka_unit_test(test_wrong_prologue),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_truncated_and_oversized),
        cmocka_unit_test(test_payload_caps),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_prologue_format),
        cmocka_unit_test(test_prologue_no_collision),
        cmocka_unit_test(test_low_order_wycheproof),
        cmocka_unit_test(test_cipher_known_answers),
        cmocka_unit_test(test_nonce_exhaustion),
        cmocka_unit_test(test_rekey),
        cmocka_unit_test(test_transport_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
