/*
 * fuzz_noise: arbitrary bytes as the peer's Noise messages.
 *
 * Input: one mode byte, then chunks of a 2-byte big-endian length and that
 * many bytes (a short last chunk takes what is left). Mode bits 0-2 pick the
 * pattern (IK, XX, IKpsk2, XXpsk3, IKpsk1, modulo 5), bit 3 makes the harness
 * the initiator (else the responder), bit 4 skips the handshake and feeds
 * every chunk to a transport cipher with a fixed key. The harness writes its own messages when
 * it is its turn, reads the next chunk when it is the peer's, and after the
 * handshake decrypts the remaining chunks as transport messages. All keys
 * and ephemerals are fixed, so a seed can hold a valid handshake and reach
 * the transport phase.
 *
 * Built with -DFUZZ_NOISE_SEEDS and run with a directory argument, this file
 * instead writes the valid seeds of the committed corpus (as the peer with
 * its own fixed keys): cc -DFUZZ_NOISE_SEEDS -I. tests/fuzz/fuzz_noise.c
 * crypto/noise.c base/err.c -lsodium && ./a.out tests/fuzz/corpus/fuzz_noise
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/noise.h"
#include "crypto/noise_testing.h"

#define CHUNK_MAX NOISE_MAX_MESSAGE

static uint8_t key_harness_s[32] = {1, 2, 3, 4, 5, 6, 7, 8};
static uint8_t key_harness_e[32] = {9, 9, 9, 9, 9, 9, 9, 9};
static uint8_t key_peer_s[32] = {0x51, 0x52, 0x53};
static uint8_t key_peer_e[32] = {0x61, 0x62, 0x63};
static const uint8_t psk[32] = "fuzzing cluster secret, 32 byte";

/* Never called: every handshake uses fixed ephemerals. */
static void no_random_cb(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    memset(buf, 0x77, len);
}

static uint64_t no_clock_cb(void *ctx)
{
    (void)ctx;
    return 0;
}

static const struct env fixed_env = {.random = no_random_cb, .now_ms = no_clock_cb};

#define N_PATTERNS     5
#define MODE_INITIATOR 8
#define MODE_TRANSPORT 16

static const enum noise_pattern patterns[N_PATTERNS] = {NOISE_PATTERN_IK, NOISE_PATTERN_XX,
                                                        NOISE_PATTERN_IKPSK2, NOISE_PATTERN_XXPSK3,
                                                        NOISE_PATTERN_IKPSK1};

static enum mp_err side_new(enum noise_pattern p, bool initiator, bool harness,
                            struct noise_handshake **hs_out)
{
    uint8_t prologue[NOISE_MERPATI_PROLOGUE_MAX], peer_pub[32], harness_pub[32];
    size_t plen = 0;
    bool ik = p != NOISE_PATTERN_XX && p != NOISE_PATTERN_XXPSK3;
    bool psk_p = p != NOISE_PATTERN_IK && p != NOISE_PATTERN_XX;

    noise_prologue(NOISE_PROTOCOL_VERSION, (const uint8_t *)"fuzz", 4, prologue, &plen);
    crypto_scalarmult_base(peer_pub, key_peer_s);
    crypto_scalarmult_base(harness_pub, key_harness_s);
    const uint8_t *other_pub = harness ? peer_pub : harness_pub;
    struct noise_config cfg = {
        .pattern = p,
        .initiator = initiator,
        .prologue = prologue,
        .prologue_len = plen,
        .s = harness ? key_harness_s : key_peer_s,
        .rs = ik && initiator ? other_pub : NULL,
        .psk = psk_p ? psk : NULL,
        .fixed_ephemeral = harness ? key_harness_e : key_peer_e,
    };
    return noise_handshake_new(&fixed_env, &cfg, hs_out);
}

/* The next chunk of the input, or false at its end. */
static bool next_chunk(const uint8_t **data, size_t *size, const uint8_t **chunk, size_t *len)
{
    if (*size < 2)
        return false;
    size_t want = (size_t)(*data)[0] << 8 | (*data)[1];
    *data += 2, *size -= 2;
    *len = want < *size ? want : *size;
    *chunk = *data;
    *data += *len, *size -= *len;
    return true;
}

static void transport(struct noise_cipher *recv, const uint8_t *data, size_t size)
{
    static uint8_t out[CHUNK_MAX];
    const uint8_t *chunk;
    size_t len = 0, out_len = 0;

    while (next_chunk(&data, &size, &chunk, &len)) {
        enum mp_err err = noise_cipher_decrypt(recv, chunk, len, out, sizeof(out), &out_len);
        if (err == MP_OK && out_len > len)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t msg[NOISE_MAX_MESSAGE], payload[NOISE_MAX_MESSAGE];
    struct noise_handshake *hs = NULL;
    struct noise_cipher *send = NULL, *recv = NULL;
    const uint8_t *chunk;
    size_t len = 0, out_len = 0;

    if (sodium_init() < 0 || size < 1)
        return 0;
    uint8_t mode = data[0];
    data++, size--;
    if (mode & MODE_TRANSPORT) {
        if (noise_cipher_new(key_harness_s, &recv) == MP_OK)
            transport(recv, data, size);
        goto cleanup;
    }
    if (side_new(patterns[(mode & 7) % N_PATTERNS], (mode & MODE_INITIATOR) != 0, true, &hs) !=
        MP_OK)
        abort();
    for (;;) {
        enum noise_step step = noise_handshake_next(hs);
        if (step == NOISE_STEP_WRITE) {
            if (noise_handshake_write(hs, (const uint8_t *)"ok", 2, msg, sizeof(msg), &out_len) !=
                MP_OK)
                goto cleanup; /* only a low-order key the peer sent earlier */
        } else if (step == NOISE_STEP_READ) {
            if (!next_chunk(&data, &size, &chunk, &len))
                goto cleanup;
            if (noise_handshake_read(hs, chunk, len, payload, sizeof(payload), &out_len) != MP_OK) {
                /* A failed handshake must be dead. */
                if (noise_handshake_next(hs) != NOISE_STEP_FAILED)
                    abort();
                goto cleanup;
            }
            if (out_len > len)
                abort();
        } else {
            break;
        }
    }
    if (noise_handshake_split(hs, &send, &recv) != MP_OK)
        abort();
    transport(recv, data, size);

cleanup:
    noise_handshake_free(hs);
    noise_cipher_free(send);
    noise_cipher_free(recv);
    return 0;
}

#ifdef FUZZ_NOISE_SEEDS
/* Appends a chunk to a seed. */
static void put_chunk(uint8_t *seed, size_t *pos, const uint8_t *data, size_t len)
{
    seed[(*pos)++] = (uint8_t)(len >> 8);
    seed[(*pos)++] = (uint8_t)len;
    memcpy(seed + *pos, data, len);
    *pos += len;
}

static void write_seed(const char *dir, const char *name, const uint8_t *seed, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(seed, 1, len, f) != len)
        abort();
    fclose(f);
}

