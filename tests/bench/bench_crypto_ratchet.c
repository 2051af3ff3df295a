/*
 * bench_crypto_ratchet: single-core throughput of the end-to-end layer.
 * Prints "name value unit" lines:
 *   ratchet_oneway_64B_msgs_per_s   encrypt + decrypt, one direction, 64 B
 *   ratchet_oneway_1KiB_msgs_per_s  the same at 1 KiB
 *   ratchet_pingpong_msgs_per_s     alternating sides: a DH ratchet step per message
 *   x3dh_setups_per_s               bundle verify + initiate + respond
 * Each figure is measured for about BENCH_SECONDS. Asserts nothing.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/identity.h"
#include "crypto/prekey.h"
#include "crypto/ratchet.h"
#include "crypto/x3dh.h"

#define BENCH_SECONDS 1.5
#define BATCH         256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t clock_cb(void *ctx)
{
    (void)ctx;
    return (uint64_t)(now_s() * 1000);
}

static void random_cb(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
}

static const struct env bench_env = {NULL, clock_cb, random_cb, NULL};

static void check(enum mp_err err, const char *what)
{
    if (err != MP_OK) {
        fprintf(stderr, "bench_crypto_ratchet: %s: %s\n", what, mp_strerror(err));
        exit(1);
    }
}

static void pair(struct ratchet **a, struct ratchet **b)
{
    uint8_t root[32], ad[64], sk[32], pk[32];
    randombytes_buf(root, sizeof(root));
    randombytes_buf(ad, sizeof(ad));
    randombytes_buf(sk, sizeof(sk));
    if (crypto_scalarmult_base(pk, sk) != 0)
        check(MP_ERR_CRYPTO, "key pair");
    check(ratchet_new_initiator(&bench_env, root, ad, pk, a), "initiator");
    check(ratchet_new_responder(&bench_env, root, ad, sk, pk, b), "responder");
}

static void oneway(const char *name, size_t size)
{
    struct ratchet *a, *b;
    uint8_t *pt = malloc(size), *ct = malloc(size + RATCHET_OVERHEAD), *out = malloc(size);
    struct ratchet_header h;
    unsigned long n = 0;

    pair(&a, &b);
    randombytes_buf(pt, size);
    double start = now_s(), elapsed;
    do {
        for (int i = 0; i < BATCH; i++) {
            check(ratchet_encrypt(a, pt, size, &h, ct), "encrypt");
            check(ratchet_decrypt(b, &h, ct, size + RATCHET_OVERHEAD, out), "decrypt");
        }
        n += BATCH;
        elapsed = now_s() - start;
    } while (elapsed < BENCH_SECONDS);
    if (memcmp(pt, out, size) != 0)
        check(MP_ERR_CRYPTO, "round trip");
    printf("%s %.0f msgs/s\n", name, (double)n / elapsed);
    ratchet_free(a);
    ratchet_free(b);
    free(pt);
    free(ct);
    free(out);
}

static void pingpong(void)
{
    struct ratchet *r[2];
    uint8_t pt[64], ct[64 + RATCHET_OVERHEAD], out[64];
    struct ratchet_header h;
    unsigned long n = 0;

    pair(&r[0], &r[1]);
    randombytes_buf(pt, sizeof(pt));
    double start = now_s(), elapsed;
    do {
        for (int i = 0; i < BATCH; i++) {
            struct ratchet *from = r[i & 1], *to = r[(i & 1) ^ 1];
            check(ratchet_encrypt(from, pt, sizeof(pt), &h, ct), "encrypt");
            check(ratchet_decrypt(to, &h, ct, sizeof(ct), out), "decrypt");
        }
        n += BATCH;
        elapsed = now_s() - start;
    } while (elapsed < BENCH_SECONDS);
    printf("ratchet_pingpong_msgs_per_s %.0f msgs/s\n", (double)n / elapsed);
    ratchet_free(r[0]);
    ratchet_free(r[1]);
}

static void x3dh(void)
{
    struct identity *alice, *bob;
    struct prekey_store *store;
    struct prekey_bundle bundle;
    struct x3dh_init init;
    struct x3dh_keys ka, kb;
    uint64_t t = 1795996800000ull;
    unsigned long n = 0;

    check(identity_generate(&bench_env, &alice), "identity");
    check(identity_generate(&bench_env, &bob), "identity");
    check(prekey_store_new(&bench_env, bob, t, &store), "store");
    check(prekey_store_add_one_time(store, &bench_env, 1), "one-time");
    prekey_store_bundle(store, 1, &bundle);
    double start = now_s(), elapsed;
    do {
        for (int i = 0; i < 16; i++) {
            check(
                x3dh_initiate(&bench_env, alice, &bundle, identity_public_key(bob), t, &init, &ka),
                "initiate");
            check(x3dh_respond(store, &init, t, &kb), "respond");
        }
        n += 16;
        elapsed = now_s() - start;
    } while (elapsed < BENCH_SECONDS);
    if (sodium_memcmp(ka.root, kb.root, sizeof(ka.root)) != 0)
        check(MP_ERR_CRYPTO, "agreement");
    printf("x3dh_setups_per_s %.0f setups/s\n", (double)n / elapsed);
    prekey_store_free(store);
    identity_free(alice);
    identity_free(bob);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    oneway("ratchet_oneway_64B_msgs_per_s", 64);
    oneway("ratchet_oneway_1KiB_msgs_per_s", 1024);
    pingpong();
    x3dh();
    return 0;
}