/* A whole valid conversation with the harness, as the peer sees it. */
static void valid_seed(const char *dir, uint8_t mode)
{
    static uint8_t seed[1 << 16], msg[1024], got[1024];
    size_t pos = 0, len = 0, gl = 0;
    struct noise_handshake *harness = NULL, *peer = NULL;
    struct noise_cipher *hs_send = NULL, *hs_recv = NULL, *p_send = NULL, *p_recv = NULL;
    static const char *names[N_PATTERNS] = {"ik", "xx", "ikpsk2", "xxpsk3", "ikpsk1"};
    char name[64];
    bool harness_init = (mode & MODE_INITIATOR) != 0;
    enum noise_pattern p = patterns[mode & 7];

    seed[pos++] = mode;
    if (side_new(p, harness_init, true, &harness) != MP_OK ||
        side_new(p, !harness_init, false, &peer) != MP_OK)
        abort();
    while (noise_handshake_next(harness) != NOISE_STEP_SPLIT) {
        if (noise_handshake_next(harness) == NOISE_STEP_WRITE) {
            if (noise_handshake_write(harness, (const uint8_t *)"ok", 2, msg, sizeof(msg), &len) !=
                    MP_OK ||
                noise_handshake_read(peer, msg, len, got, sizeof(got), &gl) != MP_OK)
                abort();
        } else {
            if (noise_handshake_write(peer, (const uint8_t *)"peer", 4, msg, sizeof(msg), &len) !=
                    MP_OK ||
                noise_handshake_read(harness, msg, len, got, sizeof(got), &gl) != MP_OK)
                abort();
            put_chunk(seed, &pos, msg, len);
        }
    }
    if (noise_handshake_split(peer, &p_send, &p_recv) != MP_OK)
        abort();
    for (int i = 0; i < 2; i++) {
        if (noise_cipher_encrypt(p_send, (const uint8_t *)"frame", 5, msg, sizeof(msg), &len) !=
            MP_OK)
            abort();
        put_chunk(seed, &pos, msg, len);
    }
    snprintf(name, sizeof(name), "valid-%s-%s", names[mode & 7],
             harness_init ? "initiator" : "responder");
    write_seed(dir, name, seed, pos);
    /* The same with the last byte flipped (a failing final frame). */
    seed[pos - 1] ^= 0x80;
    snprintf(name, sizeof(name), "tampered-%s-%s", names[mode & 7],
             harness_init ? "initiator" : "responder");
    write_seed(dir, name, seed, pos);
    noise_handshake_free(harness);
    noise_handshake_free(peer);
    noise_cipher_free(hs_send);
    noise_cipher_free(hs_recv);
    noise_cipher_free(p_send);
    noise_cipher_free(p_recv);
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0)
        return 2;
    for (uint8_t mode = 0; mode < N_PATTERNS; mode++) {
        valid_seed(argv[1], mode);
        valid_seed(argv[1], mode | MODE_INITIATOR);
    }
    /* Transport only: two frames under the fixed key, then a short one. */
    static uint8_t seed[256], msg[64];
    size_t pos = 0, len = 0;
    struct noise_cipher *c = NULL;
    if (noise_cipher_new(key_harness_s, &c) != MP_OK)
        abort();
    seed[pos++] = MODE_TRANSPORT;
    for (int i = 0; i < 2; i++) {
        if (noise_cipher_encrypt(c, (const uint8_t *)"frame", 5, msg, sizeof(msg), &len) != MP_OK)
            abort();
        put_chunk(seed, &pos, msg, len);
    }
    put_chunk(seed, &pos, msg, 7);
    write_seed(argv[1], "transport", seed, pos);
    noise_cipher_free(c);
    /* Invalid inputs: empty handshake, a low-order ephemeral, a huge length. */
    static const uint8_t empty_ik[] = {0, 0, 0};
    write_seed(argv[1], "empty-ik", empty_ik, sizeof(empty_ik));
    uint8_t low[1 + 2 + 96] = {0, 0, 96}; /* e = the all-zero point */
    write_seed(argv[1], "low-order-ik", low, sizeof(low));
    static const uint8_t huge[] = {1, 0xff, 0xff, 1, 2, 3};
    write_seed(argv[1], "huge-length-xx", huge, sizeof(huge));
    return 0;
}
#endif
